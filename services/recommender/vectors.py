"""Item text vectors: the vector space "recommender" of the shared store (services/vectors/store.py).

The database holds every item's vector (key = the item's pk, content hash = its `text_hash`); each process searches
its own in-memory index of it, kept current by revision (an item changed through another host is seen within
SUITE_VECTORS_SYNC_S). Nothing is embedded inside a request: an item written asks for its embedding
(`items_embed_request`: a worker, or this process with SUITE_VECTORS_EMBED=process); a promotion of the
`recommender` task marks its champion pending and a worker re-embeds the catalogue beside the old vectors, which
keep serving until the new ones are complete. An item whose vector is missing or stale (an embedding that failed)
is embedded by the periodic repair (`embeddings_repair`).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from apps.recommender.models import Item
from services.recommender.catalog import item_text
from services.vectors import DenseIndex, EncoderTag, TextSource, encode, source_register
from services.vectors import store

TASK = "recommender"
SPACE = "recommender"


def encoder_tag() -> EncoderTag:
    """The encoder that should embed item texts now: the task's champion, else the default base (no model load)."""
    return encode.encoder_tag_for(task=TASK)


def _texts(space: str, keys: Sequence[int]) -> list[tuple[int, str, str]]:
    items = Item.objects.filter(pk__in=list(keys)).order_by("pk")
    return [(i.pk, item_text(title=i.title, description=i.description, category=i.category, tags=i.tags), i.text_hash)
            for i in items.only("pk", "title", "description", "category", "tags", "text_hash")]


def _keys(space: str) -> Iterable[tuple[int, str]]:
    return Item.objects.order_by("pk").values_list("pk", "text_hash").iterator(chunk_size=10000)


def source_install() -> None:
    """Register the catalogue as the text source of the space "recommender" (apps/recommender/apps.py, ready())."""
    source_register(SPACE, TextSource(task=lambda space: TASK, texts=_texts, keys=_keys,
                                      count=lambda space: Item.objects.count()))


def items_embed_request(*, pks: Sequence[int]) -> None:
    """These items were written: embed them (on a worker, or now with SUITE_VECTORS_EMBED=process)."""
    store.vectors_request(space=SPACE, keys=list(pks))


def items_embed(*, pks: Sequence[int] | None = None, progress: Callable[[int, int], None] | None = None) -> int:
    """Embed these items here and now (None: every item whose vector is missing or stale); bulk imports, the worker."""
    return store.vectors_embed(space=SPACE, keys=None if pks is None else list(pks), progress=progress)


def items_forget(*, pks: Sequence[int]) -> int:
    """Remove the vectors of deleted items (tombstones, in the caller's transaction)."""
    return store.vectors_delete(space=SPACE, keys=list(pks))


def embeddings_repair() -> dict[str, int]:
    """Embed every item whose vector is missing or stale (the periodic repair, `recommender.embeddings_repair`).

    Returns {"missing": items without a current vector before, "embedded": vectors written}.
    """
    store.space_ensure(name=SPACE)
    missing = int(store.space_status(space=SPACE)["missing"])
    return {"missing": missing, "embedded": items_embed(pks=None)}


def index_get(*, fresh: bool = False) -> DenseIndex:
    """This process's index of item vectors (synced with the database; empty while there is none). Never embeds.

    `fresh`: look at the database now rather than trusting a look of the last SUITE_VECTORS_SYNC_S.
    """
    if fresh:
        store.view_touch(SPACE)
    view = store.space_view(space=SPACE)
    if view is None:
        return DenseIndex(tag=encoder_tag())
    return view.index


def index_install(*, pks: Sequence[int], vectors: np.ndarray, text_hashes: Sequence[str]) -> int:
    """Store prepared vectors as the items' (the benchmark inserts random vectors this way); returns rows written."""
    store.space_ensure(name=SPACE)
    return store.vectors_put(space=SPACE, keys=list(pks), vectors=vectors, content_hashes=list(text_hashes))


def index_ids(*, index: DenseIndex | None = None) -> set[int]:
    """The items that have a vector in `index` (default: this process's index)."""
    return (index if index is not None else index_get()).ids()


def index_forget() -> None:
    """Drop this process's index (tests: as a fresh process would, it reloads from the database)."""
    store.views_forget(space=SPACE)


def vectors_of(*, index: DenseIndex, pks: Sequence[int]) -> tuple[list[int], np.ndarray]:
    """(pks found, their stored vectors (n, dim))."""
    found, rows = [], []
    for pk in pks:
        stored = index.vector(int(pk))  # under the index's lock: a sync may be writing
        if stored is not None:
            rows.append(stored)
            found.append(int(pk))
    return found, (np.stack(rows).astype(np.float32) if rows else np.zeros((0, index.tag.dim), dtype=np.float32))
