"""The item index on disk: incremental updates, another process's writes kept, reload, rebuild on a new encoder."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from rest_framework.test import APIClient

from apps.recommender.models import Item
from services.recommender import vectors
from services.vectors import DenseIndex

pytestmark = pytest.mark.django_db


def test_an_update_starts_from_what_another_process_saved(catalogue: APIClient) -> None:
    other = DenseIndex.load(folder=vectors.index_folder(), expected=vectors.index_get().tag)  # another worker's copy
    other.upsert(ids=np.array([999_999]), vectors=np.ones((1, other.tag.dim), dtype=np.float32) / np.sqrt(other.tag.dim))
    other.save(folder=vectors.index_folder())
    catalogue.put("/api/items/mug-1", {"title": "Mug", "category": "kitchen"}, format="json")
    saved = DenseIndex.load(folder=vectors.index_folder(), expected=vectors.index_get().tag)
    assert len(saved) == Item.objects.count() + 1  # the other process's vector is still there, and the mug's


def test_a_fresh_process_loads_the_saved_index_and_searches_the_same(catalogue: APIClient) -> None:
    before = catalogue.get("/api/items/tent-1/similar", {"k": 3}).json()["items"]
    vectors.index_forget()
    assert len(vectors.index_get()) == Item.objects.count()
    assert catalogue.get("/api/items/tent-1/similar", {"k": 3}).json()["items"] == before


def test_a_saved_index_of_another_encoder_is_rebuilt_from_the_catalogue(catalogue: APIClient, monkeypatch: pytest.MonkeyPatch) -> None:
    current = vectors.encoder_tag()
    monkeypatch.setattr(vectors, "encoder_tag", lambda: replace(current, name="recommender:v9", sha256="f" * 64))
    vectors.index_forget()
    index = vectors.index_get()
    assert index.tag.name == "recommender:v9" and len(index) == Item.objects.count()
