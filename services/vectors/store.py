"""Shared vectors: the database is the system of record for embeddings; every process searches its own copy.

Writes (this module):
1. Every write (put or delete) runs in a transaction that first locks the space's row, bumps its `revision` and
   stamps the rows it writes with it, so revisions become visible in commit order: a reader that has seen revision R
   fetches exactly the rows > R and never skips one committed later with a lower number.
2. Deletes write tombstones (vector NULL) under every encoder; `tombstones_purge` removes old ones and raises
   `purged_revision` (a reader synced below it reloads fully).
3. Embedding (`vectors_embed`) reads texts from the product's TextSource, embeds only keys whose stored hash differs
   for the active (and pending) encoder, and writes under the lock only rows whose text is still the one embedded.
   `vectors_request` runs it on a worker (`vectors.embed`, SUITE_VECTORS_EMBED=worker) or here (`process`).
4. A new encoder (a promotion) is made `pending`; a worker embeds the whole space with it beside the active one and
   switches (`generation` + 1) only once every key has a current vector under it: readers keep the old vectors until
   then (`encoder_switch_check`, `space_reembed`).
Reads (services/vectors/sync.py): `space_view` (this process's index, synced by revision), `query_vectors`.
"""
from __future__ import annotations

import logging
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.utils import timezone

from apps.vectors.models import Embedding, VectorSpace
from services.errors import NotFound, SuiteError
from services.vectors import encode
from services.vectors.index import EncoderTag, ivf_threshold
from services.vectors.sources import TextSource, source_for, source_known, source_register
from services.vectors.sync import (SpaceView, query_vectors, snapshot_build, space_view, view_touch, views_forget,
                                   vectors_decode)

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (done, total)
CHUNK = 512  # keys read, embedded and written per transaction: bounded memory and lock time
IN_LIMIT = 500  # keys per `IN (...)` (SQLite's variable limit)
SNAPSHOT_GRACE_S = 3600  # a superseded snapshot file is kept at least this long (a process may be loading it)

__all__ = ["SpaceView", "TextSource", "encoder_switch_check", "query_vectors", "snapshot_build", "source_register",
           "space_drop", "space_ensure", "space_reembed", "space_status", "space_view", "tombstones_purge",
           "vectors_delete", "vectors_embed", "vectors_put", "vectors_request", "vectors_stored", "view_touch",
           "views_forget"]


# --- spaces --------------------------------------------------------------------------------------------------

def tag_active(row: VectorSpace) -> EncoderTag:
    return EncoderTag(name=row.encoder, sha256=row.encoder_sha256, dim=row.dim)


def tag_pending(row: VectorSpace) -> EncoderTag | None:
    if not row.pending_encoder:
        return None
    return EncoderTag(name=row.pending_encoder, sha256=row.pending_sha256, dim=int(row.pending_dim or 0))


def space_get(*, space: str) -> VectorSpace:
    found = VectorSpace.objects.filter(name=space).first()
    if found is None:
        raise NotFound(f"Vector space {space!r} does not exist.", field="space")
    return found


def space_ensure(*, name: str) -> VectorSpace:
    """The space `name`, created with its task's current encoder as the active one (no vectors yet)."""
    existing = VectorSpace.objects.filter(name=name).first()
    if existing is not None:
        return existing
    task = source_for(name).task(name) or ""
    tag = encode.encoder_tag_for(task=task or None)
    try:
        with transaction.atomic():
            return VectorSpace.objects.create(name=name, task=task, encoder=tag.name, encoder_sha256=tag.sha256, dim=tag.dim)
    except IntegrityError:  # another process created it meanwhile
        return VectorSpace.objects.get(name=name)


