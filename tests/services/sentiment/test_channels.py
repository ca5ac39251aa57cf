"""Alert channels: the webhook against a real local HTTP server (retries, permanent failure), e-mail, in-app."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from apps.sentiment.models import Alert, AlertRule, Delivery
from services.sentiment.channels import CHANNELS, Channel, alert_deliver
from services.sentiment.watchlist import rule_save, ticker_save

pytestmark = pytest.mark.django_db


def alert_for(rule: AlertRule) -> Alert:
    return Alert.objects.create(rule=rule, symbol=rule.ticker.symbol, kind=rule.kind, value=-3.1, threshold=2.0,
                                message="ACME: mean sentiment dropped", dedup_key=f"{rule.id}:1",
                                window_end=datetime(2026, 3, 2, 15, tzinfo=timezone.utc))


def test_every_channel_is_a_subclass_of_one_base_with_notify() -> None:
    assert set(CHANNELS) == {"inapp", "email", "webhook"}
    assert all(issubclass(c, Channel) and "notify" in vars(c) for c in CHANNELS.values())


def test_the_webhook_is_retried_with_backoff_until_the_receiver_accepts_it(webhook_server, settings) -> None:  # noqa: ANN001
    settings.SENTIMENT_WEBHOOK_RETRIES = 3
    ticker_save(symbol="ACME")
    rule = rule_save(symbol="ACME", kind="zscore", channels=["webhook"], webhook_url=webhook_server.url)
    webhook_server.statuses = [503, 500]
    deliveries = alert_deliver(alert=alert_for(rule))

    webhook = next(d for d in deliveries if d.channel == "webhook")
    assert webhook.status == Delivery.SENT and webhook.attempts == 3
    assert [r["status"] for r in webhook_server.received] == [503, 500, 200]
    body = webhook_server.received[-1]
    assert body["content_type"] == "application/json"
    assert body["json"]["alert"]["symbol"] == "ACME" and body["json"]["alert"]["value"] == pytest.approx(-3.1)


def test_a_webhook_that_keeps_failing_is_recorded_as_a_permanent_failure(webhook_server, settings) -> None:  # noqa: ANN001
    settings.SENTIMENT_WEBHOOK_RETRIES = 2
    ticker_save(symbol="ACME")
    rule = rule_save(symbol="ACME", kind="zscore", channels=["webhook", "email"], webhook_url=webhook_server.url)
    webhook_server.statuses = [500, 502, 503, 200]
    alert_deliver(alert=alert_for(rule))

    failed = Delivery.objects.get(channel="webhook")
    assert failed.status == Delivery.FAILED and failed.attempts == 3 and "HTTP 503 after 3 attempt(s)" in failed.error
    assert len(webhook_server.received) == 3
    no_address = Delivery.objects.get(channel="email")  # the rule has no recipients
    assert no_address.status == Delivery.FAILED and "recipients" in no_address.error


def test_a_refusing_receiver_is_not_retried(webhook_server) -> None:  # noqa: ANN001
    ticker_save(symbol="ACME")
    rule = rule_save(symbol="ACME", kind="zscore", channels=["webhook"], webhook_url=webhook_server.url)
    webhook_server.statuses = [404]
    alert_deliver(alert=alert_for(rule))
    failed = Delivery.objects.get(channel="webhook")
    assert failed.status == Delivery.FAILED and failed.attempts == 1 and "HTTP 404" in failed.error
