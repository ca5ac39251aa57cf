"""Recommender fixtures: a tiny base encoder registered as default, a bag-of-words stand-in, an API client."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from services.recommender import recommend, vectors
from services.vectors import encode
from tests.apps.support.conftest import BOW_DIM, bow_vectors
from tests.helpers import run_json
from tests.services.conftest import tiny_base_write

CATALOGUE = [
    {"id": "tent-1", "title": "Dome tent for two", "description": "camping tent waterproof", "category": "outdoor", "tags": ["camping"]},
    {"id": "tent-2", "title": "Family tent", "description": "camping tent for six", "category": "outdoor", "tags": ["camping"]},
    {"id": "bag-1", "title": "Sleeping bag", "description": "camping sleeping bag warm", "category": "outdoor"},
    {"id": "stove-1", "title": "Camping stove", "description": "gas stove for camping", "category": "outdoor", "in_stock": False},
    {"id": "pan-1", "title": "Frying pan", "description": "kitchen pan nonstick", "category": "kitchen"},
    {"id": "pot-1", "title": "Cooking pot", "description": "kitchen pot steel", "category": "kitchen"},
    {"id": "knife-1", "title": "Chef knife", "description": "kitchen knife steel", "category": "kitchen"},
    {"id": "blank-1", "title": "", "description": "", "category": ""},
]


def embedded(external_id: str) -> bool:
    """The item has a vector of its current text in the shared store (active encoder) and in this process's index."""
    from apps.recommender.models import Item
    from apps.vectors.models import Embedding, VectorSpace

    item = Item.objects.get(external_id=external_id)
    space = VectorSpace.objects.filter(name=vectors.SPACE).first()
    stored = space is not None and Embedding.objects.filter(space=space, encoder=space.encoder, key=item.pk,
                                                            content_hash=item.text_hash, vector__isnull=False).exists()
    return stored and item.pk in vectors.index_ids(index=vectors.index_get(fresh=True))


@pytest.fixture
def tiny_encoder(settings, tmp_path: Path) -> Path:  # noqa: ANN001
    """A 2-layer random BERT registered as the default base; the registry (and any vector snapshot) under tmp_path."""
    from services.registry.serving import serving_reset

    settings.REGISTRY_DIR = tmp_path / "registry"
    settings.VAR_DIR = tmp_path / "var"
    base = tiny_base_write(tmp_path / "tiny-base")
    run_json("registry_add_base", name="tiny-bert", path=str(base), default=True)
    serving_reset()
    vectors.index_forget()
    recommend.popularity_forget()
    yield base
    serving_reset()
    vectors.index_forget()
    recommend.popularity_forget()


@pytest.fixture
def bow_encoder(tiny_encoder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Word-overlap vectors instead of the random tiny BERT (whose vectors are all nearly alike), so "similar" is checkable."""
    real_tag = encode.encoder_tag_for
    monkeypatch.setattr(encode, "encoder_tag_for", lambda *, task: replace(real_tag(task=task), dim=BOW_DIM))  # names follow promotions
    monkeypatch.setattr(encode, "texts_embed_for", lambda *, task, texts, progress=None: bow_vectors(texts=list(texts)))
    monkeypatch.setattr(encode, "texts_embed_tagged", lambda *, tag, texts, progress=None: bow_vectors(texts=list(texts)))


@pytest.fixture
def shop(db) -> APIClient:  # noqa: ANN001, ARG001
    """An API client with a machine token, as the shop's backend holds one."""
    token = run_json("api_token_create", client="shop-backend")["token"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


@pytest.fixture
def catalogue(bow_encoder: None, shop: APIClient) -> APIClient:
    response = shop.post("/api/items", CATALOGUE, format="json")
    assert response.status_code == 200, response.content
    return shop
