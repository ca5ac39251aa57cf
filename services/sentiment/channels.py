"""Alert channels (one small base class with `notify()`, one subclass per channel) and the delivery outbox.

A notification's deliveries (services/sentiment/notifications.py: one notice per group of alerts) are rows made
in its own transaction (`deliveries_create`), one per channel; each points at the notice's first alert. Each is
sent by `delivery_attempt`: claim the row, notify once, record the attempt; a failure that may pass is tried again
after an exponential backoff, up to 1 + SENTIMENT_WEBHOOK_RETRIES attempts. The Celery task `sentiment.delivery_send`
runs it (retrying with the backoff as its countdown); `deliveries_requeue` (a beat task) sends again the rows whose
task was lost with a dead process. `alert_deliver` does the same in the calling thread.
"""
from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from typing import Any, ClassVar

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.sentiment.models import Alert, Delivery, DeliveryAttempt, Notification
from services.errors import SuiteError
from services.outbound import OutboundRefused, outbound_fetch

log = logging.getLogger("services.sentiment.channels")

DELIVERY_TASK = "sentiment.delivery_send"


class DeliveryFailed(Exception):
    """A channel could not deliver; `retry` says whether trying later may work (a 5xx may, a 404 will not)."""

    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


class Channel:
    """Delivers one alert, once; `notify` raises DeliveryFailed when it could not."""

    name: ClassVar[str] = ""
    backoff_s: ClassVar[float] = 0.5  # wait before the second attempt; doubles each retry

    def notify(self, *, alert: Alert, payload: dict[str, Any]) -> None:
        raise NotImplementedError


class InAppChannel(Channel):
    name = "inapp"

    def notify(self, *, alert: Alert, payload: dict[str, Any]) -> None:
        from services.sentiment.live import alert_push

        alert_push(alert=payload)


class EmailChannel(Channel):
    name = "email"

    def notify(self, *, alert: Alert, payload: dict[str, Any]) -> None:
        recipients = [a.strip() for a in alert.rule.email_to.split(",") if a.strip()]
        if not recipients:
            raise DeliveryFailed("the rule has no e-mail recipients", retry=False)
        notice = payload.get("notification")
        if notice:  # a grouped notice: one mail listing its alerts
            states = sorted({a["state"] for a in notice["alerts"]})
            subject = f"[sentiment] {notice['group']} {'/'.join(states)}: {len(notice['alerts'])} alert(s)"
            message = notice["message"]
        else:
            subject, message = f"[sentiment] {alert.symbol} {alert.kind} alert", alert.message
        send_mail(subject=subject, message=message, from_email=None, recipient_list=recipients)


class WebhookChannel(Channel):
    """A JSON POST through services.outbound (public addresses only, bounded); 5xx, 429 and network errors may pass."""

    name = "webhook"

    def notify(self, *, alert: Alert, payload: dict[str, Any]) -> None:
        url = alert.rule.webhook_url
        if not url:
            raise DeliveryFailed("the rule has no webhook URL", retry=False)
        try:
            response = outbound_fetch(method="POST", url=url, body=json.dumps({"alert": payload}).encode(),
                                      headers={"Content-Type": "application/json"})
        except OutboundRefused as exc:  # a private address, too many redirects: the same next time
            raise DeliveryFailed(exc.message, retry=False) from None
        except SuiteError as exc:  # unreachable, timed out
            raise DeliveryFailed(exc.message, retry=True) from None
        if 200 <= response.status < 300:
            return
        # Any other 4xx: the receiver refuses it, retrying will not help. A 3xx left over is a redirect without
        # a Location: nothing to follow.
        retry = response.status >= 500 or response.status == 429
        raise DeliveryFailed(f"{url} answered HTTP {response.status}", retry=retry)


CHANNELS: dict[str, type[Channel]] = {c.name: c for c in (InAppChannel, EmailChannel, WebhookChannel)}


def deliveries_create(*, alert: Alert, notification: Notification | None = None) -> list[Delivery]:
    """One pending delivery per channel of the alert's rule (in-app always): call it in the notice's transaction."""
    names = ["inapp", *[c for c in alert.rule.channels if c != "inapp"]]
    now = timezone.now()
    return [Delivery.objects.create(alert=alert, notification=notification, channel=name, next_attempt_at=now)
            for name in dict.fromkeys(names)]


def _attempts_max() -> int:
    return 1 + settings.SENTIMENT_WEBHOOK_RETRIES


def _claim(delivery_id: int) -> Delivery | None:
    """The delivery, claimed for one attempt (attempts + 1), or None when it is done, not due or someone else's.

    A claim lasts as long as a task may run (the default queue's hard limit), so a worker that died holding
    it gives it up then.
    """
    now = timezone.now()
    lease = settings.SUITE_TASK_TIME_LIMITS_S["default"] + settings.SUITE_TASK_TIME_LIMIT_GRACE_S
    claimed = Delivery.objects.filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now), id=delivery_id,
                                      status=Delivery.PENDING, next_attempt_at__lte=now).update(
        claimed_until=now + timedelta(seconds=lease), attempts=F("attempts") + 1)
    if claimed != 1:
        return None
    return Delivery.objects.select_related("alert__rule__ticker", "notification").get(id=delivery_id)


