"""Item text vectors: one FAISS index (services.vectors.DenseIndex) persisted under VAR_DIR/recommender/index.

Texts are embedded by services.vectors for the `recommender` task: its champion adapter, or the default base
while the task has none. The index is tagged with that encoder (`recommender:vN` or `base:<name>`); when the
champion changes the tag no longer matches and the index is rebuilt from the catalogue. Item pks are the FAISS ids, so a changed text replaces its vector in place.
An item's `embedded_hash` is set only once its vector is saved: an embedding that failed leaves it stale, and the
item is embedded again on its next upsert (even unchanged) and by the periodic repair (`index_repair`).
Each process caches the loaded index and reloads it when another process saved a newer one (meta.json mtime).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import faiss
import numpy as np
from django.db.models import F

from apps.recommender.models import Item
from services.recommender.catalog import item_text
from services.vectors import DenseIndex, EncoderTag, encode, folder_locked, vectors_folder

TASK = "recommender"
CHECK_EVERY_S = 2.0  # how often a process looks for a newer index on disk

_lock = threading.RLock()
_cached: dict[str, object] = {"index": None, "mtime": 0.0, "checked": 0.0}


def index_folder() -> Path:
    return vectors_folder("recommender", "index")


def encoder_tag() -> EncoderTag:
    """The encoder that embeds item texts now: the task's champion, else the default base (no model load)."""
    return encode.encoder_tag_for(task=TASK)


def items_texts(*, items: Sequence[Item]) -> list[str]:
    return [item_text(title=i.title, description=i.description, category=i.category, tags=i.tags) for i in items]


def items_embed(*, items: Sequence[Item]) -> np.ndarray:
    """(n, dim) L2-normalised vectors of the items' texts."""
    return encode.texts_embed_for(task=TASK, texts=items_texts(items=items))


def index_get(*, fresh: bool = False) -> DenseIndex:
    """The process's index (loaded once, reloaded when a newer one was saved; built when there is none).

    `fresh`: look at the disk now rather than trusting a check of the last CHECK_EVERY_S (writers do).
    """
    folder = index_folder()
    now = time.monotonic()
    with _lock:
        index = _cached["index"]
        if index is not None and not fresh and now - float(_cached["checked"]) < CHECK_EVERY_S:
            return index  # type: ignore[return-value]
        _cached["checked"] = now
        meta = folder / "meta.json"
        mtime = meta.stat().st_mtime if meta.is_file() else 0.0
        tag = encoder_tag()
        if index is not None and mtime == _cached["mtime"] and tag == index.tag:  # type: ignore[attr-defined]
            return index  # type: ignore[return-value]  # same file, same encoder (a promotion re-embeds the catalogue)
        loaded = DenseIndex.load(folder=folder, expected=tag)  # None: none saved, or another encoder built it
        if loaded is None:
            loaded = index_rebuild(tag=tag)
            mtime = meta.stat().st_mtime if meta.is_file() else 0.0
        _cached.update(index=loaded, mtime=mtime)
        return loaded


def index_rebuild(*, tag: EncoderTag | None = None, progress: Callable[[int, int], None] | None = None) -> DenseIndex:
    """Embed the whole catalogue into a fresh index and save it."""
    items = list(Item.objects.order_by("pk"))
    index = encode.index_from_texts(folder=index_folder(), task=TASK, ids=[i.pk for i in items], texts=items_texts(items=items),
                                    tag=tag or encoder_tag(), progress=progress)
    _cache_saved(index)
    for item in items:
        if item.embedded_hash != item.text_hash:
            Item.objects.filter(pk=item.pk).update(embedded_hash=item.text_hash)
    return index


def index_update(*, pks: Sequence[int]) -> int:
    """Re-embed these items into the index (incremental); returns how many were embedded."""
    if not pks:
        return 0
    with _lock, folder_locked(index_folder()):  # across processes; another process may be writing: start from its saved index, not a stale copy
        index = index_get(fresh=True)
        items = list(Item.objects.filter(pk__in=list(pks)).order_by("pk"))
        for start in range(0, len(items), 1024):
            chunk = items[start:start + 1024]
            index.upsert(ids=np.array([i.pk for i in chunk], dtype=np.int64), vectors=items_embed(items=chunk))
        _save(index)
        for item in items:
            Item.objects.filter(pk=item.pk).update(embedded_hash=item.text_hash)
        return len(items)


def index_repair(*, chunk: int = 1024) -> dict[str, int]:
    """Re-embed every item whose vector is stale or missing (the periodic repair, `recommender.embeddings_repair`).

    1. Load the index as serving would (built from the catalogue when there is none for this encoder).
    2. Stale: `embedded_hash != text_hash` (an embedding that failed after its row committed, or never ran).
    3. Missing: an item with a current hash whose vector is not in the index (an index file replaced or lost).
    4. Re-embed both, `chunk` items at a time; return {"stale", "missing", "embedded"}.
    """
    index = index_get(fresh=True)
    stale = list(Item.objects.exclude(embedded_hash=F("text_hash")).order_by("pk").values_list("pk", flat=True))
    current = Item.objects.filter(embedded_hash=F("text_hash")).order_by("pk").values_list("pk", flat=True)
    present = index_ids(index=index)
    missing = [pk for pk in current.iterator(chunk_size=10000) if pk not in present]
    due = sorted([*stale, *missing])
    embedded = sum(index_update(pks=due[start:start + chunk]) for start in range(0, len(due), chunk))
    return {"stale": len(stale), "missing": len(missing), "embedded": embedded}


def index_ids(*, index: DenseIndex) -> set[int]:
    """The ids that have a vector in `index` (an exact index keeps its id map; an IVF one is asked item by item)."""
    id_map = getattr(index.index, "id_map", None)
    if id_map is not None:
        return {int(i) for i in faiss.vector_to_array(id_map)}
    pks = Item.objects.values_list("pk", flat=True)
    return set(vectors_of(index=index, pks=list(pks))[0])


def index_install(*, index: DenseIndex) -> None:
    """Save a prepared index as the catalogue's (the benchmark inserts random vectors this way)."""
    with _lock:
        _save(index)


def index_forget() -> None:
    """Drop this process's cached index (tests; after the files were replaced)."""
    with _lock:
        _cached.update(index=None, mtime=0.0, checked=0.0)


def _save(index: DenseIndex) -> None:
    index.save(folder=index_folder())
    _cache_saved(index)


def _cache_saved(index: DenseIndex) -> None:
    """Keep the index just saved as this process's copy (its meta.json mtime: a later save elsewhere is seen)."""
    _cached.update(index=index, mtime=(index_folder() / "meta.json").stat().st_mtime, checked=time.monotonic())


def vectors_of(*, index: DenseIndex, pks: Sequence[int]) -> tuple[list[int], np.ndarray]:
    """(pks found, their stored vectors (n, dim))."""
    found, rows = [], []
    for pk in pks:
        try:
            rows.append(index.index.reconstruct(int(pk)))
            found.append(int(pk))
        except RuntimeError:
            continue
    return found, (np.stack(rows).astype(np.float32) if rows else np.zeros((0, index.tag.dim), dtype=np.float32))
