"""Each process's in-memory copy of a vector space, kept current from the database by revision; IVF snapshots.

1. `space_view` looks at the space's row at most every SUITE_VECTORS_SYNC_S (one cheap query; at once after a write
   in this process), then fetches the rows of its active encoder with a revision above its own and applies them
   (vectors upserted, tombstones removed). It never embeds.
2. A changed `generation` (the encoder switched), a revision below `purged_revision` (tombstones it needed are
   gone) or one that went backwards (a rolled-back write it had seen) need a full reload: a process that already
   has a view loads the new one on a background thread and keeps answering from the old one; a cold start loads
   synchronously. Inside a transaction (a test, a writer that reads back) the reload is synchronous too, since
   another thread's connection could not see that transaction's rows.
3. A full reload starts from the space's IVF snapshot when there is a usable one (trained once on a worker,
   `snapshot_build`, under SUITE_REGISTRY_DIR/vectors/<uid>/) and applies the rows newer than it; otherwise it
   builds an exact index from the rows.
Caches are keyed by the space's uid, not its name, since a dropped and re-created space (or a test's rollback)
reuses the name.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
from django.conf import settings
from django.db import connection

from apps.vectors.models import Embedding, VectorSpace
from services.errors import SuiteError
from services.vectors import encode
from services.vectors.index import DenseIndex, EncoderTag, ivf_nprobe
from services.vectors.sources import source_for, source_known

log = logging.getLogger(__name__)

ROW_FIELDS = ("uid", "encoder", "encoder_sha256", "dim", "revision", "generation", "purged_revision", "snapshot",
              "snapshot_revision")
FETCH = 5000  # rows per fetch while loading
MISSING_EVERY_S = 10.0  # a scan of a source's keys for SpaceView.missing, at most this often per view


@dataclass
class SpaceView:
    """This process's searchable copy of a space: an index of one encoder's vectors up to `revision`."""

    index: DenseIndex
    tag: EncoderTag
    revision: int
    missing: int  # keys the source lists without a vector (lexical only until the worker catches up)
    space: str = ""
    generation: int = 0
    keys: set[int] = field(default_factory=set, repr=False)  # keys with a vector in `index`
    missing_at: float = field(default=float("-inf"), repr=False)  # time.monotonic() of the last scan for `missing`


@dataclass
class _Entry:
    uid: str
    view: SpaceView
    checked: float  # time.monotonic() of the last look at the space's row
    loading: threading.Thread | None = None


_lock = threading.Lock()
_views: dict[str, _Entry] = {}  # space name -> entry
_load_locks: dict[str, threading.Lock] = {}


def vectors_decode(blob: bytes | memoryview, dim: int) -> np.ndarray:
    vector = np.frombuffer(bytes(blob), dtype=np.float32)
    if vector.shape != (dim,):
        raise SuiteError(f"A stored vector has {vector.shape[0]} values where its space's encoder has {dim}.")
    return vector


def views_forget(*, space: str | None = None) -> None:
    """Drop this process's views (all, or one space's): the next space_view loads from the database, as a new process would."""
    with _lock:
        if space is None:
            _views.clear()
        else:
            _views.pop(space, None)


def view_touch(space: str) -> None:
    """A write in this process: the next space_view looks at the database at once (a writer reads its own writes)."""
    with _lock:
        entry = _views.get(space)
        if entry is not None:
            entry.checked = float("-inf")


def space_view(*, space: str) -> SpaceView | None:
    """This process's index of `space` (None when the space does not exist), synced by revision; never embeds."""
    now = time.monotonic()
    with _lock:
        entry = _views.get(space)
    if entry is not None and now - entry.checked < settings.SUITE_VECTORS_SYNC_S:
        return entry.view
    row = VectorSpace.objects.filter(name=space).values(*ROW_FIELDS).first()
    if row is None:
        views_forget(space=space)
        return None
    row["uid"] = str(row["uid"])
    if entry is None or entry.uid != row["uid"]:
        return _cold_load(space, row)
    entry.checked = now
    view = entry.view
    if row["generation"] != view.generation or view.revision < row["purged_revision"] or row["revision"] < view.revision:
        if connection.in_atomic_block:
            return _cold_load(space, row)
        _reload_in_background(space, entry)
        return entry.view
    if row["revision"] > view.revision:
        with _load_lock(space):
            if row["revision"] > view.revision:
                added = _deltas_apply(space=space, view=view, upto=row["revision"])
                view.missing = _missing(space, view, added=added)
                _observe(view)
    return view


