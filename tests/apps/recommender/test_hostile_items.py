"""One item must not poison answers: non-finite or absurd numbers are refused naming the field, stored ones never 500."""
from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.recommender.models import Item

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("price", ["1e999", "-1e999", "-1", "1e13", "123456789012345678901234567890e300", '"NaN"',
                                   '"Infinity"', '"1e999"', "true", "[1]", '{"a": 1}'])
def test_a_price_that_is_not_a_finite_amount_is_refused_naming_price(catalogue: APIClient, price: str) -> None:
    raw = '{"title": "Kettle", "price": %s}' % price  # raw JSON: a client library would not even write 1e999
    response = catalogue.put("/api/items/kettle-1", raw, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["field"] == "price" and "price" in response.json()["detail"]
    assert not Item.objects.filter(external_id="kettle-1").exists()


def test_json_nan_literals_are_refused_before_they_reach_validation(catalogue: APIClient) -> None:
    response = catalogue.put("/api/items/kettle-1", '{"title": "Kettle", "price": NaN}', content_type="application/json")
    assert response.status_code == 400 and not Item.objects.filter(external_id="kettle-1").exists()


def test_a_bulk_upsert_keeps_the_good_rows_and_names_the_bad_price(catalogue: APIClient) -> None:
    raw = '[{"id": "ok-1", "title": "Kettle", "price": 19.5}, {"id": "bad-1", "title": "Kettle", "price": 1e999}]'
    body = catalogue.post("/api/items", raw, content_type="application/json").json()
    assert body["added"] == 1 and len(body["errors"]) == 1 and body["errors"][0].startswith("items[1]: `price`")
    assert Item.objects.get(external_id="ok-1").price == 19.5


def test_a_non_finite_price_already_stored_does_not_break_recommendations(catalogue: APIClient) -> None:
    events = [{"event_id": f"{user}-{item}", "user_id": user, "item_id": item, "type": "purchase"}
              for user in ("u1", "u2") for item in ("pan-1", "pot-1", "tent-1")]
    assert catalogue.post("/api/events", events, format="json").status_code == 200
    Item.objects.filter(external_id__in=["pan-1", "tent-1"]).update(price=float("inf"))  # stored before validation refused it
    Item.objects.filter(external_id="pot-1").update(price=float("nan"))
    for params in ({"user": "new-user"}, {"user": "u1", "exclude_seen": "false"}):
        response = catalogue.get("/api/recommendations", {**params, "k": 20})
        assert response.status_code == 200, response.content
        prices = {row["id"]: row["price"] for row in response.json()["items"]}
        assert {"pan-1", "pot-1", "tent-1"} <= set(prices) and prices["pan-1"] is None and prices["pot-1"] is None
    similar = catalogue.get("/api/items/knife-1/similar", {"k": 7})
    assert similar.status_code == 200 and {"pan-1", "pot-1"} <= {row["id"] for row in similar.json()["items"]}
