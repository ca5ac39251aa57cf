"""Serving speed-ups that must not change what is recommended: the items' cards read by a plain SQL query, and the
Server-Timing header that says where a request's time went (issue 17, item 6)."""
from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.recommender import tasks
from apps.recommender.models import Event, Impression, Item
from pipelines.bench_recommender import server_timing
from services.recommender import impressions, ranking, recommend, sources
from tests.apps.recommender.test_api import event
from tests.apps.recommender.test_serving import _fresh_snapshot, buy_knife_then_bag  # noqa: F401 - autouse fixture

pytestmark = pytest.mark.django_db


def orm_cards_read(pks: list[int]) -> list[tuple[recommend.Card, float]]:
    """The read before the change (values_list through the ORM), as the reference."""
    rows = Item.objects.filter(pk__in=list(pks)).values_list(*recommend.CARD_FIELDS, "created_at")
    return [(recommend.Card(*row[:-1]), row[-1].timestamp()) for row in rows]


def orm_user_interactions(*, user: str) -> list[tuple[ranking.Interaction, str]]:
    rows = (Event.objects.filter(user_id=user, item__isnull=False).exclude(type=Event.NOT_INTERESTED).order_by("-timestamp")
            .values_list("item_id", "type", "timestamp", "item__title")[:ranking.PROFILE_EVENTS])
    return [(ranking.Interaction(item=pk, type=kind, at=at.timestamp()), title) for pk, kind, at, title in rows]


def orm_user_dismissed(*, user: str) -> set[int]:
    return set(Event.objects.filter(user_id=user, type=Event.NOT_INTERESTED, item__isnull=False)
               .values_list("item_id", flat=True)[:1000])


def test_the_plain_sql_card_read_returns_what_the_orm_reads(catalogue: APIClient) -> None:
    assert catalogue.put("/api/items/priced-1", {"title": "Priced", "price": 12.5, "category": "kitchen"},
                         format="json").status_code in (200, 201)
    pks = list(Item.objects.values_list("pk", flat=True))
    Item.objects.filter(external_id="stove-1").update(price=3.0)
    got = dict((card.pk, (card, created)) for card, created in recommend.cards_read(pks + [10**9]))
    want = dict((card.pk, (card, created)) for card, created in orm_cards_read(pks))
    assert got == want and len(got) == len(pks)  # the missing pk is simply absent
    assert got[Item.objects.get(external_id="priced-1").pk][0].price == 12.5
    assert got[Item.objects.get(external_id="stove-1").pk][0].in_stock is False
    assert got[Item.objects.get(external_id="tent-1").pk][0].price is None
    assert recommend.cards_read([]) == []


def test_a_users_history_read_by_the_compiled_query_is_what_the_orm_reads(catalogue: APIClient) -> None:
    rows = [event("ann", "knife-1", "view", n=1), event("ann", "bag-1", "purchase", n=3), event("ann", "pan-1", "cart", n=2),
            event("ann", "pot-1", "not_interested", n=4), event("ann", "not-in-catalogue", "view", n=5),
            event("bob", "tent-1", "view", n=1), event("bob", "tent-2", "not_interested", n=2)]
    assert catalogue.post("/api/events", rows, format="json").json()["errors"] == []
    for user in ("ann", "bob", "nobody", "o'hara; --"):
        assert recommend.user_interactions(user=user) == orm_user_interactions(user=user)
        assert recommend.user_dismissed(user=user) == orm_user_dismissed(user=user)
    assert [i.type for i, _ in recommend.user_interactions(user="ann")] == ["purchase", "cart", "view"]  # newest first
    assert recommend.user_dismissed(user="ann") == {Item.objects.get(external_id="pot-1").pk}


def answers(client: APIClient) -> list[list[tuple[str, float, str]]]:
    out = []
    for user in ("newbie", "kb1", "kb2", "nobody"):
        body = client.get("/api/recommendations", {"user": user, "k": 5}).json()
        out.append([(row["id"], row["score"], row["reason"]) for row in body["items"]])
    body = client.post("/api/recommendations/session", {"items": ["knife-1", "tent-1"], "k": 5}, format="json").json()
    out.append([(row["id"], row["score"], row["reason"]) for row in body["items"]])
    body = client.get("/api/recommendations", {"user": "newbie", "k": 3, "offset": 2, "per_category": 1}).json()
    out.append([(row["id"], row["score"], row["reason"]) for row in body["items"]])
    return out


