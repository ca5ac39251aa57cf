"""Support desk fixtures: a tiny base encoder registered as the default, and a small fixture knowledge base."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from services.support.lexical import text_tokens
from services.vectors import EncoderTag, encode
from tests.helpers import run_json
from tests.services.conftest import tiny_base_write

FAQ_CSV = """question,answer,intent,url,title
How do I reset my password?,Open Settings > Security and choose Reset password.,password_reset,https://help.example.com/password,Reset your password
What is your refund policy?,Refunds are paid within 30 days of the return arriving.,refund,https://help.example.com/refunds,Refunds
How long does the XR-200 battery last?,The XR-200 battery lasts about 10 hours per charge.,battery,https://help.example.com/xr200,XR-200 battery
Do you ship abroad?,We ship to 40 countries; see the shipping page.,shipping,https://help.example.com/shipping,Shipping
"""

MANUAL_MD = """# Router manual

Unpack the router and connect the power cable.

## Factory reset

Hold the reset button of the QZ-77 router for 12 seconds until the light blinks amber.

## Warranty

The warranty covers manufacturing defects for 24 months.
"""


@pytest.fixture
def tiny_encoder(settings, tmp_path: Path, request: pytest.FixtureRequest) -> Path:  # noqa: ANN001
    """A 2-layer random BERT registered as the default base (vectors in the database).

    The registry folder is the test's own under tmp_path, unless the session's real Celery worker embeds for the
    test: the registry records the base relative to its folder and the worker resolves it in its own
    SUITE_REGISTRY_DIR (this run's default), as another host would, so such a test shares that folder.
    """
    from services.registry.serving import serving_reset
    from services.support.retrieval import searches_reset

    searches_reset()
    if "celery_worker_process" not in request.fixturenames:
        settings.REGISTRY_DIR = tmp_path / "registry"
    settings.VAR_DIR = tmp_path / "var"
    settings.SUPPORT_EMBED_TASK = ""
    base = tiny_base_write(tmp_path / "tiny-base")
    run_json("registry_add_base", name="tiny-bert", path=str(base), default=True)
    serving_reset()
    yield base
    serving_reset()
    searches_reset()


@pytest.fixture
def kb_files(tmp_path: Path) -> dict[str, Path]:
    faq = tmp_path / "faq.csv"
    faq.write_text(FAQ_CSV, encoding="utf-8")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "router.md").write_text(MANUAL_MD, encoding="utf-8")
    (docs / "terms.txt").write_text("Terms of service.\n\nOrders above 50 euros ship free of charge.\n", encoding="utf-8")
    return {"faq": faq, "docs": docs}


BOW_DIM = 512


def bow_vectors(*, texts: list[str], progress: object = None) -> np.ndarray:  # noqa: ARG001
    """Hashed bag of words, L2-normalised (n, BOW_DIM): cosine = word overlap, deterministic."""
    out = np.zeros((len(texts), BOW_DIM), dtype=np.float32)
    for row, text in enumerate(texts):
        for token in text_tokens(text=text):
            out[row, int(hashlib.md5(token.encode()).hexdigest(), 16) % BOW_DIM] += 1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms == 0, 1.0, norms)


@pytest.fixture
def bow_encoder(tiny_encoder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bag-of-words stand-in for the encoder in answering tests.

    A random tiny BERT maps every sentence to nearly the same vector (cosine ≈ 0.9-1.0), which would make
    thresholds meaningless; word-overlap vectors make "similar" checkable. The registry wiring is tested with
    the tiny BERT (test_import, test_index_rebuild) and real semantics with MiniLM (the slow test).
    """
    monkeypatch.setattr(encode, "encoder_tag_for", lambda *, task: EncoderTag(name="bag-of-words-test", sha256="0" * 64, dim=BOW_DIM))
    monkeypatch.setattr(encode, "texts_embed_for", lambda *, task, texts, progress=None: bow_vectors(texts=list(texts)))
    # The vector store embeds items and queries with a pinned encoder (the tag of the vectors it searches).
    monkeypatch.setattr(encode, "texts_embed_tagged", lambda *, tag, texts, progress=None: bow_vectors(texts=list(texts)))


@pytest.fixture
def tiny_kb(tiny_encoder: Path, kb_files: dict[str, Path]) -> dict[str, Path]:
    """The fixture KB embedded by the tiny BERT through the registry."""
    run_json("support_import", faq=str(kb_files["faq"]), docs=str(kb_files["docs"]), no_progress=True)
    return kb_files


@pytest.fixture
def fixture_kb(bow_encoder: None, kb_files: dict[str, Path]) -> dict[str, Path]:
    """The fixture KB embedded by the bag-of-words stand-in (the tiny BERT is still the registry's default base)."""
    run_json("support_import", faq=str(kb_files["faq"]), docs=str(kb_files["docs"]), no_progress=True)
    return kb_files


@pytest.fixture(autouse=True)
def _customer_throttles_forgotten():  # noqa: ANN202
    """Customer calls are throttled per address in the shared cache: every test of the desk starts with no count
    (otherwise the many requests of one test from 127.0.0.1 spill into the next test's limit)."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()
