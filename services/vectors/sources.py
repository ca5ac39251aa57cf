"""Where a vector space's texts come from: one TextSource per product, registered by the space names' prefix.

The store never reads a product's tables itself: "recommender" reads items, "support:<kb pk>" reads a knowledge
base's passages. Products register their source when their Django app is ready (every web, worker and command
process), so a worker embeds a space without importing the product that owns it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from services.errors import NotFound, SuiteError


@dataclass(frozen=True)
class TextSource:
    """How a space's texts are read from the app's own rows."""

    task: Callable[[str], str | None]  # space name -> registry task whose champion embeds it (None: the default base)
    texts: Callable[[str, Sequence[int]], list[tuple[int, str, str]]]  # (space, keys) -> [(key, text, content_hash)] of keys that still exist
    keys: Callable[[str], Iterable[tuple[int, str]]]  # space -> every (key, content_hash) that should have a vector
    # space -> how many keys should have a vector (cheap); None: counted from `keys` (a full scan), at most every
    # MISSING_EVERY_S per process, since SpaceView.missing is read in requests
    count: Callable[[str], int] | None = None


_sources: dict[str, TextSource] = {}


def source_register(prefix: str, source: TextSource) -> None:
    """Register the source of every space named `prefix` or `prefix:<anything>` (re-registering replaces it)."""
    if not prefix or ":" in prefix:
        raise SuiteError(f"A vector source prefix is a non-empty name without ':', not {prefix!r}.", field="prefix")
    if not isinstance(source, TextSource):
        raise SuiteError(f"source_register({prefix!r}) needs a TextSource, not {type(source).__name__}.")
    _sources[prefix] = source


def space_prefix(space: str) -> str:
    if not isinstance(space, str) or not space.strip():
        raise SuiteError("A vector space is named by a non-empty string.", field="space")
    return space.split(":", 1)[0]


def source_for(space: str) -> TextSource:
    """The source of `space`; NotFound naming the space when no product registered its prefix."""
    prefix = space_prefix(space)
    found = _sources.get(prefix)
    if found is None:
        known = ", ".join(sorted(_sources)) or "none"
        raise NotFound(f"Unknown vector space {space!r}: no text source is registered for {prefix!r} (registered: {known}).",
                       field="space")
    return found


def source_known(space: str) -> bool:
    return space_prefix(space) in _sources