def _locked(name: str, *, bump: bool) -> VectorSpace:
    """The space's row, locked until the caller's transaction ends; with `bump`, its revision already raised by one.

    The UPDATE comes first: it takes the row lock on PostgreSQL (and SQLite's write lock), so two writers can never
    read the same revision.
    """
    query = VectorSpace.objects.filter(name=name)
    if bump:
        changed = query.update(revision=F("revision") + 1)
    else:
        changed = query.update(updated_at=timezone.now())
    if not changed:
        raise NotFound(f"Vector space {name!r} does not exist.", field="space")
    return query.select_for_update().get()


def _keys_clean(keys: Iterable[int]) -> list[int]:
    if isinstance(keys, (str, bytes)):
        raise SuiteError("`keys` must be a list of integers.", field="keys")
    out = set()
    for key in keys:
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)):
            raise SuiteError(f"A vector key must be an integer, not {key!r}.", field="keys")
        out.add(int(key))
    return sorted(out)


def _chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# --- writes --------------------------------------------------------------------------------------------------

def vectors_request(*, space: str, keys: Sequence[int]) -> None:
    """Rows of these keys changed: embed them on a worker (`vectors.embed`) or now (SUITE_VECTORS_EMBED=process).

    Call after the app's rows are written. Inside a transaction the worker is asked once it commits (it must see
    the rows); in `process` mode the vectors are written in the caller's transaction (a rollback drops both).
    """
    keys = _keys_clean(keys)
    if not keys:
        return
    if settings.SUITE_VECTORS_EMBED == "process":
        vectors_embed(space=space, keys=keys)
        return
    space_ensure(name=space)
    for part in _chunks(keys, 4 * CHUNK):
        transaction.on_commit(lambda part=list(part): _send("vectors.embed", space=space, keys=part), robust=True)


def _send(task: str, **kwargs: object) -> None:
    """Queue a vectors task once the caller's transaction committed (robust: a broker that is down is logged, and the
    beat's repair and encoder check ask again)."""
    from config.celery import app

    app.send_task(task, kwargs=kwargs)  # routed by CELERY_TASK_ROUTES ("vectors.*" -> inference)


def vectors_delete(*, space: str, keys: Sequence[int]) -> int:
    """Tombstone these keys under every encoder of the space, in the caller's transaction; returns keys removed."""
    keys = _keys_clean(keys)
    source_for(space)  # an unknown prefix is a caller's mistake: say so
    if not keys or not VectorSpace.objects.filter(name=space).exists():
        return 0
    removed: set[int] = set()
    with transaction.atomic():
        row = _locked(space, bump=True)
        for part in _chunks(keys, IN_LIMIT):
            live = Embedding.objects.filter(space=row, key__in=list(part), vector__isnull=False)
            removed.update(live.values_list("key", flat=True))
            live.update(vector=None, content_hash="", revision=row.revision, updated_at=timezone.now())
    view_touch(space)
    return len(removed)


def vectors_embed(*, space: str, keys: Sequence[int] | None = None, progress: Progress | None = None) -> int:
    """Embed what is due: keys whose stored vector is missing or of another text, for the active and pending encoder.

    1. keys None (repair, re-embedding after a promotion): every key the source lists; vectors of keys it no longer
       lists are tombstoned. Given keys the source no longer has are tombstoned too (their rows were deleted).
    2. CHUNK keys at a time: texts from the source, embed the due ones, write them (`_rows_write`).
    3. Report (done, total) keys; return how many vectors were written.
    """
    row = space_ensure(name=space)
    source = source_for(space)
    if keys is None:
        wanted = sorted(key for key, _ in source.keys(space))
        stored = set(Embedding.objects.filter(space=row, vector__isnull=False).values_list("key", flat=True).distinct())
        gone = sorted(stored - set(wanted))
    else:
        wanted, gone = _keys_clean(keys), []
    written = 0
    for done, part in enumerate(_chunks(wanted, CHUNK), start=1):
        found = source.texts(space, list(part))
        gone += sorted(set(part) - {key for key, _, _ in found}) if keys is not None else []
        written += _texts_embed(space=space, found=found)
        if progress:
            progress(min(done * CHUNK, len(wanted)), len(wanted))
    if gone:
        vectors_delete(space=space, keys=gone)
    if not wanted and progress:
        progress(0, 0)
    view_touch(space)
    if keys is None:
        snapshot_maybe(space=space)
    return written


