"""The recommender API through HTTP with a token: items, events, recommendations, similar items, bad input."""
from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.recommender.models import Event, Item
from services.recommender import recommend
from tests.apps.recommender.conftest import embedded

pytestmark = pytest.mark.django_db


def event(user: str, item: str, kind: str = "purchase", n: int = 0, event_id: str | None = None) -> dict:
    return {"event_id": event_id or f"{user}-{item}-{kind}-{n}", "user_id": user, "item_id": item, "type": kind,
            "timestamp": f"2026-11-{10 + n:02d}T10:00:00Z"}


def recommend_ids(client: APIClient, **params: object) -> list[str]:
    response = client.get("/api/recommendations", params)
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["items"]]


def test_anonymous_clients_are_refused(db) -> None:  # noqa: ANN001, ARG001
    client = APIClient()
    assert client.get("/api/recommendations", {"user": "u1"}).status_code == 401
    assert client.post("/api/events", {}, format="json").status_code == 401
    assert client.put("/api/items/x", {}, format="json").status_code == 401


def test_a_signed_in_user_without_the_api_role_is_forbidden(role_users: dict) -> None:
    client = APIClient()
    client.force_authenticate(role_users["nobody"])
    assert client.get("/api/recommendations", {"user": "u1"}).status_code == 403


def test_bulk_items_are_stored_and_embedded_once(catalogue: APIClient) -> None:
    assert Item.objects.count() == 8
    assert all(embedded(i.external_id) for i in Item.objects.all())
    again = catalogue.post("/api/items", [{"id": "pan-1", "title": "Frying pan", "description": "kitchen pan nonstick",
                                          "category": "kitchen"}], format="json").json()
    assert again == {"added": 0, "updated": 0, "unchanged": 1, "errors": []}


def test_a_changed_text_re_embeds_the_item_and_similar_follows_it(catalogue: APIClient) -> None:
    before = catalogue.get("/api/items/knife-1/similar", {"k": 1}).json()["items"][0]["id"]
    assert before in {"pan-1", "pot-1"}
    response = catalogue.put("/api/items/knife-1", {"title": "Camping knife", "description": "camping tent knife",
                                                   "category": "outdoor"}, format="json")
    assert response.status_code == 200 and response.json()["updated"] == 1
    similar = [row["id"] for row in catalogue.get("/api/items/knife-1/similar", {"k": 2}).json()["items"]]
    assert set(similar) <= {"tent-1", "tent-2", "bag-1"}