def test_the_ranking_with_the_ranker_is_the_same_as_with_the_orm_reads(catalogue: APIClient,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    buy_knife_then_bag(catalogue)
    catalogue.post("/api/events", [event("newbie", "knife-1", n=5)], format="json")
    assert tasks.behaviour_refresh()["ranker"]  # the learned ranker serves
    sources.behaviour_forget()
    catalogue.post("/api/events", [event("kb1", "pan-1", "not_interested", n=6)], format="json")
    fast = answers(catalogue)
    monkeypatch.setattr(recommend, "cards_read", orm_cards_read)
    monkeypatch.setattr(recommend, "user_interactions", orm_user_interactions)
    monkeypatch.setattr(recommend, "user_dismissed", orm_user_dismissed)
    slow = answers(catalogue)
    assert fast == slow
    assert fast[0][0][:3:2] == ("bag-1", "bought together with Chef knife")  # a real ranking was compared


def test_an_answer_says_where_its_time_went_in_a_server_timing_header(catalogue: APIClient) -> None:
    buy_knife_then_bag(catalogue)
    catalogue.post("/api/events", [event("newbie", "knife-1", n=5)], format="json")
    formula = server_timing(catalogue.get("/api/recommendations", {"user": "newbie", "k": 3})["Server-Timing"])
    assert {"history", "candidates", "cards", "formula", "impression", "app"} <= set(formula) and "ranker" not in formula
    assert tasks.behaviour_refresh()["ranker"]
    sources.behaviour_forget()
    timed = server_timing(catalogue.get("/api/recommendations", {"user": "newbie", "k": 3})["Server-Timing"])
    assert {"history", "candidates", "cards", "ranker", "impression", "app"} <= set(timed) and "formula" not in timed
    assert 0 < timed["ranker"] < timed["app"] and timed["cards"] <= timed["candidates"] < timed["app"]
    session = catalogue.post("/api/recommendations/session", {"items": ["knife-1"], "k": 3}, format="json")
    assert "ranker" in server_timing(session["Server-Timing"])



def test_impressions_leave_the_request_for_a_background_push_once_redis_answered(catalogue: APIClient) -> None:
    impressions.impressions_forget()
    first = catalogue.get("/api/recommendations", {"user": "camper", "k": 2}).json()["request_id"]  # pushed in the request
    assert impressions._redis_ok and not impressions._queued
    later = [catalogue.get("/api/recommendations", {"user": f"c{n}", "k": 2}).json()["request_id"] for n in range(3)]
    assert not Impression.objects.filter(request_id__in=[first, *later]).exists()
    assert tasks.impressions_drain() >= 4  # the drain pushes this process's queue first: none is missed
    assert set(Impression.objects.filter(request_id__in=[first, *later]).values_list("request_id", flat=True)) == {first, *later}
    impressions.impressions_forget()


def test_rows_a_failed_background_push_left_are_written_by_the_next_request(catalogue: APIClient, settings,  # noqa: ANN001
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    impressions.impressions_forget()
    catalogue.get("/api/recommendations", {"user": "camper", "k": 2})  # Redis answered: later rows are queued
    tasks.impressions_drain()
    monkeypatch.setattr(impressions, "_pusher_ensure", lambda: None)  # no thread: the test pushes by hand
    queued = catalogue.get("/api/recommendations", {"user": "queued", "k": 2}).json()["request_id"]
    assert len(impressions._queued) == 1
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # Redis goes away (nothing listens there)
    impressions._redis_ok[settings.REDIS_URL] = True  # as when the URL had answered before
    assert impressions.impressions_flush() == 0 and impressions._failed and not impressions._queued
    assert not Impression.objects.filter(request_id=queued).exists()
    after = catalogue.get("/api/recommendations", {"user": "after", "k": 2}).json()["request_id"]
    assert set(Impression.objects.filter(request_id__in=[queued, after]).values_list("user_id", flat=True)) == {"queued", "after"}
    assert not impressions._failed
    impressions.impressions_forget()