def _record(delivery: Delivery, *, outcome: str, error: str = "", retry_in: float | None = None) -> None:
    """Close the attempt: the attempt's row and the delivery's new state, in one transaction."""
    now = timezone.now()
    status = {DeliveryAttempt.SENT: Delivery.SENT, DeliveryAttempt.FAILED: Delivery.FAILED}.get(outcome, Delivery.PENDING)
    with transaction.atomic():
        try:
            with transaction.atomic():
                DeliveryAttempt.objects.create(delivery=delivery, number=delivery.attempts, outcome=outcome,
                                               error=error[:2000])
        except IntegrityError:  # this number was recorded by an attempt whose claim lapsed: keep that one
            pass
        Delivery.objects.filter(id=delivery.id).update(
            status=status, error=error[:2000], claimed_until=None, sent_at=now if status == Delivery.SENT else None,
            next_attempt_at=now + timedelta(seconds=retry_in) if retry_in is not None else None)


def delivery_attempt(*, delivery_id: int) -> float | None:
    """Try one delivery once; the seconds to wait before the next try when it should be tried again, else None.

    1. Claim the row (pending, due, not claimed by a live attempt); nothing to do when that fails.
    2. Notify on its channel.
    3. Record the attempt: sent; failed for good (a refusal, or the last attempt); or pending again with the
       next try after the backoff (`backoff_s` doubling each attempt).
    """
    from services.sentiment.alerts import alert_json
    from services.sentiment.notifications import notification_json

    delivery = _claim(delivery_id)
    if delivery is None:
        return None
    channel = CHANNELS.get(delivery.channel)
    if channel is None:
        _record(delivery, outcome=DeliveryAttempt.FAILED, error="unknown channel")
        return None
    try:
        payload = alert_json(delivery.alert)  # the first alert, as before notices were grouped; then the notice
        if delivery.notification is not None:
            payload["notification"] = notification_json(delivery.notification)
        channel().notify(alert=delivery.alert, payload=payload)
    except DeliveryFailed as exc:
        error, retry = str(exc), exc.retry
    except Exception as exc:  # noqa: BLE001 - a broken channel (Redis down, SMTP refused) may work later
        log.exception("alert %s: %s delivery failed", delivery.alert_id, delivery.channel)
        error, retry = str(exc) or type(exc).__name__, True
    else:
        _record(delivery, outcome=DeliveryAttempt.SENT)
        return None
    if retry and delivery.attempts < _attempts_max():
        retry_in = channel.backoff_s * 2 ** (delivery.attempts - 1)
        log.info("alert %s: %s attempt %d failed (%s); next in %.1f s", delivery.alert_id, delivery.channel,
                 delivery.attempts, error, retry_in)
        _record(delivery, outcome=DeliveryAttempt.RETRY, error=error, retry_in=retry_in)
        return retry_in
    if retry:
        error = f"{error} after {delivery.attempts} attempt(s)"
    log.warning("alert %s: %s delivery failed: %s", delivery.alert_id, delivery.channel, error)
    _record(delivery, outcome=DeliveryAttempt.FAILED, error=error)
    return None


def alert_deliver(*, alert: Alert) -> list[Delivery]:
    """Deliver `alert` on its channels in this thread (backoff waits included); its deliveries as they ended."""
    if not alert.deliveries.exists():
        with transaction.atomic():
            deliveries_create(alert=alert)
    for delivery_id in alert.deliveries.filter(status=Delivery.PENDING).values_list("id", flat=True):
        while (retry_in := delivery_attempt(delivery_id=delivery_id)) is not None:
            time.sleep(retry_in)
    return list(alert.deliveries.order_by("id"))


def deliveries_enqueue(*, alert_id: int) -> int:
    """Send a `sentiment.delivery_send` task for each pending delivery of the alert; how many were sent."""
    from celery import current_app

    ids = list(Delivery.objects.filter(alert_id=alert_id, status=Delivery.PENDING).values_list("id", flat=True))
    for delivery_id in ids:
        current_app.send_task(DELIVERY_TASK, args=[delivery_id])
    return len(ids)


def deliveries_requeue(*, older_than_s: float) -> int:
    """Send again the pending deliveries due more than `older_than_s` seconds ago and not claimed (lost tasks).

    A task that is only late finds the row claimed or sent and does nothing, so a delivery is never sent twice
    by two tasks.
    """
    from celery import current_app

    now = timezone.now()
    ids = list(Delivery.objects.filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now), status=Delivery.PENDING,
                                       next_attempt_at__lt=now - timedelta(seconds=older_than_s))
               .values_list("id", flat=True))
    for delivery_id in ids:
        current_app.send_task(DELIVERY_TASK, args=[delivery_id])
    if ids:
        log.warning("re-sent %d alert deliveries whose task was lost", len(ids))
    return len(ids)
