from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

PAGES = {
    "/": {"support_agent", "risk_analyst", "admin", "api_client", "nobody"},
    "/support/": {"support_agent", "admin"},
    "/sentiment/": {"risk_analyst", "admin"},
    "/recommender/": {"admin"},
    "/registry/": {"admin"},
}


@pytest.mark.parametrize("url", sorted(PAGES))
def test_an_anonymous_visitor_is_sent_to_the_login_page(client: Client, url: str, db) -> None:  # noqa: ANN001
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("url", sorted(PAGES))
@pytest.mark.parametrize("role", ["support_agent", "risk_analyst", "admin", "nobody"])
def test_each_page_opens_only_for_its_roles(client: Client, role_users: dict, url: str, role: str) -> None:
    client.force_login(role_users[role])
    response = client.get(url)
    assert response.status_code == (200 if role in PAGES[url] else 403)


def test_the_admin_site_is_for_admins_only(client: Client, role_users: dict) -> None:
    client.force_login(role_users["support_agent"])
    assert client.get("/admin/").status_code == 302  # Django admin sends non-staff to its own login
    client.force_login(role_users["admin"])
    assert client.get("/admin/").status_code == 200


def test_login_with_a_password_reaches_the_home_page(client: Client, role_users: dict) -> None:
    response = client.post("/accounts/login/", {"username": "agent", "password": "pw-agent"}, follow=True)
    assert response.status_code == 200
    assert b"Support desk" in response.content
    assert response.context["user"].username == "agent"


def test_a_wrong_password_is_refused(client: Client, role_users: dict) -> None:
    response = client.post("/accounts/login/", {"username": "agent", "password": "nope"})
    assert response.status_code == 200
    assert not response.context["user"].is_authenticated


def test_the_home_page_links_only_the_apps_the_role_may_open(client: Client, role_users: dict) -> None:
    client.force_login(role_users["risk_analyst"])
    html = client.get("/").content.decode()
    assert 'href="/sentiment/"' in html
    assert 'href="/support/"' not in html
    client.force_login(role_users["admin"])
    html = client.get("/").content.decode()
    for href in ('href="/support/"', 'href="/sentiment/"', 'href="/recommender/"', 'href="/registry/"', 'href="/admin/"'):
        assert href in html


def _token_for(client_name: str) -> str:
    out = StringIO()
    call_command("api_token_create", client=client_name, stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])["token"]


def test_a_machine_client_calls_the_api_with_its_token(client: Client, db) -> None:  # noqa: ANN001
    token = _token_for("shop-backend")
    response = client.get("/api/recommender/health", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200
    assert response.json()["ready"] is False
    me = client.get("/api/me", HTTP_AUTHORIZATION=f"Token {token}").json()
    assert me == {"username": "shop-backend", "roles": ["api_client"]}


@pytest.mark.parametrize("url", ["/api/recommender/health", "/api/me", "/api/status", "/api/schema/"])
def test_the_api_refuses_anonymous_and_bad_tokens(client: Client, url: str, db) -> None:  # noqa: ANN001
    assert client.get(url).status_code == 401
    assert client.get(url, HTTP_AUTHORIZATION="Token not-a-real-token").status_code == 401


def test_a_token_of_a_role_without_api_access_is_forbidden(client: Client, role_users: dict) -> None:
    from services.accounts.tokens import token_issue

    token = token_issue(user=role_users["support_agent"], scopes=["recommender"]).token
    response = client.get("/api/recommender/health", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 403


def test_rotating_a_token_invalidates_the_old_one(client: Client, db) -> None:  # noqa: ANN001
    old = _token_for("shop-backend")
    out = StringIO()
    call_command("api_token_create", client="shop-backend", rotate=True, stdout=out)
    new = json.loads(out.getvalue().strip().splitlines()[-1])["token"]
    assert new != old
    assert client.get("/api/me", HTTP_AUTHORIZATION=f"Token {old}").status_code == 401
    assert client.get("/api/me", HTTP_AUTHORIZATION=f"Token {new}").status_code == 200


def test_roles_are_groups_with_exactly_their_permissions(db) -> None:  # noqa: ANN001
    from django.contrib.auth.models import Group

    perms = {g.name: set(g.permissions.values_list("codename", flat=True)) for g in Group.objects.all()}
    assert perms["support agent"] == {"access_support"}
    assert perms["risk analyst"] == {"access_sentiment"}
    assert perms["api client"] == {"access_recommender_api"}
    assert {"access_support", "access_sentiment", "access_registry"} <= perms["admin"]
