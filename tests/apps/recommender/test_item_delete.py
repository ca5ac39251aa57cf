"""DELETE /api/items/{id}: the item and its vector go in one transaction; its events stay for an item sent again."""
from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.recommender.models import Event, Item
from apps.vectors.models import Embedding, VectorSpace
from services.recommender import vectors
from tests.apps.recommender.conftest import embedded

pytestmark = pytest.mark.django_db


def test_a_deleted_item_is_no_longer_recommended_and_its_vector_is_a_tombstone(catalogue: APIClient) -> None:
    pk = Item.objects.get(external_id="pan-1").pk
    assert "pan-1" in [row["id"] for row in catalogue.get("/api/items/pot-1/similar", {"k": 10}).json()["items"]]
    response = catalogue.delete("/api/items/pan-1")
    assert response.status_code == 204, response.content
    assert not Item.objects.filter(external_id="pan-1").exists()
    space = VectorSpace.objects.get(name=vectors.SPACE)
    assert not Embedding.objects.filter(space=space, key=pk, vector__isnull=False).exists()
    assert Embedding.objects.filter(space=space, key=pk, vector__isnull=True).exists()  # other hosts sync the removal
    assert pk not in vectors.index_ids(index=vectors.index_get(fresh=True))
    assert "pan-1" not in [row["id"] for row in catalogue.get("/api/items/pot-1/similar", {"k": 10}).json()["items"]]
    assert catalogue.get("/api/items/pan-1/similar").status_code == 404


def test_deleting_an_unknown_item_is_a_404_naming_it(catalogue: APIClient) -> None:
    count = Item.objects.count()
    response = catalogue.delete("/api/items/no-such-item")
    assert response.status_code == 404 and response.json()["field"] == "id" and "no-such-item" in response.json()["detail"]
    assert Item.objects.count() == count


def test_events_outlive_their_item_and_rejoin_it_when_it_is_sent_again(catalogue: APIClient) -> None:
    event = {"event_id": "e-1", "user_id": "u1", "item_id": "tent-1", "type": "purchase", "timestamp": "2026-11-10T10:00:00Z"}
    assert catalogue.post("/api/events", event, format="json").status_code == 200
    assert catalogue.delete("/api/items/tent-1").status_code == 204
    kept = Event.objects.get(event_id="e-1")
    assert kept.item_id is None and kept.item_external_id == "tent-1"
    assert catalogue.put("/api/items/tent-1", {"title": "Dome tent", "description": "camping tent"}, format="json").status_code == 201
    assert Event.objects.get(event_id="e-1").item.external_id == "tent-1"
    assert embedded("tent-1")


def test_anonymous_clients_cannot_delete(catalogue: APIClient) -> None:
    assert APIClient().delete("/api/items/pot-1").status_code == 401
    assert Item.objects.filter(external_id="pot-1").exists()
