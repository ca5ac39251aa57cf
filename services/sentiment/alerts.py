"""Alert rules on the watchlist: evaluate, raise once per cooldown period, deliver, acknowledge."""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from apps.sentiment.models import Alert, AlertRule, ScoredNews
from services.errors import NotFound, SuiteError
from services.sentiment.aggregates import window_and_baseline

log = logging.getLogger("services.sentiment.alerts")

DEFAULT_THRESHOLDS = {AlertRule.ZSCORE: 2.0, AlertRule.NEGATIVE_SHARE: 0.5, AlertRule.VOLUME: 3.0}


@dataclass(frozen=True)
class Verdict:
    fired: bool
    value: float  # z, negative share or volume ratio
    message: str


def rule_evaluate(*, rule: AlertRule, now: datetime) -> Verdict:
    """Judge one rule on the window ending at `now` against the baseline before it."""
    window = timedelta(minutes=rule.window_minutes)
    recent, base = window_and_baseline(scope=rule.ticker.symbol, now=now, window=window,
                                       baseline=timedelta(days=rule.baseline_days))
    symbol, minutes = rule.ticker.symbol, rule.window_minutes
    if recent.count < rule.min_count:
        return Verdict(False, 0.0, f"{symbol}: {recent.count} headline(s) in {minutes} min, fewer than {rule.min_count}")
    if rule.kind == AlertRule.NEGATIVE_SHARE:
        value = recent.negative_share
        return Verdict(value >= rule.threshold, value,
                       f"{symbol}: {value:.0%} of {recent.count} headlines in the last {minutes} min are negative "
                       f"(threshold {rule.threshold:.0%})")
    if rule.kind == AlertRule.VOLUME:
        expected = base.count * window.total_seconds() / timedelta(days=rule.baseline_days).total_seconds()
        value = recent.count / max(expected, 1.0)  # an empty baseline counts as one headline per window
        return Verdict(value >= rule.threshold, value,
                       f"{symbol}: {recent.count} headlines in {minutes} min, {value:.1f}× the baseline's {expected:.1f}")
    # z-score of the window's mean against the baseline (standard error of a mean of recent.count scores)
    if base.count < 2 or base.std == 0.0:
        return Verdict(False, 0.0, f"{symbol}: baseline too small for a z-score ({base.count} headlines)")
    value = (recent.mean - base.mean) / (base.std / math.sqrt(recent.count))
    direction = "above" if value > 0 else "below"
    return Verdict(abs(value) >= rule.threshold, value,
                   f"{symbol}: mean sentiment {recent.mean:+.2f} over {minutes} min is {abs(value):.1f} standard errors "
                   f"{direction} the {rule.baseline_days}-day baseline ({base.mean:+.2f})")


def alert_raise(*, rule: AlertRule, verdict: Verdict, now: datetime) -> Alert | None:
    """Store an alert unless the rule already raised one within its cooldown (dedup key: rule + cooldown period).

    Its deliveries (one pending row per channel) are created in the same transaction: an alert is never stored
    without them, whatever happens to the process next (the outbox, services/sentiment/channels.py).
    """
    from services.sentiment.channels import deliveries_create

    cooldown = timedelta(minutes=max(rule.cooldown_minutes, 1))
    if Alert.objects.filter(rule=rule, window_end__gt=now - cooldown, window_end__lte=now + cooldown).exists():
        return None
    period = int(now.timestamp() // cooldown.total_seconds())
    try:
        with transaction.atomic():
            alert = Alert.objects.create(rule=rule, symbol=rule.ticker.symbol, kind=rule.kind, value=verdict.value,
                                         threshold=rule.threshold, message=verdict.message, window_end=now,
                                         dedup_key=f"{rule.id}:{period}")
            deliveries_create(alert=alert)
            return alert
    except IntegrityError:  # another consumer raised it first
        return None


def alerts_check(*, symbols: Sequence[str], now: datetime | None = None,
                 deliver: Callable[[Alert], object] | None = None) -> list[Alert]:
    """Evaluate the enabled rules of `symbols`, raise what fires and deliver it on the rule's channels.

    `now` defaults to the newest stored headline's time for each symbol, so replayed history is judged
    in its own time. `deliver` is called with each new alert, its deliveries already stored; the default
    delivers in this thread (the consumer enqueues Celery tasks instead). A rule whose evaluation fails is
    logged and its error kept on the rule (`last_error`); the other rules are still evaluated.
    """
    from services.sentiment.channels import alert_deliver

    deliver = deliver or (lambda alert: alert_deliver(alert=alert))

    raised = []
    rules = AlertRule.objects.filter(ticker__symbol__in=list(symbols), enabled=True).select_related("ticker")
    for rule in rules:
        try:
            alert = rule_check(rule=rule, now=now)
        except Exception as exc:  # noqa: BLE001 - one bad rule (a window past what dates hold) must not silence the rest
            log.exception("alert rule %s (%s) failed", rule.id, rule)
            AlertRule.objects.filter(id=rule.id).update(last_error=f"{type(exc).__name__}: {exc}"[:2000],
                                                        last_error_at=timezone.now())
            continue
        if rule.last_error:
            AlertRule.objects.filter(id=rule.id).update(last_error="", last_error_at=None)
        if alert is not None:
            log.info("alert %s: %s", alert.id, alert.message)
            deliver(alert)
            raised.append(alert)
    return raised


def rule_check(*, rule: AlertRule, now: datetime | None) -> Alert | None:
    """Evaluate one rule at `now` (default: its ticker's newest headline) and raise its alert when it fires."""
    at = now or ScoredNews.objects.filter(ticker_links__symbol=rule.ticker.symbol).aggregate(t=Max("published_at"))["t"]
    if at is None:
        return None
    verdict = rule_evaluate(rule=rule, now=at)
    return alert_raise(rule=rule, verdict=verdict, now=at) if verdict.fired else None


def alert_acknowledge(*, alert_id: int, user: Any, comment: str = "") -> Alert:
    """Acknowledge an alert once, with a comment; a second acknowledgement is refused."""
    if not Alert.objects.filter(id=alert_id).exists():
        raise NotFound(f"Alert {alert_id} does not exist.", field="alert")
    changed = Alert.objects.filter(id=alert_id, acknowledged_at__isnull=True).update(
        acknowledged_at=timezone.now(), acknowledged_by=user, comment=comment.strip()[:2000])
    if changed != 1:
        raise SuiteError(f"Alert {alert_id} is already acknowledged.", field="alert")
    return Alert.objects.get(id=alert_id)


def alert_json(alert: Alert) -> dict[str, Any]:
    return {"id": alert.id, "symbol": alert.symbol, "kind": alert.kind, "value": round(alert.value, 4),
            "threshold": alert.threshold, "message": alert.message, "window_end": alert.window_end.isoformat(),
            "created_at": alert.created_at.isoformat(),
            "acknowledged_at": alert.acknowledged_at.isoformat() if alert.acknowledged_at else None,
            "acknowledged_by": alert.acknowledged_by.get_username() if alert.acknowledged_by else None,
            "comment": alert.comment}
