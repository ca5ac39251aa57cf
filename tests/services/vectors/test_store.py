"""The shared vector store: revisions in commit order, incremental sync, tombstones and purge, atomic encoder switches,
IVF snapshots, bad input. A stand-in encoder makes each (encoder, text) pair its own unit vector, so a test can tell
which encoder made a vector; "another process" is this one after views_forget() (nothing cached), and the real Celery
worker in the last test."""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np
import pytest

from apps.vectors.models import Embedding, VectorSpace
from services.errors import NotFound, SuiteError
from services.vectors import (EncoderTag, TextSource, encode, encoder_switch_check, query_vectors, source_register,
                              space_drop, space_reembed, space_status, space_view, store, tombstones_purge,
                              vectors_delete, vectors_embed, vectors_put, vectors_request, views_forget)
from tests.helpers import wait_until

DIM = 16
SPACE = "notes:1"
OLD = EncoderTag(name="base:fake", sha256="a" * 64, dim=DIM)
NEW = EncoderTag(name="notes:v2", sha256="b" * 64, dim=DIM)
NOTES: dict[int, str] = {}  # the "app's rows" the source reads: key -> text


def fake_vectors(tag: EncoderTag, texts: list[str]) -> np.ndarray:
    rows = []
    for text in texts:
        seed = int.from_bytes(hashlib.sha256(f"{tag.name}|{text}".encode()).digest()[:8], "little")
        row = np.random.default_rng(seed).standard_normal(tag.dim).astype(np.float32)
        rows.append(row / np.linalg.norm(row))
    return np.stack(rows) if rows else np.zeros((0, tag.dim), dtype=np.float32)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def notes(monkeypatch: pytest.MonkeyPatch, settings) -> dict[str, EncoderTag]:  # noqa: ANN001
    """A "notes" source over NOTES, embedded by the stand-in; returns the holder of the task's encoder now."""
    NOTES.clear()
    current = {"tag": OLD}
    source_register("notes", TextSource(
        task=lambda space: "notes",
        texts=lambda space, keys: [(key, NOTES[key], digest(NOTES[key])) for key in keys if key in NOTES],
        keys=lambda space: [(key, digest(text)) for key, text in sorted(NOTES.items())]))
    monkeypatch.setattr(encode, "encoder_tag_for", lambda *, task: current["tag"])
    monkeypatch.setattr(encode, "texts_embed_tagged", lambda *, tag, texts, progress=None: fake_vectors(tag, list(texts)))
    settings.SUITE_VECTORS_SYNC_S = 0  # every read looks at the revision
    settings.REGISTRY_DIR = Path(settings.VAR_DIR) / "test-store-registry"
    views_forget()
    yield current
    views_forget()


def write(notes: dict[int, str]) -> None:
    NOTES.update(notes)
    vectors_request(space=SPACE, keys=list(notes))


def stored(view, key: int) -> np.ndarray:  # noqa: ANN001
    return view.index.index.reconstruct(key)


def revisions(key: int) -> int:
    return Embedding.objects.get(space__name=SPACE, key=key, encoder=OLD.name).revision