def _load_lock(space: str) -> threading.Lock:
    with _lock:
        return _load_locks.setdefault(space, threading.Lock())


def _cold_load(space: str, row: dict) -> SpaceView:
    with _load_lock(space):
        with _lock:
            entry = _views.get(space)
        if entry is not None and entry.uid == row["uid"] and entry.view.generation == row["generation"] \
                and entry.view.revision == row["revision"] >= row["purged_revision"]:
            return entry.view  # another thread loaded it while this one waited
        view = view_load(space=space, row=row)
        with _lock:
            _views[space] = _Entry(uid=row["uid"], view=view, checked=time.monotonic())
        return view


def _reload_in_background(space: str, entry: _Entry) -> None:
    with _lock:
        if entry.loading is not None and entry.loading.is_alive():
            return

        def work() -> None:
            try:
                row = VectorSpace.objects.filter(name=space).values(*ROW_FIELDS).first()
                if row is None:
                    views_forget(space=space)
                    return
                row["uid"] = str(row["uid"])
                view = view_load(space=space, row=row)
                with _lock:
                    if _views.get(space) is entry:
                        _views[space] = _Entry(uid=row["uid"], view=view, checked=time.monotonic())
            except Exception:  # noqa: BLE001 - the old view keeps serving; the next look tries again
                log.exception("reloading vector space %s failed", space)
                entry.checked = float("-inf")
            finally:
                connection.close()  # this thread's own connection

        entry.loading = threading.Thread(target=work, name=f"vectors-reload-{space}", daemon=True)
        entry.loading.start()


def view_load(*, space: str, row: dict) -> SpaceView:
    """A full load of the space's active encoder: its snapshot plus newer rows, else every row."""
    tag = EncoderTag(name=row["encoder"], sha256=row["encoder_sha256"], dim=row["dim"])
    view = SpaceView(index=DenseIndex(tag=tag), tag=tag, revision=0, missing=0, space=space,
                     generation=row["generation"])
    snapshot = _snapshot_read(row, tag)
    if snapshot is not None:
        view.index, keys = snapshot
        view.keys = set(keys)
        view.revision = row["snapshot_revision"]
        _deltas_apply(space=space, view=view, upto=row["revision"])
    else:
        rows = Embedding.objects.filter(space__uid=row["uid"], encoder=tag.name, vector__isnull=False,
                                        revision__lte=row["revision"]).values_list("key", "vector")
        batch_ids: list[int] = []
        batch_vectors: list[np.ndarray] = []
        for key, blob in rows.iterator(chunk_size=FETCH):
            batch_ids.append(key)
            batch_vectors.append(vectors_decode(blob, tag.dim))
            if len(batch_ids) >= FETCH:
                _add(view, batch_ids, batch_vectors)
        _add(view, batch_ids, batch_vectors)
        view.revision = row["revision"]
    view.missing = _missing(space, view, force=True)
    _observe(view)
    from services.heap import heap_settle

    heap_settle(reason=f"vector space {space}")
    return view


def _add(view: SpaceView, ids: list[int], vectors: list[np.ndarray]) -> None:
    if ids:
        view.index.upsert(ids=np.asarray(ids, dtype=np.int64), vectors=np.stack(vectors))
        view.keys.update(ids)
        ids.clear()
        vectors.clear()


def _deltas_apply(*, space: str, view: SpaceView, upto: int) -> int:
    """Apply the rows of the view's encoder with view.revision < revision <= upto (upserts and tombstones).

    Returns how many keys gained a vector they did not have.
    """
    rows = Embedding.objects.filter(space__name=space, encoder=view.tag.name, revision__gt=view.revision,
                                    revision__lte=upto).values_list("key", "vector")
    ups: dict[int, np.ndarray] = {}
    gone: set[int] = set()
    for key, blob in rows.iterator(chunk_size=FETCH):
        if blob is None:
            gone.add(key)
            ups.pop(key, None)
        else:
            ups[key] = vectors_decode(blob, view.tag.dim)
            gone.discard(key)
    if gone:
        view.index.remove(ids=np.asarray(sorted(gone), dtype=np.int64))
        view.keys.difference_update(gone)
    added = len(set(ups) - view.keys)
    if ups:
        view.index.upsert(ids=np.asarray(list(ups), dtype=np.int64), vectors=np.stack(list(ups.values())))
        view.keys.update(ups)
    view.revision = upto
    return added


