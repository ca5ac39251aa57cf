"""recommender_import: CSV and JSONL, line-numbered errors, good rows kept, re-runs change nothing."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from apps.recommender.models import Event, Item
from tests.helpers import run_json

pytestmark = pytest.mark.django_db

ITEMS_CSV = """item_id,title,description,category,tags
a1,Dome tent,camping tent,outdoor,camping|tent
a2,Frying pan,kitchen pan,kitchen,
,No id here,,kitchen,
a3,,,,
"""


def test_it_imports_csv_items_and_jsonl_interactions_and_names_bad_lines(bow_encoder: None, tmp_path: Path, capsys) -> None:  # noqa: ANN001, ARG001
    items = tmp_path / "items.csv"
    items.write_text(ITEMS_CSV, encoding="utf-8")
    interactions = tmp_path / "events.jsonl"
    interactions.write_text("\n".join([
        json.dumps({"user_id": "u1", "item_id": "a1", "event": "purchase", "timestamp": "2026-11-01T10:00:00Z", "event_id": "e1"}),
        "{broken",
        json.dumps({"user_id": "u1", "item_id": "a2"}),
        json.dumps({"user_id": "u2", "item_id": "a2", "event": "wink"}),
    ]) + "\n", encoding="utf-8")
    report = run_json("recommender_import", items=str(items), interactions=str(interactions), no_progress=True)
    assert report["items"]["added"] == 3 and report["items"]["embedded"] == 3
    assert report["items"]["errors"] == ["items.csv:4: `id` is required."]
    assert report["interactions"]["added"] == 2
    assert [e.split(":")[:2] for e in report["interactions"]["errors"]] == [["events.jsonl", "2"], ["events.jsonl", "4"]]
    assert Item.objects.get(external_id="a1").tags == ["camping", "tent"]
    assert Event.objects.get(event_id="e1").item.external_id == "a1"

    again = run_json("recommender_import", items=str(items), interactions=str(interactions), no_progress=True)
    assert again["items"]["added"] == 0 and again["items"]["unchanged"] == 3 and again["items"]["embedded"] == 0
    assert again["interactions"]["added"] == 0 and again["interactions"]["unchanged"] == 2
    assert Item.objects.count() == 3