def _texts_embed(*, space: str, found: list[tuple[int, str, str]]) -> int:
    """Embed the texts whose stored hash differs, per encoder (active, then pending), and write them."""
    if not found:
        return 0
    row = space_get(space=space)  # fresh: a switch may have happened since the caller looked
    keys = [key for key, _, _ in found]
    written = 0
    for tag in filter(None, (tag_active(row), tag_pending(row))):
        have = dict(Embedding.objects.filter(space=row, encoder=tag.name, key__in=keys, vector__isnull=False)
                    .values_list("key", "content_hash"))
        due = [(key, text, digest) for key, text, digest in found if have.get(key) != digest]
        if not due:
            continue
        vectors = encode.texts_embed_tagged(tag=tag, texts=[text for _, text, _ in due])
        if vectors.ndim != 2 or vectors.shape != (len(due), tag.dim):
            raise SuiteError(f"Encoder {tag.name} gave vectors of shape {vectors.shape} for space {space!r}; "
                             f"it is recorded with dimension {tag.dim}.", field="encoder")
        written += _rows_write(space=space, encoder=tag.name, rows=[(key, digest) for key, _, digest in due], vectors=vectors)
    return written


def vectors_put(*, space: str, keys: Sequence[int], vectors: np.ndarray, content_hashes: Sequence[str]) -> int:
    """Store vectors made elsewhere under the space's active encoder (a benchmark's random vectors); returns rows written.

    The caller answers for them being that encoder's vectors of texts with these hashes; the shape must fit.
    """
    row = space_get(space=space)
    keys = [int(key) for key in keys]
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape != (len(keys), row.dim):
        raise SuiteError(f"Vectors of shape {vectors.shape} do not fit space {space!r}: {len(keys)} keys of dimension "
                         f"{row.dim} ({row.encoder}).", field="vectors")
    if len(content_hashes) != len(keys) or len(set(keys)) != len(keys):
        raise SuiteError("`keys` must be distinct and as many as `content_hashes`.", field="keys")
    written = 0
    for start in range(0, len(keys), 4 * CHUNK):
        stop = start + 4 * CHUNK
        written += _rows_write(space=space, encoder=row.encoder, rows=list(zip(keys[start:stop], content_hashes[start:stop])),
                               vectors=vectors[start:stop], check_source=False)
    view_touch(space)
    return written


def _rows_write(*, space: str, encoder: str, rows: list[tuple[int, str]], vectors: np.ndarray,
                check_source: bool = True) -> int:
    """Write (key, content hash) rows of `encoder` under the space's lock, stamped with a new revision.

    Only rows whose source text still has the hash that was embedded, and only while `encoder` is still the active
    or pending one: a slower worker holding an older text, or an encoder replaced meanwhile, writes nothing.
    """
    source = source_for(space) if check_source else None
    with transaction.atomic():
        row = _locked(space, bump=True)
        if encoder not in (row.encoder, row.pending_encoder):
            return 0
        if check_source:
            current = {key: digest for key, _, digest in source.texts(space, [key for key, _ in rows])}
        else:
            current = dict(rows)
        now = timezone.now()
        fresh = [Embedding(space=row, encoder=encoder, key=key, vector=vectors[n].astype(np.float32).tobytes(),
                           content_hash=digest, revision=row.revision, updated_at=now)
                 for n, (key, digest) in enumerate(rows) if current.get(key) == digest]
        Embedding.objects.bulk_create(fresh, batch_size=IN_LIMIT, update_conflicts=True,
                                      unique_fields=["space", "encoder", "key"],
                                      update_fields=["vector", "content_hash", "revision", "updated_at"])
    return len(fresh)


