"""Every API answers errors in one shape, {error, detail, field, errors}, and the OpenAPI schema says so."""
from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def _client(user: object) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _assert_field_error(response, field: str) -> dict:  # noqa: ANN001
    body = response.json()
    assert response.status_code == 400, response.content
    assert set(body) == {"error", "detail", "field", "errors"}, body
    assert body["error"] == "invalid" and body["field"] == field
    assert isinstance(body["detail"], str) and field in body["detail"]  # readable on its own: names the field
    assert body["errors"][0] == {"field": field, "detail": body["detail"]}
    return body


def test_every_api_family_answers_a_validation_error_in_the_same_shape(role_users: dict) -> None:
    admin, analyst, shop = (_client(role_users[r]) for r in ("admin", "risk_analyst", "api_client"))
    _assert_field_error(admin.post("/api/registry/tasks/sentiment/promote", {"version": "two"}, format="json"), "version")
    _assert_field_error(analyst.post("/api/sentiment/headlines/1/relabel", {"label": "meh"}, format="json"), "label")
    _assert_field_error(APIClient().post("/api/support/messages", {"text": ""}, format="json"), "text")
    _assert_field_error(shop.post("/api/events", {"event_id": "e1", "item_id": "i1", "type": "purchase",
                                                  "timestamp": "2026-11-10T10:00:00Z"}, format="json"), "user_id")


def test_several_bad_fields_are_all_listed_and_the_first_is_named(role_users: dict) -> None:
    analyst = _client(role_users["risk_analyst"])
    response = analyst.post("/api/sentiment/tickers/AAPL/rules", {"kind": "tides", "threshold": 0, "webhook_url": "nope"},
                            format="json")
    body = _assert_field_error(response, "kind")
    assert [e["field"] for e in body["errors"]] == ["kind", "threshold", "webhook_url"]
    assert all(e["detail"].startswith(f"{e['field']}: ") for e in body["errors"])


def test_a_nested_field_is_named_by_its_dotted_path(role_users: dict) -> None:
    analyst = _client(role_users["risk_analyst"])
    response = analyst.post("/api/sentiment/tickers", {"symbol": "ACME", "aliases": ["Acme", "x" * 201]}, format="json")
    assert _assert_field_error(response, "aliases.1")["detail"].startswith("aliases.1: ")


def test_drf_refusals_keep_their_status_and_headers_in_the_same_shape(role_users: dict, settings) -> None:  # noqa: ANN001
    anonymous = APIClient().get("/api/me")
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "not_authenticated"
    assert anonymous["WWW-Authenticate"] == "Token" and set(anonymous.json()) == {"error", "detail"}
    bad_token = APIClient().get("/api/me", HTTP_AUTHORIZATION="Token not-a-real-token")
    assert bad_token.status_code == 401 and bad_token.json() == {"error": "authentication_failed", "detail": "Invalid token."}

    forbidden = _client(role_users["nobody"]).get("/api/recommendations", {"user": "u1"})
    assert forbidden.status_code == 403 and forbidden.json()["error"] == "permission_denied" and forbidden.json()["detail"]
    missing = _client(role_users["admin"]).post("/api/registry/tasks/nosuch/rollback", {}, format="json")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found" and missing.json()["detail"]
    wrong_method = _client(role_users["admin"]).delete("/api/registry/tasks")
    assert wrong_method.status_code == 405 and wrong_method.json() == {"error": "method_not_allowed",
                                                                        "detail": 'Method "DELETE" not allowed.'}
    unparsable = _client(role_users["admin"]).post("/api/registry/tasks/sentiment/promote", "{not json",
                                                   content_type="application/json")
    assert unparsable.status_code == 400 and unparsable.json()["error"] == "parse_error" and "field" not in unparsable.json()

    settings.SUPPORT_CUSTOMER_RATE = "1/minute"
    cache.clear()
    try:
        customer = APIClient()
        customer.get("/api/support/conversations/not-a-token/messages")
        throttled = customer.get("/api/support/conversations/not-a-token/messages")
        assert throttled.status_code == 429 and throttled.json()["error"] == "throttled" and int(throttled["Retry-After"]) > 0
    finally:
        cache.clear()


def test_the_schema_declares_the_error_component_on_every_operation(role_users: dict) -> None:
    schema = _client(role_users["admin"]).get("/api/schema/", {"format": "json"}).json()
    error = schema["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"error", "detail"} and set(error["properties"]) == {"error", "detail", "field", "errors"}
    ref = "#/components/schemas/Error"
    operations = {(method, path): op for path, ops in schema["paths"].items() for method, op in ops.items()}

    def error_codes(method: str, path: str) -> set[str]:
        responses = operations[(method, path)]["responses"]
        return {code for code, r in responses.items() if r.get("content", {}).get("application/json", {}).get("schema") == {"$ref": ref}}

    assert {"400", "401", "403", "404", "503"} <= error_codes("post", "/api/registry/tasks/{task}/promote")
    assert {"400", "401", "403"} <= error_codes("post", "/api/events")
    assert {"400", "429"} <= error_codes("post", "/api/support/messages")
    assert "401" not in error_codes("post", "/api/support/messages")  # customers need no sign-in
    assert {"401", "403"} <= error_codes("get", "/api/me")
    assert all(error_codes(method, path) for method, path in operations), "an operation without its error responses"
