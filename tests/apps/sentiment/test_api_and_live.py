"""The dashboard's REST API, page and WebSocket: access by role, filters, relabel, acknowledge, rules, live pushes."""
from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from apps.sentiment.models import Alert, AlertRule, Relabel
from config.asgi import application
from services.sentiment.live import news_push
from services.sentiment.watchlist import ticker_save
from tests.services.sentiment.helpers import headlines_store

pytestmark = pytest.mark.django_db(transaction=True)


def test_only_risk_analysts_reach_the_page_and_the_api(client, role_users) -> None:  # noqa: ANN001
    assert client.get("/api/sentiment/headlines").status_code in (401, 403)
    assert client.get("/sentiment/").status_code == 302  # anonymous → login page
    client.force_login(role_users["support_agent"])
    assert client.get("/api/sentiment/headlines").status_code == 403
    assert client.get("/sentiment/").status_code == 403
    client.force_login(role_users["risk_analyst"])
    assert client.get("/api/sentiment/headlines").status_code == 200
    page = client.get("/sentiment/").content.decode()
    assert 'id="chart"' in page and 'id="headlines"' in page and 'id="alerts"' in page and "Consumer lag" in page


def test_headlines_filter_by_ticker_source_and_range_and_can_be_relabelled(client, role_users) -> None:  # noqa: ANN001
    now = timezone.now()
    headlines_store([(now - timedelta(minutes=5), 0.9), (now - timedelta(days=2), -0.9)], symbol="ACME", source="wire")
    headlines_store([(now - timedelta(minutes=3), -0.5)], symbol="BOLT", source="blog")
    client.force_login(role_users["risk_analyst"])

    assert len(client.get("/api/sentiment/headlines?range=7d").json()) == 3
    assert len(client.get("/api/sentiment/headlines?range=24h").json()) == 2
    acme = client.get("/api/sentiment/headlines?range=7d&ticker=acme").json()
    assert [h["tickers"] for h in acme] == [["ACME"], ["ACME"]] and acme[0]["model_version"] == 1
    blog = client.get("/api/sentiment/headlines?range=all&source=blog").json()
    assert [(h["label"], h["score"]) for h in blog] == [("negative", -0.5)]
    assert client.get("/api/sentiment/sources").json() == ["blog", "wire"]
    bad = client.get("/api/sentiment/headlines?range=forever")
    assert bad.status_code == 400 and bad.json()["field"] == "range"

    series = client.get("/api/sentiment/series?range=7d&ticker=ACME").json()
    assert series["granularity"] == "hour" and sum(p["count"] for p in series["points"]) == 2
    overall = client.get("/api/sentiment/series?range=1h").json()
    assert overall["scope"] == "*" and overall["granularity"] == "minute" and sum(p["count"] for p in overall["points"]) == 2

    response = client.post(f"/api/sentiment/headlines/{blog[0]['id']}/relabel", {"label": "neutral"}, content_type="application/json")
    assert response.status_code == 201 and response.json()["previous_label"] == "negative"
    relabel = Relabel.objects.get()
    assert relabel.source == "analyst:analyst" and relabel.label == "neutral" and relabel.task == "sentiment"
    refused = client.post(f"/api/sentiment/headlines/{blog[0]['id']}/relabel", {"label": "meh"}, content_type="application/json")
    assert refused.status_code == 400 and refused.json()["error"] == "invalid" and refused.json()["field"] == "label"