# --- encoder switches ----------------------------------------------------------------------------------------

def encoder_switch_check(*, space: str | None = None, task: str | None = None) -> list[str]:
    """Spaces whose task's encoder changed: mark the new one pending and ask for the re-embedding.

    Called by a promotion or rollback (with `task`, in its transaction) and by the beat (`vectors.encoder_check`,
    every SUITE_VECTORS_CHECK_S, which also re-asks for a switch whose worker died). A space whose encoder went back
    to the active one before its switch completed drops its pending encoder.
    """
    rows = list(VectorSpace.objects.all() if space is None else VectorSpace.objects.filter(name=space))
    if task is not None:  # a promotion of `task`: the spaces it embeds (by the source's word, else the row's)
        rows = [row for row in rows
                if (source_for(row.name).task(row.name) if source_known(row.name) else row.task or None) == task]
    changed = []
    for row in rows:
        if source_known(row.name):  # the source is the authority: a setting that names another task takes effect here
            task_now = source_for(row.name).task(row.name) or ""
            if task_now != row.task:
                VectorSpace.objects.filter(pk=row.pk).update(task=task_now)
                row.task = task_now
        tag = encode.encoder_tag_for(task=row.task or None)
        if tag == tag_active(row):
            if row.pending_encoder:
                VectorSpace.objects.filter(pk=row.pk, pending_encoder=row.pending_encoder).update(
                    pending_encoder="", pending_sha256="", pending_dim=None)
            continue
        if tag != tag_pending(row):
            VectorSpace.objects.filter(pk=row.pk, pending_encoder=row.pending_encoder).update(
                pending_encoder=tag.name, pending_sha256=tag.sha256, pending_dim=tag.dim)
        changed.append(row.name)
    for name in changed:
        if settings.SUITE_VECTORS_EMBED == "process":
            space_reembed(space=name)
        else:
            transaction.on_commit(lambda name=name: _send("vectors.reembed", space=name), robust=True)
    return changed


def space_reembed(*, space: str, progress: Progress | None = None) -> dict[str, object]:
    """Embed the whole space with its pending encoder (beside the active one), then switch when it is complete.

    One run per space at a time: a lease in the cache (Redis), renewed as chunks are written, so the beat's repeated
    request during a long switch is a no-op, and a dead worker's lease lapses for the next request to take over.
    """
    row = space_get(space=space)
    pending = row.pending_encoder
    if not pending:
        return {"space": space, "pending": None, "switched": False}
    lease, ttl = f"vectors:reembed:{row.uid}", 2 * settings.SUITE_VECTORS_CHECK_S
    if not cache.add(lease, pending, timeout=ttl):
        return {"space": space, "pending": pending, "switched": False, "skipped": "another worker is re-embedding it"}

    def renew(done: int, total: int) -> None:
        cache.touch(lease, ttl)
        if progress:
            progress(done, total)

    try:
        embedded = vectors_embed(space=space, keys=None, progress=renew)
        switched = _switch_if_complete(space=space, pending=pending)
    finally:
        cache.delete(lease)
    if switched:
        view_touch(space)
        snapshot_maybe(space=space)
    return {"space": space, "pending": pending, "embedded": embedded, "switched": switched}


def _switch_if_complete(*, space: str, pending: str) -> bool:
    """Make `pending` the active encoder when every key the source lists has a current vector under it (atomic)."""
    source = source_for(space)
    with transaction.atomic():
        row = _locked(space, bump=False)
        if row.pending_encoder != pending:
            return False
        have = dict(Embedding.objects.filter(space=row, encoder=pending, vector__isnull=False)
                    .values_list("key", "content_hash").iterator(chunk_size=10000))
        if any(have.get(key) != digest for key, digest in source.keys(space)):
            return False
        VectorSpace.objects.filter(pk=row.pk).update(
            encoder=row.pending_encoder, encoder_sha256=row.pending_sha256, dim=row.pending_dim,
            pending_encoder="", pending_sha256="", pending_dim=None, generation=F("generation") + 1,
            revision=F("revision") + 1, snapshot="", snapshot_revision=0)
    log.info("vector space %s switched to encoder %s", space, pending)
    return True


