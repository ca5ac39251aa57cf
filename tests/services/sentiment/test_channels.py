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


def test_every_attempt_is_recorded_with_its_outcome(webhook_server, settings) -> None:  # noqa: ANN001
    from apps.sentiment.models import DeliveryAttempt

    settings.SENTIMENT_WEBHOOK_RETRIES = 3
    ticker_save(symbol="ACME")
    rule = rule_save(symbol="ACME", kind="zscore", channels=["webhook"], webhook_url=webhook_server.url)
    webhook_server.statuses = [429]
    alert_deliver(alert=alert_for(rule))
    webhook = Delivery.objects.get(channel="webhook")
    log = list(DeliveryAttempt.objects.filter(delivery=webhook).values_list("number", "outcome", "error"))
    assert [(n, o) for n, o, _ in log] == [(1, "retry"), (2, "sent")] and "HTTP 429" in log[0][2]
    assert webhook.sent_at is not None and webhook.error == ""


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/hook", "http://169.254.169.254/latest/meta-data/iam/",
                                 "http://[::ffff:127.0.0.1]:8000/hook", "http://10.0.0.5/hook"])
def test_a_webhook_to_an_internal_address_is_refused_at_delivery_and_not_retried(url: str) -> None:
    # Stored as an older rule would be (the API refuses such a URL when it is saved: tests/apps/sentiment).
    rule = AlertRule.objects.create(ticker=ticker_save(symbol="ACME"), kind="zscore", channels=["webhook"],
                                    webhook_url=url)
    alert_deliver(alert=alert_for(rule))
    refused = Delivery.objects.get(channel="webhook")
    assert refused.status == Delivery.FAILED and refused.attempts == 1 and "private or reserved" in refused.error


def test_a_webhook_redirected_from_an_allowed_receiver_to_an_internal_address_is_refused(settings) -> None:  # noqa: ANN001
    from tests.helpers import QuietHandler, http_serve

    class Redirecting(QuietHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.send_response(307)
            self.send_header("Location", "http://127.0.0.1:1/admin")
            self.end_headers()

    settings.SUITE_OUTBOUND_ALLOW = ["localhost"]  # the receiver by its name; 127.0.0.1 itself stays refused
    with http_serve(Redirecting) as base:
        ticker_save(symbol="ACME")
        rule = rule_save(symbol="ACME", kind="zscore", channels=["webhook"],
                         webhook_url=base.replace("127.0.0.1", "localhost") + "/hook")
        alert_deliver(alert=alert_for(rule))
    refused = Delivery.objects.get(channel="webhook")
    assert refused.status == Delivery.FAILED and refused.attempts == 1 and "127.0.0.1" in refused.error


def test_an_alerts_deliveries_are_stored_with_it_before_anything_is_sent() -> None:
    from services.sentiment.alerts import Verdict, alert_raise

    rule = AlertRule.objects.create(ticker=ticker_save(symbol="ACME"), kind="volume", channels=["email", "webhook"],
                                    email_to="risk@example.com", webhook_url="https://hooks.example.com/x")
    alert = alert_raise(rule=rule, verdict=Verdict(True, 4.0, "ACME: volume"), now=datetime(2026, 3, 2, tzinfo=timezone.utc))
    assert sorted(alert.deliveries.values_list("channel", "status", "attempts")) == [
        ("email", "pending", 0), ("inapp", "pending", 0), ("webhook", "pending", 0)]
