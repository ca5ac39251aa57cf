"""The catalogue's vectors in the shared store: other processes follow by revision, a promotion switches atomically."""
from __future__ import annotations

from dataclasses import replace

import pytest
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from apps.recommender.models import Item
from services.recommender import vectors
from services.vectors import encode, encoder_switch_check, space_reembed, space_status, space_view

pytestmark = pytest.mark.django_db


def similar(client: APIClient, item: str) -> list[str]:
    return [row["id"] for row in client.get(f"/api/items/{item}/similar", {"k": 3}).json()["items"]]


def test_a_process_follows_items_added_changed_and_deleted_by_revision(catalogue: APIClient, settings) -> None:  # noqa: ANN001
    settings.SUITE_VECTORS_SYNC_S = 0  # look at the revision on every read
    view = space_view(space=vectors.SPACE)
    before = view.revision
    catalogue.put("/api/items/tent-3", {"title": "Tunnel tent", "description": "camping tent light", "category": "outdoor"},
                  format="json")
    assert "tent-3" in similar(catalogue, "tent-1")
    assert space_view(space=vectors.SPACE) is view and view.revision > before  # deltas applied, not a reload

    catalogue.put("/api/items/tent-3", {"title": "Tunnel", "description": "kitchen pot steel", "category": "kitchen"},
                  format="json")
    assert "tent-3" not in similar(catalogue, "tent-1") and "tent-3" in similar(catalogue, "pot-1")

    pk = Item.objects.get(external_id="tent-3").pk
    assert vectors.items_forget(pks=[pk]) == 1
    Item.objects.filter(pk=pk).delete()
    assert pk not in vectors.index_get().ids() and "tent-3" not in similar(catalogue, "pot-1")


def test_a_fresh_process_loads_the_vectors_from_the_database_and_searches_the_same(catalogue: APIClient) -> None:
    before = similar(catalogue, "tent-1")
    vectors.index_forget()
    assert vectors.index_ids() == set(Item.objects.values_list("pk", flat=True))
    assert similar(catalogue, "tent-1") == before


def test_no_index_file_is_written_under_the_var_folder(catalogue: APIClient) -> None:
    assert not (django_settings.VAR_DIR / "recommender").exists()


def test_a_promotion_is_served_by_the_old_vectors_until_the_worker_has_embedded_the_catalogue(
        catalogue: APIClient, monkeypatch: pytest.MonkeyPatch, settings) -> None:  # noqa: ANN001
    settings.SUITE_VECTORS_EMBED = "worker"  # the re-embedding is a worker's: nothing happens in this process
    settings.SUITE_VECTORS_SYNC_S = 0
    old = vectors.encoder_tag()
    monkeypatch.setattr(encode, "encoder_tag_for", lambda *, task: replace(old, name="recommender:v9", sha256="f" * 64))
    asked = []
    monkeypatch.setattr("services.vectors.store._send", lambda task, **kwargs: asked.append((task, kwargs)))

    assert encoder_switch_check() == [vectors.SPACE]
    assert space_status(space=vectors.SPACE)["pending_encoder"] == "recommender:v9"
    before = similar(catalogue, "tent-1")
    assert vectors.index_get().tag == old and before  # requests: the old vectors, no embedding

    outcome = space_reembed(space=vectors.SPACE)  # what the worker's vectors.reembed runs
    assert outcome["switched"] is True and outcome["embedded"] == Item.objects.count()
    index = vectors.index_get()
    assert index.tag.name == "recommender:v9" and len(index) == Item.objects.count()
    assert similar(catalogue, "tent-1") == before  # the same texts under the stand-in encoder
