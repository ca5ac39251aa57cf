"""/api/status: staff see the services' addresses; API clients and other roles only whether each is up."""
from __future__ import annotations

from django.conf import settings
from django.test import Client

from tests.helpers import run_json


def _addresses() -> list[str]:
    host_ports = [settings.KAFKA_BOOTSTRAP_SERVERS.split(",")[0].strip()]
    redis = settings.REDIS_URL.split("//", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    return [*host_ports, redis]


def test_a_token_client_sees_no_internal_addresses(client: Client, db) -> None:  # noqa: ANN001
    token = run_json("api_token_create", client="shop-backend")["token"]
    body = client.get("/api/status", HTTP_AUTHORIZATION=f"Token {token}")
    assert body.status_code == 200
    text = body.content.decode()
    for address in _addresses():
        assert address not in text
    assert {s["name"] for s in body.json()["services"]} == {"Redis", "Kafka"}
    assert all(set(s) == {"name", "ok", "message"} for s in body.json()["services"])


def test_an_agent_sees_no_addresses_and_staff_see_them(client: Client, role_users: dict) -> None:
    client.force_login(role_users["support_agent"])
    assert all("address" not in s for s in client.get("/api/status").json()["services"])
    client.force_login(role_users["admin"])
    text = client.get("/api/status").content.decode()
    for address in _addresses():
        assert address in text
