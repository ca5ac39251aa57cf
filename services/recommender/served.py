"""Which ranker a request uses: the one registered with the `recommender` version whose item vectors it serves.

1. The process's item index is embedded by a registered version (encoder tag `recommender:v<N>`: the champion, once
   the catalogue's re-embedding after its promotion or rollback completed): that version's ranker, read from its
   artifact's `ranker/` folder after the artifact's sha256 is checked (services/ml/artifacts.py artifact_verify),
   once per version and process. A version without a ranker (or whose files fail the check) ranks by the old formula.
   So a promoted or rolled-back version ranks with its own ranker, trained on its own vectors.
2. The index holds the untuned base's vectors (no tuned version yet): the behaviour snapshot's ranker (the worker's,
   fitted on those same vectors, services/recommender/sources.py), else the formula.
`ranker_status` says which, in words: GET /api/recommender/health shows it; impressions record `Served.name`.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.errors import SuiteError
from services.recommender.learned import Ranker, version_ranker_load

logger = logging.getLogger(__name__)
RETRY_S = 60.0  # a version whose ranker could not be read is tried again after this long (the formula meanwhile)


@dataclass(frozen=True)
class Served:
    ranker: Ranker | None  # None: the formula
    name: str  # "recommender:v3" (a version's ranker), "snapshot:<name>" (the worker's) or "formula"
    detail: str  # in words, for the status endpoint


_lock = threading.Lock()
_versions: dict[tuple[str, str], tuple[Served, float | None]] = {}  # (tag name, sha256) -> (what it serves, when it
# failed: None = read); the sha256 in the key: a registry replaced under the same version number is read again


def ranker_served(*, tag: Any, snapshot: Any) -> Served:
    """The ranker for item vectors of encoder `tag` (an EncoderTag), given the published behaviour snapshot (or None)."""
    tag_name, key = tag.name, (tag.name, tag.sha256)
    task, sep, number = tag_name.rpartition(":v")
    if sep and task and task != "base" and number.isdigit():
        with _lock:
            cached = _versions.get(key)
        if cached is not None and (cached[1] is None or time.monotonic() - cached[1] < RETRY_S):
            return cached[0]
        served, failed = _version_served(task=task, number=int(number), tag_name=tag_name)
        with _lock:
            _versions[key] = (served, time.monotonic() if failed else None)
        return served
    if snapshot is not None and snapshot.ranker is not None:
        return Served(snapshot.ranker, f"snapshot:{snapshot.name}",
                      "the worker's ranker from the behaviour snapshot (no tuned recommender version serves the item "
                      "vectors yet)")
    return Served(None, "formula", "the formula (text cosine + popularity): no tuned recommender version serves the "
                                   "item vectors and the worker published no ranker that passed its gate")


def _version_served(*, task: str, number: int, tag_name: str) -> tuple[Served, bool]:
    """(what the version serves, whether reading its ranker failed)."""
    from services.ml.artifacts import artifact_verify
    from services.registry.versions import version_get

    try:
        version = version_get(task_name=task, version=number)
        artifact_verify(folder=version.path, expected_sha256=version.sha256)
        ranker = version_ranker_load(Path(version.path))
    except (SuiteError, OSError, ValueError) as exc:
        logger.warning("the ranker of %s is not served: %s", tag_name, exc)
        message = exc.message if isinstance(exc, SuiteError) else str(exc)
        return Served(None, "formula", f"the formula (text cosine + popularity): {tag_name}'s ranker could not be "
                                       f"read ({message})"), True
    if ranker is None:
        return Served(None, "formula", f"the formula (text cosine + popularity): {tag_name} has no ranker"), False
    return Served(ranker, tag_name, f"the ranker registered with {tag_name} (validation ndcg@{ranker.metrics.get('k')} "
                                    f"{ranker.metrics.get('ndcg_at_k')}, formula {ranker.metrics.get('formula_ndcg_at_k')})"), False


def ranker_status() -> dict[str, str]:
    """{"ranker": Served.name, "detail": in words} of what this process's requests rank with now."""
    from services.recommender.sources import behaviour_current
    from services.recommender.vectors import index_get

    served = ranker_served(tag=index_get().tag, snapshot=behaviour_current())
    return {"ranker": served.name, "detail": served.detail}


def served_forget() -> None:
    """Drop the versions' rankers read by this process (tests)."""
    with _lock:
        _versions.clear()