# --- status, purge, drop, snapshots -----------------------------------------------------------------------------

def space_status(*, space: str) -> dict[str, object]:
    """{"revision", "encoder", "pending_encoder", "count", "missing", "progress"} for pages and commands.

    count: keys with a vector of the active encoder; missing: keys the source lists without one; progress: the
    share of keys already embedded by the pending encoder (None when no switch runs).
    """
    row = space_get(space=space)
    live = Embedding.objects.filter(space=row, vector__isnull=False)
    count = live.filter(encoder=row.encoder).count()
    source = source_for(space) if source_known(space) else None
    if source is None:
        total = count
    elif source.count is not None:  # cheap: consoles call this on every refresh
        total = int(source.count(space))
    else:
        total = sum(1 for _ in source.keys(space))
    progress = None
    if row.pending_encoder:
        progress = round(live.filter(encoder=row.pending_encoder).count() / total, 4) if total else 1.0
    return {"space": space, "revision": row.revision, "generation": row.generation, "encoder": row.encoder,
            "pending_encoder": row.pending_encoder or None, "count": count, "missing": max(0, total - count),
            "progress": progress, "snapshot": row.snapshot or None}


def tombstones_purge(*, space: str | None = None, keep_s: int | None = None) -> dict[str, int]:
    """Delete tombstones older than `keep_s` (SUITE_VECTORS_PURGE_S), rows of encoders no longer in use, and snapshot
    files no space loads any more.

    1. Tombstones: raises `purged_revision` to the newest one deleted: a process synced below it reloads fully.
       Never past the snapshot's revision, since a reload from the snapshot needs the deletions made after it.
    2. Snapshot files (`_snapshot_files_purge`): those of the space(s) that are not its current `snapshot`, and
       with `space` None the folders of spaces that no longer exist, once superseded for max(keep_s,
       SNAPSHOT_GRACE_S) seconds.
    """
    keep_s = settings.SUITE_VECTORS_PURGE_S if keep_s is None else keep_s
    cutoff_time = timezone.now() - timedelta(seconds=keep_s)
    names = [space] if space is not None else list(VectorSpace.objects.values_list("name", flat=True))
    out = {"tombstones": 0, "retired": 0, "snapshot_files": 0, "snapshot_folders": 0}
    for name in names:
        with transaction.atomic():
            row = _locked(name, bump=False)
            in_use = [e for e in (row.encoder, row.pending_encoder) if e]
            out["retired"] += Embedding.objects.filter(space=row).exclude(encoder__in=in_use).delete()[0]
            old = Embedding.objects.filter(space=row, vector__isnull=True, updated_at__lt=cutoff_time)
            cutoff = old.aggregate(top=Max("revision"))["top"]
            if cutoff is None:
                continue
            if row.snapshot:
                cutoff = min(cutoff, row.snapshot_revision)
            out["tombstones"] += Embedding.objects.filter(space=row, vector__isnull=True, revision__lte=cutoff).delete()[0]
            if cutoff > row.purged_revision:
                VectorSpace.objects.filter(pk=row.pk).update(purged_revision=cutoff)
    files, folders = _snapshot_files_purge(space=space, grace_s=max(keep_s, SNAPSHOT_GRACE_S))
    out["snapshot_files"], out["snapshot_folders"] = files, folders
    return out


