"""The merchandiser's page: admins see the catalogue, top items and a preview; others are refused."""
from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from services.recommender import recommend
from tests.apps.recommender.test_api import event

pytestmark = pytest.mark.django_db


def test_the_page_shows_catalogue_size_top_items_and_a_preview(catalogue: APIClient, role_users: dict) -> None:
    catalogue.post("/api/events", [event("camper", "tent-1"), event("cook", "pan-1", n=1), event("cook2", "pan-1", n=2)], format="json")
    recommend.popularity_forget()
    client = Client()
    client.force_login(role_users["admin"])
    page = client.get("/recommender/", {"user": "camper"}).content.decode()
    assert '<strong id="n-items">8</strong>' in page and '<strong id="n-events">3</strong>' in page
    assert page.index("Frying pan") < page.index("Dome tent for two")  # pan-1: two purchases, top item
    assert '<strong id="strategy">personal</strong>' in page and "similar to Dome tent for two you bought" in page


def test_a_user_without_the_admin_role_cannot_open_the_page(role_users: dict) -> None:
    client = Client()
    client.force_login(role_users["support_agent"])
    assert client.get("/recommender/").status_code == 403
