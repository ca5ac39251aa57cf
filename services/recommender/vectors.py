"""Item text vectors: one FAISS index (services.support.index.DenseIndex) persisted under VAR_DIR/recommender/index.

Texts are embedded by the registry's `recommender` champion adapter, or the default base while the task has
none. The index is tagged with that encoder; when the champion changes the tag no longer matches and the
index is rebuilt from the catalogue. Item pks are the FAISS ids, so a changed text replaces its vector in place.
Each process caches the loaded index and reloads it when another process saved a newer one (meta.json mtime).
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from django.conf import settings

from apps.recommender.models import Item
from services.errors import NotFound
from services.recommender.catalog import item_text
from services.support.index import DenseIndex, EncoderTag, folder_locked

TASK = "recommender"
EMBED_BATCH = 128
CHECK_EVERY_S = 2.0  # how often a process looks for a newer index on disk

_lock = threading.RLock()
_cached: dict[str, object] = {"index": None, "mtime": 0.0, "checked": 0.0}


def index_folder() -> Path:
    return Path(settings.VAR_DIR) / "recommender" / "index"


def encoder_key() -> tuple[str, str]:
    """(name, sha256) of the encoder that embeds item texts now: the task's champion, else the default base."""
    from services.registry.versions import base_default_ensure, version_get

    try:
        version = version_get(task_name=TASK)
        return f"{TASK}:v{version.version}", version.sha256
    except NotFound:
        base = base_default_ensure()
        return f"base:{base.name}", base.sha256 or base.path


def encoder_tag() -> EncoderTag:
    name, sha = encoder_key()
    return EncoderTag(name=name, sha256=sha, dim=_dim(task=TASK if name.startswith(f"{TASK}:") else None))


def _dim(*, task: str | None) -> int:
    return int(texts_embed_for(task=task, texts=["dimension probe"]).shape[1])


def texts_embed_for(*, task: str | None, texts: Sequence[str]) -> np.ndarray:
    """Embed with the task's champion; the base when the task has no champion yet."""
    from services.registry.serving import texts_embed

    try:
        return texts_embed(task=task, texts=list(texts))
    except NotFound:
        return texts_embed(task=None, texts=list(texts))


def items_embed(*, items: Sequence[Item]) -> np.ndarray:
    """(n, dim) L2-normalised vectors of the items' texts."""
    texts = [item_text(title=i.title, description=i.description, category=i.category, tags=i.tags) for i in items]
    parts = [texts_embed_for(task=TASK, texts=texts[s:s + EMBED_BATCH]) for s in range(0, len(texts), EMBED_BATCH)]
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)


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
        if index is not None and mtime == _cached["mtime"] and encoder_key() == (index.tag.name, index.tag.sha256):  # type: ignore[attr-defined]
            return index  # type: ignore[return-value]  # same file, same encoder (a promotion re-embeds the catalogue)
        loaded = _load_current(folder=folder)
        if loaded is None:
            loaded = index_rebuild(tag=encoder_tag())
            mtime = meta.stat().st_mtime if meta.is_file() else 0.0
        _cached.update(index=loaded, mtime=mtime)
        return loaded


def _load_current(*, folder: Path) -> DenseIndex | None:
    """The saved index when the current encoder built it (checked by name and hash: no model load just to serve)."""
    meta = folder / "meta.json"
    if not meta.is_file():
        return None
    saved = json.loads(meta.read_text(encoding="utf-8"))
    if (saved.get("encoder"), saved.get("encoder_sha256")) != encoder_key():
        return None
    return DenseIndex.load(folder=folder, expected=EncoderTag(name=saved["encoder"], sha256=saved["encoder_sha256"], dim=int(saved["dim"])))


def index_rebuild(*, tag: EncoderTag | None = None, progress: Callable[[int, int], None] | None = None) -> DenseIndex:
    """Embed the whole catalogue into a fresh index and save it."""
    tag = tag or encoder_tag()
    items = list(Item.objects.order_by("pk"))
    vectors = np.zeros((0, tag.dim), dtype=np.float32)
    chunks = []
    for start in range(0, len(items), 1024):
        chunks.append(items_embed(items=items[start:start + 1024]))
        if progress:
            progress(min(start + 1024, len(items)), len(items))
    if chunks:
        vectors = np.concatenate(chunks)
    index = DenseIndex.build(tag=tag, ids=np.array([i.pk for i in items], dtype=np.int64), vectors=vectors)
    _save(index)
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


def index_install(*, index: DenseIndex) -> None:
    """Save a prepared index as the catalogue's (the benchmark inserts random vectors this way)."""
    with _lock:
        _save(index)


def index_forget() -> None:
    """Drop this process's cached index (tests; after the files were replaced)."""
    with _lock:
        _cached.update(index=None, mtime=0.0, checked=0.0)


def _save(index: DenseIndex) -> None:
    folder = index_folder()
    index.save(folder=folder)
    _cached.update(index=index, mtime=(folder / "meta.json").stat().st_mtime, checked=time.monotonic())


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
