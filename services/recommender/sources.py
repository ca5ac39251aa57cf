"""The behaviour snapshot: candidate sources and the learned ranker, fitted by a worker, read by every web process.

Files under the registry folder (SUITE_REGISTRY_DIR, shared by every host; the database holds no path):

    recommender-behaviour/<name>/behaviour.npz   the sources (services/recommender/behaviour.py Behaviour)
    recommender-behaviour/<name>/model.txt, ranker.json   the LambdaRank ranker with its metrics (when one was trained)
    recommender-behaviour/current.json   {"name", "ranker": bool, "built_at", "metrics", ...}: replaced atomically

`behaviour_refresh` (Celery `recommender.behaviour_refresh`, beat every RECOMMENDER_BEHAVIOUR_REFRESH_S):
1. Every catalogue item (keys = pks) and every event with a catalogue item, as histories by user.
2. Fit the sources (Behaviour) on all of it.
3. Train the ranker on the time split of the same histories (services/recommender/learned.py ranker_fit), with the
   text source from this process's view of the shared item vectors. Gate: the ranker is used only when its
   held-out ndcg at k is at least the old formula's on the same users; otherwise requests keep the formula.
4. Write a new folder, then point current.json at it; the older folders beyond KEEP are removed.
`behaviour_current` is what requests read: the snapshot current.json names, re-read when it changes (looked at at
most every CHECK_S seconds per process).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from services.errors import SuiteError
from services.recommender import ranking
from services.recommender.behaviour import Behaviour, ItemMeta, SourceConfig, behaviour_fit
from services.recommender.learned import Ranker, RankerConfig, TextSpace, ranker_fit
from services.registry.paths import registry_dir

logger = logging.getLogger(__name__)
DIR = "recommender-behaviour"
KEEP = 3  # snapshots kept: a process still reading the previous one finds it
CHECK_S = 5.0  # a process looks at current.json at most this often


@dataclass
class Snapshot:
    name: str
    model: Behaviour
    ranker: Ranker | None  # None: no ranker, or one the gate refused (requests use the formula)
    info: dict[str, Any]


class IndexText(TextSpace):
    """The text source over this process's FAISS index of item vectors (keys = pks)."""

    def __init__(self, index: Any) -> None:
        self.index = index

    def vectors(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.index.vectors(keys)

    def search(self, profile: np.ndarray, n: int) -> dict[int, float]:
        if len(self.index) == 0:
            return {}
        ids, scores = self.index.search(vectors=profile[None, :], k=min(n, len(self.index)))
        return {int(i): float(s) for i, s in zip(ids[0], scores[0]) if i >= 0}


def behaviour_root() -> Path:
    return registry_dir() / DIR


def catalogue_meta() -> tuple[np.ndarray, Any, np.ndarray]:
    """(pks, meta_of over them, creation times (n,) seconds) of the whole catalogue (the worker's fit)."""
    from apps.recommender.models import Item

    values = list(Item.objects.order_by("pk").values_list("pk", "category", "price", "in_stock", "created_at"))
    keys = np.array([v[0] for v in values], dtype=np.int64)
    at = {v[0]: n for n, v in enumerate(values)}
    categories = [v[1] or "" for v in values]
    prices = np.array([np.nan if v[2] is None else v[2] for v in values], dtype=np.float64)
    stock = np.array([v[3] for v in values], dtype=np.float32)
    created = np.array([v[4].timestamp() if v[4] else np.nan for v in values], dtype=np.float64)

    def meta_of(wanted: np.ndarray) -> ItemMeta:
        rows_ = [at.get(int(k), -1) for k in wanted]
        ok = np.array([r >= 0 for r in rows_], dtype=bool)
        idx = np.array([max(r, 0) for r in rows_], dtype=np.int64)
        return ItemMeta(category=[categories[r] if r >= 0 else "" for r in rows_],
                        price=np.where(ok, prices[idx] if len(prices) else np.nan, np.nan),
                        in_stock=np.where(ok, stock[idx] if len(stock) else 0.0, 0.0).astype(np.float32),
                        created=np.where(ok, created[idx] if len(created) else np.nan, np.nan))

    return keys, meta_of, created


def events_histories() -> dict[str, list[ranking.Interaction]]:
    """user -> every event with a catalogue item, oldest first (not_interested ones too: the fit leaves them out)."""
    from apps.recommender.models import Event

    out: dict[str, list[ranking.Interaction]] = {}
    rows = (Event.objects.filter(item__isnull=False).order_by("timestamp", "pk")
            .values_list("user_id", "item_id", "type", "timestamp"))
    for user, item, kind, at in rows.iterator(chunk_size=20000):
        out.setdefault(user, []).append(ranking.Interaction(item=item, type=kind, at=at.timestamp()))
    return out


def behaviour_refresh(*, sources: SourceConfig | None = None, ranker_config: RankerConfig | None = None) -> dict[str, Any]:
    """Fit the sources and the ranker on every event and publish them (see the module's steps); returns a summary."""
    from services.recommender.vectors import index_get

    started = time.monotonic()
    sources = sources or SourceConfig()
    keys, meta_of, created = catalogue_meta()
    if not len(keys):
        raise SuiteError("The catalogue is empty: import items before fitting the recommender's sources.", field="items")
    histories = events_histories()
    model = behaviour_fit(histories=histories, keys=keys, created=created, config=sources)
    seconds_sources = time.monotonic() - started
    index = index_get(fresh=True)
    text = IndexText(index) if len(index) else None
    ranker, ranker_note = None, ""
    ranker_started = time.monotonic()
    try:
        from apps.recommender.models import Item
        from services.recommender.impressions import impressions_shown

        shown = impressions_shown(key_of=dict(Item.objects.values_list("external_id", "pk")))  # shown, then ignored
        ranker = ranker_fit(histories=histories, keys=keys, text=text, meta_of=meta_of, created=created, sources=sources,
                            config=ranker_config, shown=shown)
    except SuiteError as exc:
        ranker_note = exc.message
    seconds_ranker = time.monotonic() - ranker_started
    active = ranker is not None and ranker.metrics["ndcg_at_k"] >= ranker.metrics["formula_ndcg_at_k"]
    if ranker is not None and not active:
        ranker_note = (f"not used: held-out ndcg {ranker.metrics['ndcg_at_k']} below the formula's "
                       f"{ranker.metrics['formula_ndcg_at_k']}")
    info = {"built_at": datetime.now(timezone.utc).isoformat(), "n_items": int(len(keys)), "n_events": model.n_events,
            "n_users": len(histories), "ease": bool(model.ease_ids.shape[1]), "ranker": active, "ranker_note": ranker_note,
            "metrics": ranker.metrics if ranker is not None else {}, "seconds_sources": round(seconds_sources, 2),
            "seconds_ranker": round(seconds_ranker, 2)}
    name = snapshot_write(model=model, ranker=ranker if active else None, info=info)
    return {"name": name, **{k: v for k, v in info.items() if k != "metrics"},
            "ndcg_at_k": info["metrics"].get("ndcg_at_k"), "formula_ndcg_at_k": info["metrics"].get("formula_ndcg_at_k")}


def snapshot_write(*, model: Behaviour, ranker: Ranker | None, info: dict[str, Any]) -> str:
    """Write a snapshot folder, point current.json at it, prune the old ones; returns its name."""
    root = behaviour_root()
    root.mkdir(parents=True, exist_ok=True)
    name = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    staged = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        np.savez(staged / "behaviour.npz", **model.arrays())
        if ranker is not None:
            ranker.save(staged)
        (staged / "info.json").write_text(json.dumps(info, sort_keys=True, indent=1), encoding="utf-8")
        os.replace(staged, root / name)
    finally:
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)
    pointer = root / f".current-{name}.json"
    pointer.write_text(json.dumps({"name": name, "ranker": ranker is not None}), encoding="utf-8")
    os.replace(pointer, root / "current.json")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for old in folders[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return name


def snapshot_read(name: str) -> Snapshot:
    folder = behaviour_root() / name
    with np.load(folder / "behaviour.npz") as arrays:
        model = Behaviour.from_arrays({k: arrays[k] for k in arrays.files})
    ranker = Ranker.load(folder) if (folder / "model.txt").exists() else None
    info = json.loads((folder / "info.json").read_text(encoding="utf-8"))
    return Snapshot(name=name, model=model, ranker=ranker, info=info)


_lock = threading.Lock()
_current: dict[str, Any] = {"checked": -1e9, "mtime": None, "snapshot": None}


def behaviour_current() -> Snapshot | None:
    """The published snapshot (None before a worker fitted one); reloaded when current.json changes."""
    now = time.monotonic()
    with _lock:
        if now - _current["checked"] < CHECK_S:
            return _current["snapshot"]
        _current["checked"] = now
        pointer = behaviour_root() / "current.json"
        try:
            mtime = pointer.stat().st_mtime_ns
        except FileNotFoundError:
            _current.update(mtime=None, snapshot=None)
            return None
        if mtime == _current["mtime"]:
            return _current["snapshot"]
        try:
            name = json.loads(pointer.read_text(encoding="utf-8"))["name"]
            snapshot = snapshot_read(name)
        except (OSError, ValueError, KeyError, SuiteError):  # half-pruned or damaged: keep what was served
            logger.exception("recommender behaviour snapshot unreadable; keeping the previous one")
            return _current["snapshot"]
        _current.update(mtime=mtime, snapshot=snapshot)
    from services.heap import heap_settle

    heap_settle(reason="recommender behaviour snapshot")  # outside the lock: other requests serve the old one meanwhile
    return snapshot


def behaviour_forget() -> None:
    """Drop this process's snapshot (tests; a fresh process reads current.json again)."""
    with _lock:
        _current.update(checked=-1e9, mtime=None, snapshot=None)