@pytest.mark.django_db
def test_revisions_rise_in_write_order_and_another_process_follows_adds_updates_and_deletes(notes) -> None:  # noqa: ANN001
    write({1: "red tent", 2: "blue pan", 3: "green knife"})
    view = space_view(space=SPACE)
    first = view.revision
    assert view.index.ids() == {1, 2, 3} and view.tag == OLD and view.missing == 0
    assert revisions(1) == revisions(2) == revisions(3) == first  # one write, one revision

    write({2: "blue pot"})  # an update
    assert vectors_delete(space=SPACE, keys=[3]) == 1
    del NOTES[3]
    write({4: "yellow lamp"})  # an add
    assert first < revisions(2) < revisions(3) < revisions(4) == VectorSpace.objects.get(name=SPACE).revision
    assert Embedding.objects.get(space__name=SPACE, key=3).vector is None  # a tombstone, until purged

    same = space_view(space=SPACE)
    assert same is view and view.revision == revisions(4)  # deltas applied in place, no reload
    assert view.index.ids() == {1, 2, 4}
    assert np.allclose(stored(view, 2), fake_vectors(OLD, ["blue pot"])[0])

    views_forget()  # another process, starting cold
    other = space_view(space=SPACE)
    assert other is not view and other.revision == view.revision and other.index.ids() == {1, 2, 4}
    ids, scores = other.index.search(vectors=query_vectors(view=other, texts=["yellow lamp"]), k=1)
    assert ids[0][0] == 4 and scores[0][0] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_get_distinct_revisions_and_a_reader_syncing_meanwhile_misses_none(notes) -> None:  # noqa: ANN001
    import threading

    from django.db import connection

    NOTES.update({key: f"note number {key}" for key in range(1, 41)})
    write({0: "the first note"})
    first_view = space_view(space=SPACE)
    stop, errors = threading.Event(), []

    def writer(first: int) -> None:
        try:
            for key in range(first, first + 10):
                vectors_embed(space=SPACE, keys=[key])  # one transaction, one revision each
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    def reader() -> None:
        try:
            while not stop.is_set():
                space_view(space=SPACE)  # deltas applied while the writers commit
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(first,)) for first in (1, 11, 21, 31)]
    follower = threading.Thread(target=reader)
    follower.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    follower.join()
    assert errors == []
    rows = list(Embedding.objects.filter(space__name=SPACE).values_list("revision", flat=True))
    assert len(rows) == len(set(rows)) == 41  # every write its own revision
    view = space_view(space=SPACE)  # the view the reader kept in step, never reloaded
    assert view is first_view and view.revision == max(rows) and view.index.ids() == set(range(41))


@pytest.mark.django_db
def test_an_unchanged_text_is_not_embedded_again_and_a_missing_key_is_counted(notes, monkeypatch) -> None:  # noqa: ANN001
    write({1: "red tent", 2: "blue pan"})
    assert vectors_embed(space=SPACE, keys=[1, 2]) == 0  # hashes match: nothing due
    NOTES[3] = "never requested"
    status = space_status(space=SPACE)
    assert (status["count"], status["missing"], status["encoder"], status["pending_encoder"]) == (2, 1, OLD.name, None)
    assert vectors_embed(space=SPACE) == 1  # keys None: the repair embeds what is missing
    assert space_status(space=SPACE)["missing"] == 0


@pytest.mark.django_db
def test_a_writer_reads_its_own_write_and_forgets_it_when_its_transaction_rolls_back(notes) -> None:  # noqa: ANN001
    from django.db import transaction

    write({1: "red tent"})
    space_view(space=SPACE)
    with pytest.raises(RuntimeError, match="rolled back"), transaction.atomic():
        write({2: "blue pan"})
        assert space_view(space=SPACE).index.ids() == {1, 2}  # its own write, at once
        raise RuntimeError("rolled back")
    del NOTES[2]
    assert space_view(space=SPACE).index.ids() == {1}  # the revision went back: reloaded, not kept


@pytest.mark.django_db
def test_purged_tombstones_make_a_process_synced_below_them_reload_fully(notes) -> None:  # noqa: ANN001
    write({1: "red tent", 2: "blue pan"})
    view = space_view(space=SPACE)
    vectors_delete(space=SPACE, keys=[1])
    del NOTES[1]
    deleted_at = VectorSpace.objects.get(name=SPACE).revision

    assert tombstones_purge(keep_s=0)["tombstones"] == 1
    space = VectorSpace.objects.get(name=SPACE)
    assert space.purged_revision == deleted_at and not Embedding.objects.filter(space=space, vector__isnull=True).exists()
    again = space_view(space=SPACE)  # its revision is below the purge: it cannot see the deletion as a delta
    assert again is not view and again.index.ids() == {2} and again.revision == deleted_at