def _missing(space: str, view: SpaceView, *, force: bool = False, added: int = 0) -> int:
    """Keys the source lists without a vector in the view: by the source's cheap count when it has one, else by a
    scan of its keys at most every MISSING_EVERY_S (a sync after a write elsewhere happens inside requests)."""
    if not source_known(space):
        return 0
    source = source_for(space)
    if source.count is not None:
        return max(0, int(source.count(space)) - len(view.keys))
    now = time.monotonic()
    if not force and now - view.missing_at < MISSING_EVERY_S:
        return max(0, view.missing - added)  # between scans: keys that gained a vector are no longer missing
    view.missing_at = now
    return sum(1 for key, _ in source.keys(space) if key not in view.keys)


def _observe(view: SpaceView) -> None:
    from services import metrics

    observe = getattr(metrics, "vector_index_observe", None)
    if observe is not None:
        observe(space=view.space, encoder=view.tag.name, revision=view.revision, size=len(view.index))


def query_vectors(*, view: SpaceView, texts: list[str]) -> np.ndarray:
    """(n, dim) query vectors by exactly the encoder of `view` (a pinned version, not "the champion now")."""
    if isinstance(texts, str) or not all(isinstance(text, str) for text in texts):
        raise SuiteError("`texts` must be a list of strings.", field="texts")
    vectors = encode.texts_embed_tagged(tag=view.tag, texts=list(texts))
    if vectors.ndim != 2 or vectors.shape[1] != view.tag.dim:
        raise SuiteError(f"Encoder {view.tag.name} gave query vectors of shape {vectors.shape}; the space "
                         f"{view.space!r} holds vectors of dimension {view.tag.dim}.", field="encoder")
    return vectors


# --- snapshots (IVF trained once on a worker) -------------------------------------------------------------------

def snapshot_path(*, uid: str, encoder: str, revision: int) -> str:
    """The snapshot's path relative to SUITE_REGISTRY_DIR (the database holds no host path)."""
    safe = re.sub(r"[^0-9A-Za-z_.-]", "_", encoder)
    return f"vectors/{uid}/{safe}-r{revision}.faiss"


def snapshot_build(*, space: str) -> str | None:
    """Train an index of the space's active encoder (IVF past SUPPORT_IVF_THRESHOLD) and record it as its snapshot.

    1. Read every live row up to the space's revision now, build (DenseIndex.build trains IVF when large).
    2. Write SUITE_REGISTRY_DIR/vectors/<uid>/<encoder>-r<revision>.faiss (temp file + rename).
    3. Record it (relative path, revision) only while the encoder is still the one it was built for.
    Returns the relative path, or None when the space is too small to need one.
    """
    from services.vectors.index import ivf_threshold

    row = VectorSpace.objects.filter(name=space).values(*ROW_FIELDS).first()
    if row is None:
        return None
    row["uid"] = str(row["uid"])
    tag = EncoderTag(name=row["encoder"], sha256=row["encoder_sha256"], dim=row["dim"])
    rows = list(Embedding.objects.filter(space__uid=row["uid"], encoder=tag.name, vector__isnull=False,
                                         revision__lte=row["revision"]).values_list("key", "vector"))
    if len(rows) < ivf_threshold():
        return None
    ids = np.asarray([key for key, _ in rows], dtype=np.int64)
    vectors = np.stack([vectors_decode(blob, tag.dim) for _, blob in rows])  # (n, dim)
    index = DenseIndex.build(tag=tag, ids=ids, vectors=vectors)
    relative = snapshot_path(uid=row["uid"], encoder=tag.name, revision=row["revision"])
    target = Path(settings.REGISTRY_DIR) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    faiss.write_index(index.index, str(tmp))
    os.replace(tmp, target)
    VectorSpace.objects.filter(name=space, generation=row["generation"], encoder=tag.name,
                               snapshot_revision__lt=row["revision"]).update(snapshot=relative,
                                                                             snapshot_revision=row["revision"])
    return relative


def _snapshot_read(row: dict, tag: EncoderTag) -> tuple[DenseIndex, list[int]] | None:
    """The space's snapshot and its ids, when it has one that is still usable (the deletions after it kept)."""
    if not row["snapshot"] or row["snapshot_revision"] < row["purged_revision"]:
        return None
    path = Path(settings.REGISTRY_DIR) / row["snapshot"]
    if not path.is_file():
        log.warning("vector snapshot %s is missing; loading the space from its rows", path)
        return None
    index = faiss.read_index(str(path))
    if index.d != tag.dim:
        return None
    if isinstance(index, faiss.IndexIVF):
        index.nprobe = ivf_nprobe()
        index.set_direct_map_type(faiss.DirectMap.Hashtable)
    loaded = DenseIndex(tag=tag, index=index)
    return loaded, sorted(loaded.ids())