def test_put_creates_an_item_and_a_bad_field_is_named(catalogue: APIClient) -> None:
    assert catalogue.put("/api/items/new-1", {"title": "Kettle", "category": "kitchen"}, format="json").status_code == 201
    bad = catalogue.put("/api/items/new-2", {"title": "Kettle", "price": "cheap"}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "price"
    assert catalogue.put("/api/items/new-3", {"in_stock": "maybe"}, format="json").json()["field"] == "in_stock"
    assert not Item.objects.filter(external_id__in=["new-2", "new-3"]).exists()


def test_bulk_items_keep_the_good_rows_and_report_the_bad_ones(catalogue: APIClient) -> None:
    body = catalogue.post("/api/items", [{"id": "ok-1", "title": "Mug"}, {"title": "no id"}, {"id": "ok-2", "tags": 5}],
                          format="json").json()
    assert body["added"] == 1 and body["errors"][0].startswith("items[1]:") and "`tags`" in body["errors"][1]


def test_malformed_json_is_a_400_not_a_crash(catalogue: APIClient) -> None:
    response = catalogue.post("/api/events", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert catalogue.post("/api/items", {"nothing": 1}, format="json").json()["field"] == "items"


def test_the_same_event_id_twice_is_stored_once(catalogue: APIClient) -> None:
    first = catalogue.post("/api/events", event("u1", "tent-1"), format="json").json()
    second = catalogue.post("/api/events", event("u1", "tent-1"), format="json").json()
    assert first["added"] == 1 and second == {"added": 0, "updated": 0, "unchanged": 1, "errors": []}
    bulk = catalogue.post("/api/events", [event("u1", "tent-1"), event("u1", "pan-1"), event("u1", "pan-1")], format="json").json()
    assert bulk["added"] == 1 and bulk["unchanged"] == 1
    assert Event.objects.filter(user_id="u1").count() == 2


def test_an_event_with_a_bad_type_names_the_field_and_an_unknown_item_is_kept(catalogue: APIClient) -> None:
    bad = catalogue.post("/api/events", {**event("u1", "tent-1"), "type": "like"}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "type"
    missing = catalogue.post("/api/events", {"item_id": "tent-1"}, format="json")
    assert missing.status_code == 400 and missing.json()["field"] == "user_id"
    assert catalogue.post("/api/events", event("u2", "later-1"), format="json").json()["added"] == 1
    catalogue.put("/api/items/later-1", {"title": "Arrives later"}, format="json")
    assert Event.objects.get(item_external_id="later-1").item.external_id == "later-1"


def test_an_unknown_user_gets_popular_items_in_stock(catalogue: APIClient) -> None:
    catalogue.post("/api/events", [event(f"buyer{n}", "pot-1", n=n) for n in range(3)] + [event("buyer9", "pan-1")], format="json")
    recommend.popularity_forget()
    response = catalogue.get("/api/recommendations", {"user": "never-seen", "k": 3}).json()
    assert response["strategy"] == "popular"
    assert [row["id"] for row in response["items"]][:2] == ["pot-1", "pan-1"]
    assert response["items"][0]["reason"] == "popular in kitchen"


def test_a_camper_gets_camping_items_with_a_reason_and_not_what_they_bought(catalogue: APIClient) -> None:
    catalogue.post("/api/events", [event("camper", "tent-1"), event("camper", "bag-1", kind="view", n=1)], format="json")
    response = catalogue.get("/api/recommendations", {"user": "camper", "k": 2}).json()
    assert response["strategy"] == "personal"
    assert response["items"][0]["id"] == "tent-2"
    assert response["items"][0]["reason"] == "similar to Dome tent for two you bought"
    ids = [row["id"] for row in response["items"]]
    assert "tent-1" not in ids and "bag-1" not in ids and "stove-1" not in ids  # seen, seen, out of stock


def test_filters_category_and_exclude_seen(catalogue: APIClient) -> None:
    catalogue.post("/api/events", [event("camper", "tent-1")], format="json")
    kitchen = recommend_ids(catalogue, user="camper", k=5, category="kitchen")
    assert kitchen and set(kitchen) <= {"pan-1", "pot-1", "knife-1"}
    assert "tent-1" in recommend_ids(catalogue, user="camper", k=5, exclude_seen="false")
    assert catalogue.get("/api/recommendations", {"user": "camper", "exclude_seen": "perhaps"}).json()["field"] == "exclude_seen"


@pytest.mark.parametrize("k", ["0", "101", "ten", "-1"])
def test_k_out_of_range_is_a_400_naming_k(catalogue: APIClient, k: str) -> None:
    response = catalogue.get("/api/recommendations", {"user": "u1", "k": k})
    assert response.status_code == 400 and response.json()["field"] == "k"
    assert catalogue.get("/api/items/pan-1/similar", {"k": k}).json()["field"] == "k"


def test_a_missing_user_is_a_400_and_an_unknown_item_a_404(catalogue: APIClient) -> None:
    assert catalogue.get("/api/recommendations").json()["field"] == "user"
    assert catalogue.get("/api/items/nope/similar").status_code == 404


def test_an_item_without_text_is_embedded_and_recommendable(catalogue: APIClient) -> None:
    assert embedded("blank-1")
    assert catalogue.get("/api/items/blank-1/similar", {"k": 3}).status_code == 200


def test_the_schema_documents_the_recommender_endpoints(shop: APIClient) -> None:
    response = shop.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/api/items", "/api/items/{external_id}", "/api/items/{external_id}/similar", "/api/events",
            "/api/recommendations"} <= set(paths)
    params = {p["name"] for p in paths["/api/recommendations"]["get"]["parameters"]}
    assert {"user", "k", "category", "exclude_seen"} <= params


@pytest.mark.django_db(transaction=True)
def test_stale_popularity_is_served_while_a_background_thread_recounts(catalogue: APIClient) -> None:
    import time

    catalogue.post("/api/events", [event("a", "pot-1")], format="json")
    recommend.popularity_forget()
    _, first = recommend.popularity_get()
    catalogue.post("/api/events", [event(f"b{n}", "pan-1", n=n) for n in range(3)], format="json")
    recommend._popular["at"] = -1e9  # stale
    _, stale = recommend.popularity_get()
    assert stale == first  # answered at once from the old counts
    deadline = time.monotonic() + 20
    while recommend._popular.get("refreshing") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert recommend.popularity_get()[1][0] == recommend.Item.objects.get(external_id="pan-1").pk
