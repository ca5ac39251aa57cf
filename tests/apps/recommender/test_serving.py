"""Serving features: behaviour sources and the ranker published by the worker, sessions, exclusions, pages,
diversity, "not interested" and impressions, through the HTTP API."""
from __future__ import annotations

import json

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from apps.recommender import tasks
from apps.recommender.models import Impression
from services.errors import NotFound, SuiteError
from services.recommender import merch, sources
from tests.apps.recommender.test_api import event, recommend_ids

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_snapshot() -> None:
    sources.behaviour_forget()
    merch.rules_forget()
    yield
    sources.behaviour_forget()
    merch.rules_forget()


def buy_knife_then_bag(client: APIClient) -> None:
    """Users buy the chef knife and then the sleeping bag (texts with nothing in common); half of them go on to a pot."""
    rows = []
    for u in range(16):
        rows += [event(f"kb{u}", "knife-1", n=1), event(f"kb{u}", "bag-1", n=2)]
        if u % 2:
            rows.append(event(f"kb{u}", "pot-1", n=3))
    assert client.post("/api/events", rows, format="json").json()["errors"] == []


def test_the_worker_publishes_sources_and_a_ranker_every_process_reads(catalogue: APIClient) -> None:
    buy_knife_then_bag(catalogue)
    summary = tasks.behaviour_refresh()
    assert summary["n_items"] == 8 and summary["n_events"] == 40
    root = settings.REGISTRY_DIR / sources.DIR
    pointer = json.loads((root / "current.json").read_text(encoding="utf-8"))
    assert pointer["name"] == summary["name"] and (root / summary["name"] / "behaviour.npz").exists()
    snapshot = sources.behaviour_current()
    assert snapshot is not None and snapshot.name == summary["name"]
    assert snapshot.info["n_users"] == 16


def test_behaviour_beats_text_once_the_worker_has_fitted_it(catalogue: APIClient) -> None:
    buy_knife_then_bag(catalogue)
    catalogue.post("/api/events", [event("newbie", "knife-1", n=5)], format="json")
    before = catalogue.get("/api/recommendations", {"user": "newbie", "k": 3}).json()["items"]
    assert before[0]["id"] in {"pan-1", "pot-1"}  # text alone: the other kitchen items
    summary = tasks.behaviour_refresh()
    assert summary["ranker"], summary  # the ranker passed its gate
    sources.behaviour_forget()
    after = catalogue.get("/api/recommendations", {"user": "newbie", "k": 3}).json()["items"]
    assert after[0]["id"] == "bag-1"
    assert after[0]["reason"] == "bought together with Chef knife"


