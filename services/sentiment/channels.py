"""Alert channels: one small base class with `notify()`, one subclass per channel (in-app, e-mail, webhook)."""
from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from typing import Any, ClassVar

from django.conf import settings
from django.core.mail import send_mail

from apps.sentiment.models import Alert, Delivery

log = logging.getLogger("services.sentiment.channels")


class DeliveryFailed(Exception):
    def __init__(self, message: str, *, attempts: int = 1) -> None:
        super().__init__(message)
        self.attempts = attempts


class Channel:
    """Delivers one alert; `notify` raises DeliveryFailed (with the attempts made) when it gives up."""

    name: ClassVar[str] = ""

    def notify(self, *, alert: Alert, payload: dict[str, Any]) -> int:
        """Deliver; returns the number of attempts it took."""
        raise NotImplementedError


class InAppChannel(Channel):
    name = "inapp"

    def notify(self, *, alert: Alert, payload: dict[str, Any]) -> int:
        from services.sentiment.live import alert_push

        alert_push(alert=payload)
        return 1


class EmailChannel(Channel):
    name = "email"

    def notify(self, *, alert: Alert, payload: dict[str, Any]) -> int:
        recipients = [a.strip() for a in alert.rule.email_to.split(",") if a.strip()]
        if not recipients:
            raise DeliveryFailed("the rule has no e-mail recipients")
        send_mail(subject=f"[sentiment] {alert.symbol} {alert.kind} alert", message=alert.message,
                  from_email=None, recipient_list=recipients)
        return 1


class WebhookChannel(Channel):
    """JSON POST; retried with exponential backoff on network errors and 5xx/429, not on other 4xx."""

    name = "webhook"
    backoff_s: ClassVar[float] = 0.5  # first wait; doubles each retry
    timeout_s: ClassVar[float] = 5.0

    def notify(self, *, alert: Alert, payload: dict[str, Any]) -> int:
        url = alert.rule.webhook_url
        if not url:
            raise DeliveryFailed("the rule has no webhook URL")
        attempts_max = 1 + settings.SENTIMENT_WEBHOOK_RETRIES
        body = json.dumps({"alert": payload}).encode()
        error = ""
        for attempt in range(1, attempts_max + 1):
            request = urllib.request.Request(url, data=body, method="POST",
                                             headers={"Content-Type": "application/json", "User-Agent": "sector-ai-suite"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310 - analyst-set URL
                    if 200 <= response.status < 300:
                        return attempt
                    error = f"HTTP {response.status}"
            except urllib.error.HTTPError as exc:
                error = f"HTTP {exc.code}"
                if 400 <= exc.code < 500 and exc.code != 429:  # the receiver refuses it: retrying will not help
                    raise DeliveryFailed(f"{url} answered {error}", attempts=attempt) from None
            except (urllib.error.URLError, OSError) as exc:
                error = str(getattr(exc, "reason", exc))
            if attempt < attempts_max:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
        raise DeliveryFailed(f"{url}: {error} after {attempts_max} attempt(s)", attempts=attempts_max)


CHANNELS: dict[str, type[Channel]] = {c.name: c for c in (InAppChannel, EmailChannel, WebhookChannel)}


def alert_deliver(*, alert: Alert) -> list[Delivery]:
    """Send `alert` on in-app (always) and the rule's other channels; record each outcome."""
    from services.sentiment.alerts import alert_json

    payload = alert_json(alert)
    names = ["inapp", *[c for c in alert.rule.channels if c != "inapp"]]
    out = []
    for name in names:
        channel = CHANNELS.get(name)
        if channel is None:
            out.append(Delivery.objects.create(alert=alert, channel=name, status=Delivery.FAILED, error="unknown channel"))
            continue
        try:
            attempts = channel().notify(alert=alert, payload=payload)
            out.append(Delivery.objects.create(alert=alert, channel=name, status=Delivery.SENT, attempts=attempts))
        except DeliveryFailed as exc:
            log.warning("alert %s: %s delivery failed: %s", alert.id, name, exc)
            out.append(Delivery.objects.create(alert=alert, channel=name, status=Delivery.FAILED, attempts=exc.attempts,
                                               error=str(exc)))
        except Exception as exc:  # noqa: BLE001 - a broken channel (Redis down, SMTP refused) is recorded, not fatal
            log.exception("alert %s: %s delivery failed", alert.id, name)
            out.append(Delivery.objects.create(alert=alert, channel=name, status=Delivery.FAILED, error=str(exc)[:2000]))
    return out
