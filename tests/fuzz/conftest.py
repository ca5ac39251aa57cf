"""Fuzz fixtures: one signed-in client per role, the shop's token, an anonymous customer; a fast stand-in encoder."""
from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client

from pipelines.fuzz_http import Identity
from tests.apps.support.conftest import BOW_DIM, bow_vectors
from tests.helpers import run_json


@pytest.fixture
def stand_in_encoder(settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """Texts embedded by the bag-of-words stand-in (tests/apps/support/conftest.py), indexes under tmp_path.

    The fuzz judges answers and imports, not the model, and hundreds of cases stay fast.
    """
    from services.vectors import EncoderTag, encode

    settings.VAR_DIR = tmp_path / "var"
    tag = EncoderTag(name="bag-of-words-test", sha256="0" * 64, dim=BOW_DIM)
    monkeypatch.setattr(encode, "encoder_tag_for", lambda *, task: tag)
    monkeypatch.setattr(encode, "texts_embed_for", lambda *, task, texts, progress=None: bow_vectors(texts=list(texts)))
    monkeypatch.setattr(encode, "texts_embed_tagged", lambda *, tag, texts, progress=None: bow_vectors(texts=list(texts)))


@pytest.fixture
def identities(role_users: dict, settings, stand_in_encoder: None) -> dict[str, Identity]:  # noqa: ANN001
    """agent, analyst, admin (session), shop (the printed API token), anonymous."""
    from django.core.cache import cache

    settings.SUPPORT_CUSTOMER_RATE = "100000/minute"  # the fuzz is one client sending hundreds of requests
    settings.SUPPORT_CONVERSATION_RATE = "100000/minute"
    cache.clear()
    out = {}
    for name, role in (("agent", "support_agent"), ("analyst", "risk_analyst"), ("admin", "admin")):
        client = Client()
        client.force_login(role_users[role])
        out[name] = Identity(name=name, client=client)
    token = run_json("api_token_create", client="fuzz-shop")["token"]
    out["shop"] = Identity(name="shop", client=Client(), headers={"Authorization": f"Token {token}"})
    out["anonymous"] = Identity(name="anonymous", client=Client())
    yield out
    cache.clear()