def test_an_anonymous_session_gets_recommendations_from_its_recent_items(catalogue: APIClient) -> None:
    response = catalogue.post("/api/recommendations/session", {"items": ["tent-1", "no-such-item"], "k": 2}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["strategy"] == "session" and body["items"][0]["id"] == "tent-2"
    assert body["items"][0]["reason"] == "similar to Dome tent for two you viewed"
    assert "tent-1" not in [row["id"] for row in body["items"]]
    bad = catalogue.post("/api/recommendations/session", {"items": "tent-1"}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "items"
    cold = catalogue.post("/api/recommendations/session", {"items": []}, format="json").json()
    assert cold["strategy"] == "popular" and cold["items"]


def test_an_exclude_list_leaves_items_out(catalogue: APIClient) -> None:
    catalogue.post("/api/events", [event("camper", "tent-1")], format="json")
    assert recommend_ids(catalogue, user="camper", k=2)[0] == "tent-2"
    assert "tent-2" not in recommend_ids(catalogue, user="camper", k=5, exclude="tent-2,bag-1")
    session = catalogue.post("/api/recommendations/session", {"items": ["tent-1"], "exclude": ["tent-2"]}, format="json")
    assert "tent-2" not in [row["id"] for row in session.json()["items"]]


def test_pages_follow_each_other_without_repeats(catalogue: APIClient) -> None:
    catalogue.post("/api/events", [event("camper", "tent-1")], format="json")
    whole = recommend_ids(catalogue, user="camper", k=6)
    first = recommend_ids(catalogue, user="camper", k=3, offset=0)
    second = recommend_ids(catalogue, user="camper", k=3, offset=3)
    assert first + second == whole and not set(first) & set(second)
    bad = catalogue.get("/api/recommendations", {"user": "camper", "offset": "-1"})
    assert bad.status_code == 400 and bad.json()["field"] == "offset"


def test_diversity_caps_each_category_per_page(catalogue: APIClient) -> None:
    catalogue.post("/api/events", [event("camper", "tent-1")], format="json")
    plain = catalogue.get("/api/recommendations", {"user": "camper", "k": 2}).json()["items"]
    assert [row["category"] for row in plain] == ["outdoor", "outdoor"]  # tent-2 and bag-1: both camping
    mixed = catalogue.get("/api/recommendations", {"user": "camper", "k": 2, "per_category": 1}).json()["items"]
    assert sorted(row["category"] for row in mixed) == ["kitchen", "outdoor"] and mixed[0]["id"] == "tent-2"
    assert catalogue.get("/api/recommendations", {"user": "camper", "per_category": "0"}).json()["field"] == "per_category"


def test_not_interested_demotes_the_item_for_that_user_only(catalogue: APIClient) -> None:
    catalogue.post("/api/events", [event("camper", "tent-1"), event("other", "tent-1")], format="json")
    assert recommend_ids(catalogue, user="camper", k=1) == ["tent-2"]
    response = catalogue.post("/api/events", event("camper", "tent-2", kind="not_interested", n=1), format="json")
    assert response.json()["added"] == 1
    ranked = recommend_ids(catalogue, user="camper", k=6)
    assert ranked[0] != "tent-2" and ranked[-1] == "tent-2"
    assert recommend_ids(catalogue, user="other", k=1) == ["tent-2"]


def test_every_answer_is_recorded_as_an_impression(catalogue: APIClient) -> None:
    catalogue.post("/api/events", [event("camper", "tent-1")], format="json")
    body = catalogue.get("/api/recommendations", {"user": "camper", "k": 2, "offset": 1}).json()
    assert not Impression.objects.filter(request_id=body["request_id"]).exists()  # queued in Redis, not written yet
    assert tasks.impressions_drain() >= 1
    shown = Impression.objects.get(request_id=body["request_id"])
    assert shown.user_id == "camper" and shown.items == [row["id"] for row in body["items"]] and shown.offset == 1
    session = catalogue.post("/api/recommendations/session", {"items": ["pan-1"]}, format="json").json()
    tasks.impressions_drain()
    assert Impression.objects.get(request_id=session["request_id"]).user_id == ""


def test_the_refresh_runs_on_a_beat_schedule_created_after_migrate() -> None:
    from django_celery_beat.models import PeriodicTask

    from apps.recommender.apps import _repair_schedule_create

    _repair_schedule_create()
    schedule = PeriodicTask.objects.get(name="recommender behaviour refresh")
    assert schedule.task == "recommender.behaviour_refresh"
    assert schedule.interval.every == settings.RECOMMENDER_BEHAVIOUR_REFRESH_S
    drain = PeriodicTask.objects.get(name="recommender impressions drain")
    assert drain.task == "recommender.impressions_drain"


def test_without_events_the_worker_still_publishes_sources_and_requests_use_the_formula(catalogue: APIClient) -> None:
    summary = tasks.behaviour_refresh()
    assert summary["ranker"] is False and "Too few" in summary["ranker_note"]
    sources.behaviour_forget()
    assert catalogue.get("/api/recommendations", {"user": "nobody", "k": 3}).json()["strategy"] == "popular"


def test_a_pinned_item_takes_its_place_on_the_first_page(catalogue: APIClient) -> None:
    catalogue.post("/api/events", [event("camper", "tent-1")], format="json")
    merch.rule_add(kind="pin", item="knife-1", position=1, note="knife week")
    body = catalogue.get("/api/recommendations", {"user": "camper", "k": 3}).json()["items"]
    assert body[0]["id"] == "knife-1" and body[0]["reason"] == "featured in kitchen" and body[1]["id"] == "tent-2"
    assert "knife-1" not in recommend_ids(catalogue, user="camper", k=3, exclude="knife-1")  # the request's exclusions win


def test_a_boost_raises_an_item_and_a_quota_caps_a_category(catalogue: APIClient) -> None:
    catalogue.post("/api/events", [event("camper", "tent-1")], format="json")
    merch.rule_add(kind="boost", item="pot-1", weight=1.0)
    assert recommend_ids(catalogue, user="camper", k=3)[0] == "pot-1"
    merch.rule_add(kind="quota", category="outdoor", max_per_page=1)
    page = catalogue.get("/api/recommendations", {"user": "camper", "k": 3}).json()["items"]
    assert [row["category"] for row in page].count("outdoor") == 1


def test_a_rule_that_cannot_apply_names_its_field() -> None:
    with pytest.raises(SuiteError) as caught:
        merch.rule_add(kind="quota", category="outdoor")
    assert caught.value.field == "max_per_page"
    with pytest.raises(SuiteError) as caught:
        merch.rule_add(kind="shout")
    assert caught.value.field == "kind"
    with pytest.raises(NotFound):
        merch.rule_add(kind="pin", item="no-such-item", position=1)


def test_without_redis_an_impression_is_written_at_once(catalogue: APIClient, settings) -> None:  # noqa: ANN001
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    body = catalogue.get("/api/recommendations", {"user": "camper", "k": 2}).json()
    assert Impression.objects.get(request_id=body["request_id"]).user_id == "camper"