@pytest.mark.django_db
def test_an_encoder_switch_serves_the_old_vectors_until_the_new_ones_are_complete(notes, settings, monkeypatch) -> None:  # noqa: ANN001
    write({1: "red tent", 2: "blue pan", 3: "green knife"})
    view = space_view(space=SPACE)
    asked = []
    monkeypatch.setattr(store, "_send", lambda task, **kwargs: asked.append((task, kwargs)))
    settings.SUITE_VECTORS_EMBED = "worker"
    notes["tag"] = NEW  # the task's champion changed (a promotion)

    assert encoder_switch_check(space=SPACE) == [SPACE]
    assert space_status(space=SPACE)["pending_encoder"] == NEW.name
    vectors_embed(space=SPACE, keys=[1])  # the worker is part-way through
    assert store._switch_if_complete(space=SPACE, pending=NEW.name) is False
    partial = space_view(space=SPACE)
    assert partial is view and partial.tag == OLD and np.allclose(stored(partial, 1), fake_vectors(OLD, ["red tent"])[0])
    assert space_status(space=SPACE)["progress"] == pytest.approx(1 / 3, abs=1e-3)
    ids, scores = partial.index.search(vectors=query_vectors(view=partial, texts=["blue pan"]), k=1)
    assert ids[0][0] == 2 and scores[0][0] == pytest.approx(1.0, abs=1e-5)  # queries embedded by the OLD encoder

    outcome = space_reembed(space=SPACE)  # the worker's vectors.reembed
    assert outcome["switched"] is True and outcome["embedded"] == 2  # only the keys not yet embedded by NEW
    switched = space_view(space=SPACE)
    assert switched.tag == NEW and switched.index.ids() == {1, 2, 3}
    assert np.allclose(stored(switched, 2), fake_vectors(NEW, ["blue pan"])[0])
    status = space_status(space=SPACE)
    assert (status["encoder"], status["pending_encoder"]) == (NEW.name, None)
    assert tombstones_purge(keep_s=0)["retired"] == 3  # the old encoder's rows go
    assert encoder_switch_check(space=SPACE) == []


@pytest.mark.django_db
def test_a_promotion_rolled_back_before_the_switch_drops_the_pending_encoder(notes, settings, monkeypatch) -> None:  # noqa: ANN001
    write({1: "red tent"})
    monkeypatch.setattr(store, "_send", lambda task, **kwargs: None)
    settings.SUITE_VECTORS_EMBED = "worker"
    notes["tag"] = NEW
    encoder_switch_check()
    notes["tag"] = OLD
    assert encoder_switch_check() == []
    assert space_status(space=SPACE)["pending_encoder"] is None


@pytest.mark.django_db
def test_a_second_re_embedding_of_a_space_leaves_it_to_the_one_running(notes, settings, monkeypatch) -> None:  # noqa: ANN001
    from django.core.cache import cache

    write({1: "red tent"})
    monkeypatch.setattr(store, "_send", lambda task, **kwargs: None)
    settings.SUITE_VECTORS_EMBED = "worker"
    notes["tag"] = NEW
    encoder_switch_check(space=SPACE)
    lease = f"vectors:reembed:{VectorSpace.objects.get(name=SPACE).uid}"
    assert cache.add(lease, "another worker", timeout=60)
    try:
        assert space_reembed(space=SPACE)["skipped"] and VectorSpace.objects.get(name=SPACE).encoder == OLD.name
    finally:
        cache.delete(lease)
    assert space_reembed(space=SPACE)["switched"] is True and cache.get(lease) is None


@pytest.mark.django_db
def test_the_source_names_the_task_whose_promotions_switch_a_space(notes) -> None:  # noqa: ANN001
    write({1: "red tent"})
    VectorSpace.objects.filter(name=SPACE).update(task="another-task")  # e.g. a setting changed since it was created
    assert encoder_switch_check(task="notes") == []  # found by the source's task; its encoder is unchanged
    assert VectorSpace.objects.get(name=SPACE).task == "notes"


@pytest.mark.django_db(transaction=True)
def test_a_process_with_a_view_reloads_a_switched_space_in_the_background(notes) -> None:  # noqa: ANN001
    write({1: "red tent", 2: "blue pan"})
    old = space_view(space=SPACE)
    notes["tag"] = NEW
    encoder_switch_check(space=SPACE)  # process mode: embedded and switched here
    assert VectorSpace.objects.get(name=SPACE).encoder == NEW.name
    views_forget()
    assert space_view(space=SPACE).tag == NEW
    space_drop(space=SPACE)
    assert space_view(space=SPACE) is None and old.tag == OLD

    write({1: "red tent"})  # a new space under the same name: a new uid, never the dropped one's view
    notes["tag"] = OLD
    first = space_view(space=SPACE)
    assert first.tag == NEW  # created with the encoder of the moment
    encoder_switch_check(space=SPACE)
    first_seen = space_view(space=SPACE)  # outside a transaction: the reload runs on a thread, the old view answers
    assert first_seen.tag in (NEW, OLD)
    wait_until(lambda: space_view(space=SPACE).tag == OLD, timeout=20, message="the background reload never finished")


