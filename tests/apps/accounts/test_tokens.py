"""API tokens: stored hashed, shown once, expiring, revocable, scoped; refused for people; old plain tokens migrated."""
from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from apps.accounts.models import ApiToken
from tests.helpers import run_json


def _get(client: Client, url: str, token: str) -> int:
    return client.get(url, HTTP_AUTHORIZATION=f"Token {token}").status_code


def test_only_the_hash_of_a_token_is_stored_and_it_expires_after_the_default_lifetime(db, settings) -> None:  # noqa: ANN001
    settings.API_TOKEN_DAYS = 30
    issued = run_json("api_token_create", client="shop-backend")
    row = ApiToken.objects.get(user__username="shop-backend")
    assert row.digest == hashlib.sha256(issued["token"].encode()).hexdigest()
    assert issued["token"] not in {row.digest, row.prefix} and len(issued["token"]) >= 40
    assert row.scopes == ["recommender"] and issued["scopes"] == ["recommender"]
    assert timedelta(days=29) < row.expires_at - timezone.now() <= timedelta(days=30)


def test_an_expired_token_is_refused(client: Client, db) -> None:  # noqa: ANN001
    token = run_json("api_token_create", client="shop-backend", days=1)["token"]
    assert _get(client, "/api/me", token) == 200
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert _get(client, "/api/me", token) == 401


def test_days_zero_never_expires(db) -> None:  # noqa: ANN001
    assert run_json("api_token_create", client="shop-backend", days=0)["expires_at"] is None


def test_a_revoked_token_is_refused_and_a_second_create_needs_rotate(client: Client, db) -> None:  # noqa: ANN001
    token = run_json("api_token_create", client="shop-backend")["token"]
    with pytest.raises(CommandError, match="already has an active token"):
        call_command("api_token_create", client="shop-backend")
    assert run_json("api_token_create", client="shop-backend", revoke=True) == {"client": "shop-backend", "revoked": 1}
    assert _get(client, "/api/me", token) == 401
    fresh = run_json("api_token_create", client="shop-backend")["token"]  # nothing active: a new one without --rotate
    assert _get(client, "/api/me", fresh) == 200


def test_a_token_reaches_only_the_api_families_of_its_scope(client: Client, db) -> None:  # noqa: ANN001
    shop = run_json("api_token_create", client="shop-backend")["token"]
    assert _get(client, "/api/recommender/health", shop) == 200
    assert _get(client, "/api/sentiment/tickers", shop) == 403
    assert _get(client, "/api/support/console/kbs", shop) == 403
    assert _get(client, "/api/registry/tasks", shop) == 403
    desk = run_json("api_token_create", client="market-desk", scope="sentiment")["token"]
    assert _get(client, "/api/sentiment/tickers", desk) == 200
    assert _get(client, "/api/recommender/health", desk) == 403  # the api client role alone does not widen a scope


def test_an_unknown_scope_is_refused(db) -> None:  # noqa: ANN001
    with pytest.raises(CommandError, match="--scope: Unknown or empty scope 'admin'"):
        call_command("api_token_create", client="shop-backend", scope="admin")


@pytest.mark.parametrize("person", ["admin", "support_agent", "nobody"])
def test_a_person_cannot_be_made_a_token_client(role_users: dict, person: str) -> None:
    username = role_users[person].username
    with pytest.raises(CommandError, match="is a person's account, not an API client"):
        call_command("api_token_create", client=username)
    with pytest.raises(CommandError, match="is a person's account"):
        call_command("api_token_create", client=username, rotate=True)
    assert not ApiToken.objects.filter(user__username=username).exists()
    user = role_users[person]
    user.refresh_from_db()
    assert user.has_usable_password()  # untouched


def test_a_bad_token_header_is_a_401_not_a_crash(client: Client, db) -> None:  # noqa: ANN001
    assert client.get("/api/me", HTTP_AUTHORIZATION="Token").status_code == 401
    assert client.get("/api/me", HTTP_AUTHORIZATION="Token a b").status_code == 401
    assert client.get("/api/me", HTTP_AUTHORIZATION="Token t\u00e9st").status_code == 401


def test_the_migration_hashes_old_plain_tokens_so_their_clients_keep_working(client: Client, db) -> None:  # noqa: ANN001
    import importlib

    from django.apps import apps
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    migration = importlib.import_module("apps.accounts.migrations.0003_api_tokens_hashed")
    user = get_user_model().objects.create(username="legacy-shop")
    call_command("user_create", username="legacy-shop", role="api_client", stdout=open("/dev/null", "w"))
    old = Token.objects.create(user=user).key
    migration.tokens_hash(apps, None)
    assert not Token.objects.exists()  # no plain key left behind
    row = ApiToken.objects.get(user=user)
    assert row.digest == hashlib.sha256(old.encode()).hexdigest() and row.scopes == ["recommender"]
    assert _get(client, "/api/recommender/health", old) == 200


def test_a_token_in_use_is_refused_at_once_when_revoked_or_its_user_deactivated(client: Client, db) -> None:  # noqa: ANN001
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from services.accounts.tokens import token_find

    token = run_json("api_token_create", client="shop-backend")["token"]
    assert _get(client, "/api/me", token) == 200  # the row is now kept by this process
    with CaptureQueriesContext(connection) as queries:  # a kept row: only the validity check runs, no ORM load
        row = token_find(token=token)
    assert row is not None and row.user.username == "shop-backend" and len(queries) == 1
    assert "revoked_at" in queries[0]["sql"] and "is_active" in queries[0]["sql"]
    row.user.username = "changed"  # each caller gets its own copy
    assert token_find(token=token).user.username == "shop-backend"

    ApiToken.objects.update(revoked_at=timezone.now())  # as the admin's revoke action does: no hook, no cache clear
    assert _get(client, "/api/me", token) == 401 and token_find(token=token) is None
    ApiToken.objects.update(revoked_at=None)
    assert _get(client, "/api/me", token) == 200
    ApiToken.objects.get().user.__class__.objects.filter(username="shop-backend").update(is_active=False)
    assert _get(client, "/api/me", token) == 401 and token_find(token=token) is None