def test_analysts_manage_the_watchlist_rules_and_acknowledge_alerts(client, role_users, settings) -> None:  # noqa: ANN001
    client.force_login(role_users["risk_analyst"])
    created = client.post("/api/sentiment/tickers", {"symbol": "aapl", "name": "Apple Inc", "aliases": ["Apple"]},
                          content_type="application/json")
    assert created.status_code == 201 and created.json()["symbol"] == "AAPL"
    rule = created.json()["rules"][0]
    assert rule["kind"] == "zscore" and rule["threshold"] == 2.0
    changed = client.put(f"/api/sentiment/tickers/AAPL/rules/{rule['id']}", {"kind": "zscore", "threshold": 2.5, "enabled": False},
                         content_type="application/json")
    assert changed.status_code == 200 and changed.json()["threshold"] == 2.5 and changed.json()["enabled"] is False
    for internal in ("http://127.0.0.1:9/hook", "http://169.254.169.254/latest/meta-data/", "http://[::1]/hook"):
        refused = client.post("/api/sentiment/tickers/AAPL/rules", {"kind": "volume", "channels": ["webhook"],
                                                                    "webhook_url": internal}, content_type="application/json")
        assert refused.status_code == 400 and refused.json()["field"] == "webhook_url", internal
    huge = client.post("/api/sentiment/tickers/AAPL/rules", {"kind": "volume", "window_minutes": 10**12},
                       content_type="application/json")
    assert huge.status_code == 400 and huge.json()["field"] == "window_minutes"
    settings.SUITE_OUTBOUND_ALLOW = ["127.0.0.1"]  # an operator's exception: now it may be saved
    volume = client.post("/api/sentiment/tickers/AAPL/rules", {"kind": "volume", "channels": ["inapp", "webhook"],
                                                               "webhook_url": "http://127.0.0.1:9/hook"}, content_type="application/json")
    assert volume.status_code == 201 and volume.json()["threshold"] == 3.0
    refused = client.post("/api/sentiment/tickers/AAPL/rules", {"kind": "volume", "channels": ["pager"]}, content_type="application/json")
    assert refused.status_code == 400 and refused.json()["field"] == "channels"
    assert client.post("/api/sentiment/tickers/NOPE/rules", {"kind": "volume"}, content_type="application/json").status_code == 404

    alert = Alert.objects.create(rule=AlertRule.objects.get(kind="volume"), symbol="AAPL", kind="volume", value=4.0, threshold=3.0,
                                 message="AAPL: volume", dedup_key="x", window_end=timezone.now())
    assert [a["id"] for a in client.get("/api/sentiment/alerts?open=1").json()] == [alert.id]
    acked = client.post(f"/api/sentiment/alerts/{alert.id}/acknowledge", {"comment": "seen"}, content_type="application/json")
    assert acked.status_code == 200 and acked.json()["acknowledged_by"] == "analyst" and acked.json()["comment"] == "seen"
    again = client.post(f"/api/sentiment/alerts/{alert.id}/acknowledge", {"comment": "x"}, content_type="application/json")
    assert again.status_code == 400 and "already acknowledged" in again.json()["detail"]
    assert client.get("/api/sentiment/alerts?open=1").json() == []


def test_the_lag_endpoint_returns_what_the_consumers_published_without_touching_kafka(
        client, role_users, app_topics, settings) -> None:  # noqa: ANN001
    from services.kafka_lag import lag_publish, redis_client
    from services.sentiment.bus import DEFAULT_GROUP

    client.force_login(role_users["risk_analyst"])
    empty = client.get("/api/sentiment/lag").json()
    assert empty["total"] is None and empty["partitions"] == {} and "news_consume" in empty["error"]
    # Two consumers of the default group on two hosts, each publishing the partitions it owns.
    lag_publish(client=redis_client(), group=DEFAULT_GROUP, consumer="host1:1:a", host="host1", ttl_s=60,
                offsets={(app_topics.raw, 0): (12, 4), (app_topics.raw, 1): (3, 3)})
    lag_publish(client=redis_client(), group=DEFAULT_GROUP, consumer="host2:1:b", host="host2", ttl_s=60,
                offsets={(app_topics.raw, 2): (9, None)})
    lag_publish(client=redis_client(), group="other", consumer="host3:1:c", host="host3", ttl_s=60,
                offsets={(app_topics.raw, 0): (50, 0)})
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:9"  # nothing listens there: reading Kafka would fail
    lag = client.get("/api/sentiment/lag").json()
    assert lag["group"] == DEFAULT_GROUP and lag["topic"] == app_topics.raw
    assert lag["partitions"] == {"0": 8, "1": 0, "2": 9} and lag["total"] == 17
    assert lag["consumers"] == ["host1:1:a", "host2:1:b"] and lag["measured_at"]
    other = client.get("/api/sentiment/lag?group=other").json()
    assert other["partitions"] == {"0": 50} and other["total"] == 50
    client.force_login(role_users["support_agent"])
    assert client.get("/api/sentiment/lag").status_code == 403


def _communicator(user) -> WebsocketCommunicator:  # noqa: ANN001
    communicator = WebsocketCommunicator(application, "/ws/sentiment/", headers=[(b"origin", b"http://localhost"), (b"host", b"localhost")])
    communicator.scope["user"] = user
    return communicator


def test_the_dashboard_websocket_receives_new_headlines_and_refuses_other_roles(role_users) -> None:  # noqa: ANN001
    ticker_save(symbol="ACME")
    rows = headlines_store([(timezone.now(), -0.7)]).stored

    async def scenario() -> None:
        refused = _communicator(role_users["support_agent"])
        connected, code = await refused.connect(timeout=10)
        assert not connected and code == 4403
        communicator = _communicator(role_users["risk_analyst"])
        connected, _ = await communicator.connect(timeout=10)
        assert connected
        await sync_to_async(news_push)(rows=rows)
        message = await communicator.receive_json_from(timeout=15)
        assert message["event"] == "headlines"
        assert message["data"]["items"][0]["label"] == "negative" and message["data"]["items"][0]["tickers"] == ["ACME"]
        await communicator.disconnect()

    async_to_sync(scenario)()