@pytest.mark.django_db
def test_a_snapshot_is_loaded_and_the_rows_after_it_are_applied(notes, settings) -> None:  # noqa: ANN001
    settings.SUPPORT_IVF_THRESHOLD = 40
    NOTES.update({key: f"note number {key}" for key in range(1, 61)})
    vectors_embed(space=SPACE)  # a full pass past the threshold: the IVF snapshot is trained (here: process mode)
    space = VectorSpace.objects.get(name=SPACE)
    assert space.snapshot.startswith(f"vectors/{space.uid}/") and not Path(space.snapshot).is_absolute()
    assert (Path(settings.REGISTRY_DIR) / space.snapshot).is_file() and space.snapshot_revision == space.revision

    write({61: "note number 61"})
    vectors_delete(space=SPACE, keys=[1])
    del NOTES[1]
    views_forget()
    view = space_view(space=SPACE)
    assert view.index.kind == "ivf" and view.index.ids() == set(range(2, 62))
    assert view.revision == VectorSpace.objects.get(name=SPACE).revision
    ids, _ = view.index.search(vectors=query_vectors(view=view, texts=["note number 61"]), k=1)
    assert ids[0][0] == 61


@pytest.mark.django_db
def test_the_purge_deletes_superseded_snapshot_files_after_their_grace_period_and_folders_of_dropped_spaces(
        notes, settings, tmp_path: Path) -> None:  # noqa: ANN001
    settings.REGISTRY_DIR = tmp_path / "registry"  # only this test's files: the counts below are exact
    settings.SUPPORT_IVF_THRESHOLD = 40
    NOTES.update({key: f"note number {key}" for key in range(1, 61)})
    vectors_embed(space=SPACE)
    space = VectorSpace.objects.get(name=SPACE)
    root = Path(settings.REGISTRY_DIR) / "vectors"
    current = Path(settings.REGISTRY_DIR) / space.snapshot
    folder = current.parent
    assert current.name == f"base_fake-r{space.snapshot_revision}.faiss"
    older = folder / f"base_fake-r{space.snapshot_revision - 1}.faiss"  # an earlier revision's snapshot
    retired = folder / "notes_v0-r7.faiss"  # a retired encoder's
    fresh_older = folder / "notes_v0-r8.faiss"  # superseded too, but written just now (a build that lost)
    dropped = root / "0b9c8f1e-1f8e-4a34-9a57-5a0c1e9a1d2b"  # a space that no longer exists
    dropped_fresh = root / "6f1d2c3b-8a9e-4f70-b1c2-d3e4f5a6b7c8"
    foreign = root / "not-a-space"  # not the store's: never touched
    for path in (older, retired, fresh_older, dropped / "base_fake-r3.faiss", dropped_fresh / "base_fake-r4.faiss",
                 foreign / "x.faiss"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"old index")
    two_hours_ago = time.time() - 2 * 3600
    for path in (older, retired, dropped / "base_fake-r3.faiss", foreign / "x.faiss"):
        os.utime(path, (two_hours_ago, two_hours_ago))

    # One space's purge looks at its own folder only; its current snapshot was recorded just now, so the files it
    # replaced stay (a process may have read the row before and be opening one of them).
    assert tombstones_purge(space=SPACE, keep_s=0)["snapshot_files"] == 0
    assert older.exists() and retired.exists() and dropped.exists()

    out = tombstones_purge(keep_s=0)  # every space: the dropped space's old folder goes, the fresh one stays
    assert (out["snapshot_files"], out["snapshot_folders"]) == (1, 1)
    assert not dropped.exists() and (dropped_fresh / "base_fake-r4.faiss").exists() and (foreign / "x.faiss").exists()
    assert older.exists() and retired.exists()

    os.utime(current, (two_hours_ago, two_hours_ago))  # the current snapshot has been the current one for two hours
    assert tombstones_purge(keep_s=3 * 3600)["snapshot_files"] == 0  # a longer SUITE_VECTORS_PURGE_S: a longer grace
    out = tombstones_purge(keep_s=0)  # the grace is at least an hour
    assert (out["snapshot_files"], out["snapshot_folders"]) == (2, 0)
    assert not older.exists() and not retired.exists()
    assert current.is_file() and fresh_older.is_file() and (foreign / "x.faiss").exists()
    views_forget()
    assert space_view(space=SPACE).index.kind == "ivf"  # still loads from its snapshot


