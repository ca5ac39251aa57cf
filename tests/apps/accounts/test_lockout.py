"""Login lockout (django-axes): bad passwords lock a username from an address for the cool-off, then it opens again."""
from __future__ import annotations

from datetime import timedelta
import pytest
from django.db.models import F
from django.test import Client

pytestmark = pytest.mark.django_db

ADDRESS = {"REMOTE_ADDR": "203.0.113.10"}


def _login(client: Client, password: str, **extra: str):  # noqa: ANN202
    return client.post("/accounts/login/", {"username": "agent", "password": password}, **{**ADDRESS, **extra})


@pytest.fixture
def limit(settings) -> int:  # noqa: ANN001
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = 0.25  # hours: 15 minutes
    settings.SUITE_TRUSTED_PROXIES = []
    return 3


def test_bad_passwords_lock_the_account_and_the_right_one_is_refused_during_the_cool_off(client: Client, role_users: dict,
                                                                                         limit: int) -> None:
    for _ in range(limit - 1):
        assert _login(client, "nope").status_code == 200  # the form again, with its error
    locked = _login(client, "nope")
    assert locked.status_code == 429 and b"Signing in is locked" in locked.content and b"15 minutes" in locked.content
    assert int(locked["Retry-After"]) == 900
    right = _login(client, "pw-agent")
    assert right.status_code == 429 and "_auth_user_id" not in client.session
    as_json = _login(client, "pw-agent", HTTP_ACCEPT="application/json")
    assert as_json.status_code == 429
    assert as_json.json()["error"] == "locked_out" and as_json.json()["field"] == "username" and as_json.json()["detail"]
    # Another address is not locked out by these failures (lockout is per username and address).
    assert client.post("/accounts/login/", {"username": "agent", "password": "pw-agent"}, REMOTE_ADDR="203.0.113.11").status_code == 302


def test_the_lock_opens_after_the_cool_off(client: Client, role_users: dict, limit: int) -> None:
    for _ in range(limit):
        _login(client, "nope")
    assert _login(client, "pw-agent").status_code == 429
    from axes.models import AccessAttempt

    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=16))  # the cool-off has passed
    assert _login(client, "pw-agent").status_code == 302
    assert client.session.get("_auth_user_id") == str(role_users["support_agent"].pk)


def test_a_spoofed_x_forwarded_for_does_not_escape_the_lockout(client: Client, role_users: dict, limit: int) -> None:
    for n in range(limit):
        _login(client, "nope", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
    assert _login(client, "pw-agent", HTTP_X_FORWARDED_FOR="192.0.2.200").status_code == 429
