"""Request body limits: too large is 413 in the one error shape, before any parsing, whatever Content-Length says."""
from __future__ import annotations

import asyncio
import json

import pytest
from django.test import Client

from apps.core.limits import BodyLimitASGI, body_limit_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def small(settings):  # noqa: ANN001, ANN201
    settings.SUITE_MAX_JSON_BYTES = 1024
    settings.SUITE_MAX_BULK_JSON_BYTES = 64 * 1024
    settings.SUPPORT_CUSTOMER_RATE = "1000/minute"
    return settings


def test_a_body_over_the_limit_is_refused_413_naming_the_body_and_the_setting(small, client: Client) -> None:  # noqa: ANN001
    big = json.dumps({"text": "x" * 2000})
    response = client.post("/api/support/messages", big, content_type="application/json")
    assert response.status_code == 413
    body = response.json()
    assert body["error"] == "too_large" and body["field"] == "body" and "SUITE_MAX_JSON_BYTES" in body["detail"]
    assert "1024" in body["detail"]
    # Pages too: the sign-in form is not read either.
    assert client.post("/accounts/login/", {"username": "x" * 2000, "password": "y"}).status_code == 413


def test_a_content_length_that_is_not_a_number_is_refused(small, client: Client) -> None:  # noqa: ANN001
    response = client.post("/api/support/messages", "{}", content_type="application/json", CONTENT_LENGTH="lots")
    assert response.status_code == 400 and response.json()["field"] == "body"


def test_the_bulk_writes_have_their_own_larger_limit(small, client: Client, role_users: dict) -> None:  # noqa: ANN001
    client.force_login(role_users["api_client"])
    events = [{"event_id": f"e{n}", "user_id": "u1", "item_id": "i1", "type": "view"} for n in range(100)]  # ~7 KB
    assert len(json.dumps(events)) > 1024
    assert client.post("/api/events", events, content_type="application/json").status_code == 200
    assert body_limit_for("/api/items") == (64 * 1024, "SUITE_MAX_BULK_JSON_BYTES")
    assert body_limit_for("/api/items/x") == (1024, "SUITE_MAX_JSON_BYTES")  # one item: the ordinary limit
    assert body_limit_for("/no/such/page") == (1024, "SUITE_MAX_JSON_BYTES")
    huge = [{"event_id": f"e{n}", "user_id": "u1" * 50, "item_id": "i1", "type": "view"} for n in range(1000)]
    refused = client.post("/api/events", huge, content_type="application/json")
    assert refused.status_code == 413 and "SUITE_MAX_BULK_JSON_BYTES" in refused.json()["detail"]


def _serve(app, scope: dict, chunks: list[bytes]) -> tuple[list[dict], list[dict]]:  # noqa: ANN001
    """Run an ASGI app on one request sent in chunks; (what it sent, what the inner app received)."""
    sent: list[dict] = []
    incoming = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

    async def receive() -> dict:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent, incoming


def _scope(path: str, headers: list[tuple[bytes, bytes]] | None = None) -> dict:
    return {"type": "http", "method": "POST", "path": path, "headers": headers or [], "query_string": b""}


def test_a_streamed_body_is_cut_off_at_the_limit_without_a_content_length(small) -> None:  # noqa: ANN001
    from config.asgi import application

    sent, unread = _serve(application, _scope("/api/support/messages"), [b"x" * 600] * 5)
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["error"] == "too_large"
    assert len(unread) == 3  # the rest of the body was never read


def test_a_declared_length_over_the_limit_is_refused_before_reading(small) -> None:  # noqa: ANN001
    called = []

    async def inner(scope, receive, send) -> None:  # noqa: ANN001
        called.append(scope)

    sent, unread = _serve(BodyLimitASGI(inner), _scope("/api/support/messages", [(b"content-length", b"5000")]), [b"x" * 10])
    assert sent[0]["status"] == 413 and not called and len(unread) == 1


def test_a_body_within_the_limit_reaches_the_application_whole(small) -> None:  # noqa: ANN001
    seen = []

    async def inner(scope, receive, send) -> None:  # noqa: ANN001
        seen.append(await receive())
        seen.append(await receive())
        await send({"type": "http.response.start", "status": 200, "headers": []})

    sent, _ = _serve(BodyLimitASGI(inner), _scope("/api/support/messages"), [b"ab", b"cd", b"ef"])
    assert seen == [{"type": "http.request", "body": b"abcdef", "more_body": False}, {"type": "http.disconnect"}]
    assert sent[0]["status"] == 200


def test_websockets_pass_through_untouched(small) -> None:  # noqa: ANN001
    seen = []

    async def inner(scope, receive, send) -> None:  # noqa: ANN001
        seen.append(scope["type"])

    asyncio.run(BodyLimitASGI(inner)({"type": "websocket", "path": "/ws/x"}, None, None))
    assert seen == ["websocket"]


def test_the_schema_declares_413_on_every_write(role_users: dict, client: Client) -> None:
    client.force_login(role_users["admin"])
    schema = client.get("/api/schema/", {"format": "json"}).json()
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            if method in ("post", "put", "patch"):
                assert "413" in op["responses"], (method, path)
    assert "409" in schema["paths"]["/api/support/feedback"]["post"]["responses"]
