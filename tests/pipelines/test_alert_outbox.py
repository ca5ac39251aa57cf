"""Alert deliveries as an outbox: made with the alert, sent by a real Celery worker, never lost with a dead consumer."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from apps.sentiment.models import Alert, Delivery, DeliveryAttempt
from services.sentiment.channels import deliveries_requeue
from services.sentiment.watchlist import rule_save, ticker_save
from tests.conftest import ROOT
from tests.helpers import database_url, wait_until
from tests.pipelines.conftest import messages_produce, news_message

pytestmark = pytest.mark.django_db(transaction=True)

# A consumer process that is killed (SIGKILL) right after an alert's transaction committed, before it could hand
# the alert's deliveries to Celery: the worst moment for an in-memory queue.
DOOMED_CONSUMER = """
import os, signal, sys
import django
django.setup()
import pipelines.news_consumer as consumer
from services.sentiment.bus import Topics
from tests.pipelines.conftest import words_classify

consumer.alert_deliver_later = lambda alert: os.kill(os.getpid(), signal.SIGKILL)
consumer.news_consume(group="g-doomed", topics=Topics.named(sys.argv[1]), batch_size=12, max_messages=12,
                      idle_exit_seconds=20, classify=words_classify, after_store=consumer.after_store_default)
"""


def test_an_alert_whose_consumer_died_before_delivery_is_delivered_once_by_the_worker(
        news_topics, webhook_server, celery_worker_process) -> None:  # noqa: ANN001
    ticker_save(symbol="ACME")
    rule_save(symbol="ACME", kind="volume", threshold=3.0, for_evaluations=1, channels=["webhook"],
              webhook_url=webhook_server.url)
    messages_produce(news_topics.raw, [news_message(i) for i in range(12)])
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings",
           "DATABASE_URL": database_url()}
    doomed = subprocess.run([sys.executable, "-c", DOOMED_CONSUMER, news_topics.raw.removesuffix(".raw")], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=180, check=False)
    assert doomed.returncode == -signal.SIGKILL, doomed.stderr[-3000:]

    alert = Alert.objects.get()  # committed, with its deliveries, before the process died
    assert set(Delivery.objects.filter(alert=alert).values_list("channel", "status")) == {
        ("inapp", Delivery.PENDING), ("webhook", Delivery.PENDING)}
    assert webhook_server.received == []

    # The beat task's sweep, once the deliveries are overdue (threshold 0 here), hands them to the real worker.
    assert deliveries_requeue(older_than_s=0) == 2
    wait_until(lambda: Delivery.objects.filter(alert=alert, status=Delivery.SENT).count() == 2, timeout=60,
               message=lambda: f"not delivered: {list(Delivery.objects.values('channel', 'status', 'error'))}")
    assert deliveries_requeue(older_than_s=0) == 0  # nothing pending: a second sweep sends nothing
    webhook = Delivery.objects.get(alert=alert, channel="webhook")
    assert webhook.attempts == 1 and webhook.sent_at is not None
    assert list(DeliveryAttempt.objects.filter(delivery=webhook).values_list("number", "outcome")) == [(1, "sent")]
    assert [r["json"]["alert"]["id"] for r in webhook_server.received] == [alert.id]  # delivered once


def test_a_failing_webhook_is_retried_by_the_worker_with_backoff_and_every_attempt_recorded(
        webhook_server, celery_worker_process, settings) -> None:  # noqa: ANN001
    from datetime import datetime, timezone

    from services.sentiment.alerts import Verdict, alert_raise
    from services.sentiment.channels import deliveries_enqueue

    ticker_save(symbol="ACME")
    rule = rule_save(symbol="ACME", kind="volume", channels=["webhook"], webhook_url=webhook_server.url)
    webhook_server.statuses = [503, 500]  # then 200
    alert = alert_raise(rule=rule, verdict=Verdict(True, 4.0, "ACME: volume"), now=datetime(2026, 3, 2, tzinfo=timezone.utc))
    assert deliveries_enqueue(alert_id=alert.id) == 2

    wait_until(lambda: Delivery.objects.get(alert=alert, channel="webhook").status == Delivery.SENT, timeout=60,
               message=lambda: f"not delivered: {list(Delivery.objects.values('channel', 'status', 'error'))}")
    webhook = Delivery.objects.get(alert=alert, channel="webhook")
    assert webhook.attempts == 3
    attempts = list(DeliveryAttempt.objects.filter(delivery=webhook).values_list("number", "outcome", "error"))
    assert [(n, o) for n, o, _ in attempts] == [(1, "retry"), (2, "retry"), (3, "sent")]
    assert "HTTP 503" in attempts[0][2] and "HTTP 500" in attempts[1][2]
    assert [r["status"] for r in webhook_server.received] == [503, 500, 200]