@pytest.mark.django_db
def test_bad_input_is_refused_with_a_message_naming_it(notes, monkeypatch) -> None:  # noqa: ANN001
    with pytest.raises(NotFound, match="Unknown vector space 'nope:1'"):
        vectors_request(space="nope:1", keys=[1])
    with pytest.raises(NotFound, match="'notes:9' does not exist"):
        space_status(space="notes:9")
    assert space_view(space="notes:9") is None
    with pytest.raises(SuiteError, match="must be an integer"):
        vectors_request(space=SPACE, keys=["1"])
    write({1: "red tent"})
    with pytest.raises(SuiteError, match=r"do not fit space 'notes:1': 1 keys of dimension 16"):
        vectors_put(space=SPACE, keys=[1], vectors=np.zeros((1, 8), dtype=np.float32), content_hashes=["x"])
    monkeypatch.setattr(encode, "texts_embed_tagged", lambda *, tag, texts, progress=None: np.zeros((len(texts), 8), np.float32))
    NOTES[2] = "blue pan"
    with pytest.raises(SuiteError, match=r"gave vectors of shape \(1, 8\).*dimension 16"):
        vectors_request(space=SPACE, keys=[2])
    assert space_view(space=SPACE).index.ids() == {1}  # nothing stored was lost


@pytest.mark.django_db(transaction=True)
def test_items_written_here_are_embedded_by_the_real_worker_and_this_process_follows(
        celery_worker_process, settings, tmp_path: Path) -> None:  # noqa: ANN001
    """The worker path end to end: rows committed here, `vectors.embed` on the worker embeds them with the tiny BERT,
    this process's view follows by revision (the worker is "the other host")."""
    from apps.recommender.models import Item
    from services.recommender import catalog
    from services.recommender.vectors import SPACE as ITEMS, index_get, items_embed_request
    from services.registry.serving import serving_reset
    from tests.helpers import run_json
    from tests.services.conftest import tiny_base_write

    # The worker reads the registry folder it was started with (SUITE_VAR_DIR/registry): register the base there.
    run_json("registry_add_base", name="tiny-bert", path=str(tiny_base_write(tmp_path / "tiny-base")), default=True)
    serving_reset()
    settings.SUITE_VECTORS_EMBED = "worker"
    views_forget()

    def upsert(rows: list[dict]) -> list[int]:
        report = catalog.items_upsert(rows=[catalog.item_clean(row) for row in rows])
        items_embed_request(pks=report.reembed)  # committed already: the task is sent at once
        return report.reembed

    def ids() -> set[int]:
        return index_get(fresh=True).ids()

    pks = upsert([{"id": "w1", "title": "Dome tent", "description": "camping tent"},
                  {"id": "w2", "title": "Frying pan", "description": "kitchen pan"}])
    wait_until(lambda: ids() == set(pks), timeout=120, message="the worker never embedded the new items")
    view = space_view(space=ITEMS)
    assert view.tag.name == "base:tiny-bert" and view.missing == 0
    before = view.index.index.reconstruct(pks[0]).copy()

    upsert([{"id": "w1", "title": "Chef knife", "description": "kitchen knife steel"}])
    wait_until(lambda: not np.allclose(index_get(fresh=True).index.reconstruct(pks[0]), before), timeout=120,
               message="the changed text's new vector never reached this process")

    Item.objects.filter(pk=pks[1]).delete()  # a row deleted; the request lets the worker tombstone its vector
    items_embed_request(pks=[pks[1]])
    wait_until(lambda: ids() == {pks[0]}, timeout=120, message="the deleted item's vector was never removed")
    assert Embedding.objects.get(space__name=ITEMS, key=pks[1]).vector is None
