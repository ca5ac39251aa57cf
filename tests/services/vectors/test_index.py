"""The dense index alone (no Django): exact vs IVF by size, upsert/remove by id, save and reload, encoder tag check."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from services.vectors import DenseIndex, EncoderTag

TAG = EncoderTag(name="enc", sha256="a" * 64, dim=16)


def unit(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, TAG.dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_upserted_vectors_replace_those_under_the_same_id_and_removed_ones_are_gone() -> None:
    vectors = unit(10, 0)
    index = DenseIndex.build(tag=TAG, ids=np.arange(100, 110), vectors=vectors)
    ids, scores = index.search(vectors=vectors[3:4], k=1)
    assert ids[0, 0] == 103 and scores[0, 0] > 0.999
    index.upsert(ids=np.array([103]), vectors=vectors[7:8])
    assert len(index) == 10
    assert set(index.search(vectors=vectors[7:8], k=2)[0][0]) == {103, 107}
    assert index.remove(ids=np.array([103, 999])) == 1
    ids, _ = index.search(vectors=vectors, k=12)
    assert 103 not in ids and (ids[:, -3:] == -1).all()  # fewer items than k: padded with -1


def test_a_saved_index_reloads_only_for_the_encoder_that_built_it(tmp_path: Path) -> None:
    vectors = unit(5, 1)
    DenseIndex.build(tag=TAG, ids=np.arange(5), vectors=vectors).save(folder=tmp_path)
    again = DenseIndex.load(folder=tmp_path, expected=TAG)
    assert again is not None and len(again) == 5 and again.search(vectors=vectors[2:3], k=1)[0][0, 0] == 2
    assert DenseIndex.load(folder=tmp_path, expected=EncoderTag(name="enc", sha256="b" * 64, dim=16)) is None
    assert DenseIndex.load(folder=tmp_path / "nothing", expected=TAG) is None


def test_past_the_threshold_the_index_is_ivf_and_still_updates_in_place(tmp_path: Path, settings) -> None:  # noqa: ANN001
    settings.SUPPORT_IVF_THRESHOLD = 1000  # read at build time
    vectors = unit(1600, 2)
    index = DenseIndex.build(tag=TAG, ids=np.arange(1600), vectors=vectors)
    assert index.kind == "ivf"
    index.index.nprobe = index.index.nlist  # exhaustive for an exact assertion
    assert index.search(vectors=vectors[42:43], k=1)[0][0, 0] == 42
    index.upsert(ids=np.array([42]), vectors=vectors[43:44])
    index.remove(ids=np.array([43]))
    assert index.search(vectors=vectors[43:44], k=1)[0][0, 0] == 42
    assert index.scores_for(vector=vectors[43], ids=[42])[42] > 0.999
    index.save(folder=tmp_path)
    assert DenseIndex.load(folder=tmp_path, expected=TAG).kind == "ivf"


def test_a_reloaded_ivf_index_visits_as_many_lists_as_the_setting_says(tmp_path: Path, settings) -> None:  # noqa: ANN001
    settings.SUPPORT_IVF_THRESHOLD = 100
    DenseIndex.build(tag=TAG, ids=np.arange(400), vectors=unit(400, 3)).save(folder=tmp_path)
    settings.SUPPORT_IVF_NPROBE = 3  # read when loading, not at import
    assert DenseIndex.load(folder=tmp_path, expected=TAG).index.nprobe == 3


def test_many_vectors_at_once_equal_one_at_a_time_with_missing_keys_marked(settings) -> None:  # noqa: ANN001
    settings.SUPPORT_IVF_THRESHOLD = 100  # the second index is IVF (the recommender's on a large catalogue)
    for n, kind in ((20, "flat"), (400, "ivf")):
        vectors = unit(n, 3)
        index = DenseIndex.build(tag=TAG, ids=np.arange(1000, 1000 + n), vectors=vectors)
        assert index.kind == kind
        index.remove(ids=np.array([1002]))
        for keys in (np.array([1000, 1001, 1003]), np.array([1003, 1002, 5, 1000])):  # all stored; some not
            found, many = index.vectors(keys)
            for key, got, ok in zip(keys.tolist(), many, found.tolist()):
                one = index.vector(key)
                assert ok == (one is not None)
                assert np.array_equal(got, one if one is not None else np.zeros(TAG.dim, dtype=np.float32))
        found, many = index.vectors(np.array([], dtype=np.int64))
        assert found.shape == (0,) and many.shape == (0, TAG.dim)
