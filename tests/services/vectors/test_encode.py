"""Embedding for a task: the champion, else the default base; batched with progress; tagged without a model load."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.ml.device import device_pick, tolerance_for
from services.vectors import encoder_tag_for, texts_embed_for, texts_embed_tagged
from tests.config.test_settings import run_manage
from tests.services.conftest import tiny_base_write

pytestmark = pytest.mark.django_db


@pytest.fixture
def tiny_base(settings, tmp_path: Path) -> Path:  # noqa: ANN001
    """A 2-layer BERT (hidden 32) registered as the default base (the registry under tmp_path)."""
    from services.registry.serving import serving_reset
    from services.registry.versions import base_register

    settings.REGISTRY_DIR = tmp_path / "registry"
    settings.VAR_DIR = tmp_path / "var"
    folder = tiny_base_write(tmp_path / "tiny-base")
    base_register(name="tiny-bert", path=folder, licence="test", default=True)
    serving_reset()
    yield folder
    serving_reset()


def test_a_task_without_a_champion_is_embedded_by_the_default_base(tiny_base: Path) -> None:  # noqa: ARG001
    tag = encoder_tag_for(task="recommender")
    assert tag == encoder_tag_for(task=None) and tag.name == "base:tiny-bert" and tag.dim == 32 and len(tag.sha256) == 64
    texts = [f"text number {i}" for i in range(300)]
    seen: list[tuple[int, int]] = []
    vectors = texts_embed_for(task="no-such-task", texts=texts, progress=lambda done, total: seen.append((done, total)))
    assert vectors.shape == (300, 32) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    assert seen == [(128, 300), (256, 300), (300, 300)]
    assert np.allclose(vectors[:5], texts_embed_for(task=None, texts=texts[:5]), atol=tolerance_for(device_pick()[1]))
    assert texts_embed_for(task=None, texts=[]).shape == (0, 32)


def test_tagged_embedding_uses_exactly_the_encoder_named_and_refuses_a_changed_one(tiny_base: Path) -> None:  # noqa: ARG001
    from dataclasses import replace

    from services.errors import SuiteError

    tag = encoder_tag_for(task=None)
    texts = ["tent", "stove", "pan"]
    vectors = texts_embed_tagged(tag=tag, texts=texts)
    assert vectors.shape == (3, 32) and np.allclose(vectors, texts_embed_for(task=None, texts=texts), atol=tolerance_for(device_pick()[1]))
    assert texts_embed_tagged(tag=tag, texts=[]).shape == (0, 32)
    with pytest.raises(SuiteError, match="changed since its vectors were made"):
        texts_embed_tagged(tag=replace(tag, sha256="0" * 64), texts=texts)
    with pytest.raises(SuiteError, match="neither `<task>:v<N>` nor `base:<name>`"):
        texts_embed_tagged(tag=replace(tag, name="recommender-v1"), texts=texts)


@pytest.mark.parametrize("name", ["SUPPORT_IVF_THRESHOLD", "SUPPORT_IVF_NPROBE", "SUPPORT_FAISS_THREADS"])
def test_a_bad_index_tunable_fails_loudly_naming_the_variable(name: str) -> None:
    result = run_manage("check", **{name: "many"})
    assert result.returncode != 0 and "ImproperlyConfigured" in result.stderr and name in result.stderr