def _snapshot_files_purge(*, space: str | None, grace_s: float) -> tuple[int, int]:
    """Delete superseded snapshot files under SUITE_REGISTRY_DIR/vectors/<uid>/; returns (files, folders) removed.

    A file other than its space's current `snapshot` (an older revision, a retired encoder, a build that lost to a
    newer one, a crashed writer's temp file) goes once it AND the current snapshot that replaced it were last
    modified more than `grace_s` ago: a process that read the space's row just before the new snapshot was recorded
    may still be opening the previous file, so it stays for the grace period after being superseded. The grace is
    max(SUITE_VECTORS_PURGE_S, SNAPSHOT_GRACE_S = 1 h): a load takes seconds, so an hour is ample. With `space`
    None, folders whose uid names no space (a drop whose cleanup did not run) lose their files on the same
    rule and are removed once empty. Folders not named by a uid are not the store's and are left alone.
    """
    root = Path(settings.REGISTRY_DIR) / "vectors"
    if not root.is_dir():
        return 0, 0
    rows = VectorSpace.objects.all() if space is None else VectorSpace.objects.filter(name=space)
    current = {str(uid): snapshot for uid, snapshot in rows.values_list("uid", "snapshot")}
    if space is not None:
        folders = [root / uid for uid in current if (root / uid).is_dir()]
    else:
        folders = [folder for folder in root.iterdir() if folder.is_dir() and _is_uid(folder.name)]
    horizon = time.time() - grace_s
    files = removed_folders = 0
    for folder in folders:
        uid = folder.name
        keep = Path(settings.REGISTRY_DIR) / current[uid] if current.get(uid) else None
        try:
            keep_mtime = keep.stat().st_mtime if keep is not None else float("-inf")
        except FileNotFoundError:
            keep, keep_mtime = None, float("-inf")
        for path in folder.iterdir():
            if not path.is_file() or path.is_symlink() or (keep is not None and path == keep):
                continue
            try:
                if max(path.stat().st_mtime, keep_mtime) < horizon:
                    path.unlink()
                    files += 1
            except FileNotFoundError:  # another purge took it
                continue
        if uid not in current and space is None:
            try:
                folder.rmdir()  # only when empty: a file still in its grace period keeps it
                removed_folders += 1
            except OSError:
                pass
    if files or removed_folders:
        log.info("vector snapshots purged: %d file(s), %d folder(s) of dropped spaces", files, removed_folders)
    return files, removed_folders


def _is_uid(name: str) -> bool:
    try:
        return str(uuid.UUID(name)) == name
    except ValueError:
        return False


def space_drop(*, space: str) -> None:
    """Delete the space, its vectors and its snapshots (a knowledge base deleted)."""
    row = VectorSpace.objects.filter(name=space).first()
    if row is None:
        return
    folder = Path(settings.REGISTRY_DIR) / "vectors" / str(row.uid)
    row.delete()
    transaction.on_commit(lambda: shutil.rmtree(folder, ignore_errors=True))
    views_forget(space=space)


def snapshot_maybe(*, space: str) -> bool:
    """Ask for an IVF snapshot when the space is past SUPPORT_IVF_THRESHOLD and has none for recent rows."""
    row = VectorSpace.objects.filter(name=space).first()
    if row is None:
        return False
    count = Embedding.objects.filter(space=row, encoder=row.encoder, vector__isnull=False).count()
    if count < ivf_threshold():
        return False
    if row.snapshot and row.revision - row.snapshot_revision < max(1, count // 10):  # fresh enough: deltas are cheap
        return False
    if settings.SUITE_VECTORS_EMBED == "process":
        snapshot_build(space=space)
    else:
        transaction.on_commit(lambda: _send("vectors.snapshot", space=space), robust=True)
    return True


def vectors_stored(*, space: str, keys: Sequence[int]) -> dict[int, np.ndarray]:
    """The active encoder's stored vectors of these keys (a worker reads them without building an index)."""
    row = space_get(space=space)
    out: dict[int, np.ndarray] = {}
    for part in _chunks(_keys_clean(keys), IN_LIMIT):
        for key, blob in Embedding.objects.filter(space=row, encoder=row.encoder, key__in=list(part),
                                                  vector__isnull=False).values_list("key", "vector"):
            out[key] = vectors_decode(blob, row.dim)
    return out
