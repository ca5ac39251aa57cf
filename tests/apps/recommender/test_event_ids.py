"""Events sent without an `event_id` get a deterministic one: the same event sent twice is stored once."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from apps.recommender.models import Event
from services.recommender.catalog import event_id_derive
from tests.helpers import run_json

pytestmark = pytest.mark.django_db


def test_an_event_without_an_id_sent_again_in_any_time_format_is_stored_once(catalogue: APIClient) -> None:
    sent = {"user_id": "u1", "item_id": "tent-1", "type": "purchase"}
    first = catalogue.post("/api/events", {**sent, "timestamp": "2026-11-10T10:00:00Z"}, format="json").json()
    assert first["added"] == 1
    for retry in ("2026-11-10T11:00:00+01:00", 1794304800, "2026-11-10T10:00:00Z"):  # one instant, three spellings
        again = catalogue.post("/api/events", [{**sent, "timestamp": retry}], format="json").json()
        assert again == {"added": 0, "updated": 0, "unchanged": 1, "errors": []}, retry
    stored = Event.objects.get(user_id="u1")
    assert stored.event_id.startswith("h:") and len(stored.event_id) == 42
    assert catalogue.post("/api/events", {**sent, "timestamp": "2026-11-10T10:00:01Z"}, format="json").json()["added"] == 1


def test_an_event_with_neither_id_nor_timestamp_is_refused_naming_the_timestamp(catalogue: APIClient) -> None:
    response = catalogue.post("/api/events", {"user_id": "u1", "item_id": "tent-1", "type": "view"}, format="json")
    assert response.status_code == 400 and response.json()["field"] == "timestamp"
    assert catalogue.post("/api/events", {"event_id": "e9", "user_id": "u1", "item_id": "tent-1"},
                          format="json").json()["added"] == 1  # its own id: received time is fine
    assert Event.objects.count() == 1


def test_an_imported_event_and_the_same_event_sent_by_the_api_are_one(catalogue: APIClient, tmp_path: Path) -> None:
    row = {"user_id": "u2", "item_id": "pan-1", "event": "cart", "timestamp": "2026-11-12T08:30:00Z"}
    catalogue.post("/api/events", {**row, "type": "cart"}, format="json")
    first = tmp_path / "first.jsonl"
    first.write_text(json.dumps(row) + "\n", encoding="utf-8")
    assert run_json("recommender_import", interactions=str(first), no_progress=True)["interactions"]["unchanged"] == 1
    shifted = tmp_path / "export-2.jsonl"  # a later export: other name, other line
    shifted.write_text(json.dumps({"user_id": "u3", "item_id": "pot-1", "event": "view", "timestamp": 1793000000}) + "\n"
                       + json.dumps(row) + "\n", encoding="utf-8")
    report = run_json("recommender_import", interactions=str(shifted), no_progress=True)["interactions"]
    assert report["added"] == 1 and report["unchanged"] == 1
    assert Event.objects.filter(user_id="u2").get().event_id == event_id_derive(
        user_id="u2", item_id="pan-1", kind="cart", at=Event.objects.get(user_id="u2").timestamp)
