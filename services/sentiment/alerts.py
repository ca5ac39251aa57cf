"""Alert rules on the watchlist: evaluate, move alerts pending → firing → resolved, acknowledge, drill down.

An alert is one episode of a rule's condition (Prometheus' alerting rules, in event time):

1. The first evaluation where the condition holds opens a *pending* alert; it *fires* once the condition held
   `for_evaluations` consecutive evaluations (1: at once, as rules did before). An evaluation counts only when
   its time is later than the previous one's (several consumer batches within one event time are one evaluation).
   A pending alert whose condition fails before that is dropped.
2. A firing alert stays firing while its value is at or above `clear_threshold` (hysteresis: below the fire
   threshold so it does not flap); below it, or with too few headlines for a verdict, it is *resolved*.
3. What is notified, grouped and muted is decided by services/sentiment/notifications.py after each pass.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max, Q, QuerySet
from django.utils import timezone

from apps.sentiment.models import Alert, AlertRule, ScoredNews
from services.errors import NotFound, SuiteError
from services.sentiment.aggregates import WindowStats, window_and_baseline

log = logging.getLogger("services.sentiment.alerts")

DEFAULT_THRESHOLDS = {AlertRule.ZSCORE: 2.0, AlertRule.NEGATIVE_SHARE: 0.5, AlertRule.VOLUME: 3.0}
HEADLINES_KEPT = 200  # headline ids an alert keeps for its drill-down (the window's newest)


@dataclass(frozen=True)
class Verdict:
    fired: bool
    value: float  # z, negative share or volume ratio
    message: str
    verdict: bool = True  # False: too few headlines (or baseline) to judge; counts as "condition false"


def rule_rows(rule: AlertRule) -> QuerySet[ScoredNews]:
    """The scored headlines a rule watches: its ticker's, its topic's, or its ticker's within its topic."""
    rows = ScoredNews.objects.all()
    if rule.ticker_id:
        rows = rows.filter(ticker_links__symbol=rule.ticker.symbol)
    if rule.topic:
        rows = rows.filter(topics__icontains=f'"{rule.topic}"')  # JSON text of the list: matches the quoted element
    return rows


def rule_windows(*, rule: AlertRule, now: datetime) -> tuple[WindowStats, WindowStats]:
    """The rule's recent window and baseline from the buckets of its target: "ACME", "#topic" or "ACME#topic".

    Topic and ticker × topic buckets are filled as headlines are stored (services/sentiment/store.py), so a topic
    rule costs what a ticker rule costs. Headlines stored before the topic buckets existed are in them once
    `manage.py buckets_rebuild` has summed them (services/sentiment/store.py: buckets_rebuild).
    """
    window, baseline = timedelta(minutes=rule.window_minutes), timedelta(days=rule.baseline_days)
    return window_and_baseline(scope=rule.target, now=now, window=window, baseline=baseline)


def _passes(rule: AlertRule, value: float, limit: float) -> bool:
    return (abs(value) if rule.kind == AlertRule.ZSCORE else value) >= limit


def rule_evaluate(*, rule: AlertRule, now: datetime, limit: float | None = None) -> Verdict:
    """Judge one rule on the window ending at `now` against the baseline before it (at `limit`, default its threshold)."""
    limit = rule.threshold if limit is None else limit
    recent, base = rule_windows(rule=rule, now=now)
    target, minutes = rule.target, rule.window_minutes
    if recent.count < rule.min_count:
        return Verdict(False, 0.0, f"{target}: {recent.count} headline(s) in {minutes} min, fewer than {rule.min_count}",
                       verdict=False)
    if rule.kind == AlertRule.NEGATIVE_SHARE:
        value = recent.negative_share
        return Verdict(_passes(rule, value, limit), value,
                       f"{target}: {value:.0%} of {recent.count} headlines in the last {minutes} min are negative "
                       f"(threshold {rule.threshold:.0%})")
    if rule.kind == AlertRule.VOLUME:
        expected = base.count * rule.window_minutes / (rule.baseline_days * 24 * 60)
        value = recent.count / max(expected, 1.0)  # an empty baseline counts as one headline per window
        return Verdict(_passes(rule, value, limit), value,
                       f"{target}: {recent.count} headlines in {minutes} min, {value:.1f}× the baseline's {expected:.1f}")
    # z-score of the window's mean against the baseline (standard error of a mean of recent.count scores)
    if base.count < 2 or base.std == 0.0:
        return Verdict(False, 0.0, f"{target}: baseline too small for a z-score ({base.count} headlines)", verdict=False)
    value = (recent.mean - base.mean) / (base.std / math.sqrt(recent.count))
    direction = "above" if value > 0 else "below"
    return Verdict(_passes(rule, value, limit), value,
                   f"{target}: mean sentiment {recent.mean:+.2f} over {minutes} min is {abs(value):.1f} standard errors "
                   f"{direction} the {rule.baseline_days}-day baseline ({base.mean:+.2f})")


def _window_start(rule: AlertRule, now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0) + timedelta(minutes=1) - timedelta(minutes=rule.window_minutes)


def _headline_ids(rule: AlertRule, now: datetime) -> list[int]:
    """The ids of the headlines in the rule's window ending at `now`, oldest first (the newest HEADLINES_KEPT)."""
    rows = rule_rows(rule).filter(published_at__gte=_window_start(rule, now), published_at__lte=now)
    return list(rows.order_by("-published_at", "-id").values_list("id", flat=True)[:HEADLINES_KEPT])[::-1]


def _alert_open(*, rule: AlertRule, verdict: Verdict, now: datetime) -> Alert | None:
    """A new pending alert of `rule`, or None when another process opened one first (one open alert per rule)."""
    try:
        with transaction.atomic():
            return Alert.objects.create(
                rule=rule, symbol=rule.ticker.symbol if rule.ticker_id else "", topic=rule.topic, group_key=rule.target,
                kind=rule.kind, state=Alert.PENDING, value=verdict.value, threshold=rule.threshold,
                message=verdict.message, window_end=now, window_start=_window_start(rule, now), started_at=now,
                evaluations=1, dedup_key=f"{rule.id}:{now.isoformat()}", headline_ids=_headline_ids(rule, now))
    except IntegrityError:
        return None


def alert_step(*, rule: AlertRule, now: datetime) -> tuple[Alert | None, str]:
    """One evaluation of `rule` at `now`: its open alert after it and what happened ("fired", "resolved", "").

    1. Judge the rule at its fire threshold (and, when an alert is firing, at its clear threshold).
    2. No open alert: open a pending one when the condition holds.
    3. Pending: count the evaluation when `now` is later than the last; fire at `for_evaluations`;
       drop it when the condition fails.
    4. Firing: resolve when the value is below the clear threshold or there is no verdict.
    """
    current = Alert.objects.filter(rule=rule, state__in=[Alert.PENDING, Alert.FIRING]).first()
    if current is not None and current.state == Alert.FIRING:
        verdict = rule_evaluate(rule=rule, now=now, limit=rule.clear_at)
        if verdict.fired:  # still at or above the clear threshold
            Alert.objects.filter(id=current.id).update(value=verdict.value, window_end=max(now, current.window_end))
            return current, ""
        changed = Alert.objects.filter(id=current.id, state=Alert.FIRING).update(
            state=Alert.RESOLVED, resolved_at=now, value=verdict.value, message=f"resolved: {verdict.message}")
        current.refresh_from_db()
        return current, "resolved" if changed else ""
    verdict = rule_evaluate(rule=rule, now=now)
    if current is None:
        if not verdict.fired:
            return None, ""
        current = _alert_open(rule=rule, verdict=verdict, now=now)
        if current is None:
            return None, ""
    elif not verdict.fired:
        Alert.objects.filter(id=current.id, state=Alert.PENDING).delete()
        return None, ""
    elif now > current.window_end:
        current.evaluations += 1
        Alert.objects.filter(id=current.id).update(evaluations=current.evaluations, window_end=now,
                                                   value=verdict.value, message=verdict.message)
    if current.evaluations < rule.for_evaluations:
        return current, ""
    changed = Alert.objects.filter(id=current.id, state=Alert.PENDING).update(
        state=Alert.FIRING, fired_at=now, window_end=now, window_start=_window_start(rule, now), value=verdict.value,
        message=verdict.message, headline_ids=_headline_ids(rule, now))
    current.refresh_from_db()
    return current, "fired" if changed else ""


def rule_now(rule: AlertRule) -> datetime | None:
    """The time of the newest headline the rule watches (its evaluation time when none is given)."""
    if rule.ticker_id and not rule.topic:
        return ScoredNews.objects.filter(ticker_links__symbol=rule.ticker.symbol).aggregate(t=Max("published_at"))["t"]
    return rule_rows(rule).order_by("-published_at").values_list("published_at", flat=True).first()


def alerts_check(*, symbols: Sequence[str], now: datetime | None = None,
                 deliver: Callable[[Alert], object] | None = None) -> list[Alert]:
    """Evaluate the enabled rules of `symbols` (and every topic-wide rule), then send what is due; the alerts that
    fired or resolved in this pass.

    `now` defaults to the newest headline each rule watches, so replayed history is judged in its own time.
    Notifications (grouped per ticker/topic, repeated, muted by silences) are stored with their deliveries, and
    `deliver` is called with each notification's first alert; the default delivers in this thread (the consumer
    enqueues Celery tasks instead). A rule whose evaluation fails is logged and its error kept on the rule
    (`last_error`); the other rules are still evaluated.
    """
    from services.sentiment.channels import alert_deliver
    from services.sentiment.notifications import notifications_flush

    deliver = deliver or (lambda alert: alert_deliver(alert=alert))
    changed: list[Alert] = []
    groups: dict[str, datetime] = {}
    rules = (AlertRule.objects.filter(Q(ticker__symbol__in=list(symbols)) | Q(ticker__isnull=True), enabled=True)
             .select_related("ticker"))
    for rule in rules:
        try:
            at = now or rule_now(rule)
            alert, event = alert_step(rule=rule, now=at) if at is not None else (None, "")
        except Exception as exc:  # noqa: BLE001 - one bad rule (a window past what dates hold) must not silence the rest
            log.exception("alert rule %s (%s) failed", rule.id, rule)
            AlertRule.objects.filter(id=rule.id).update(last_error=f"{type(exc).__name__}: {exc}"[:2000],
                                                        last_error_at=timezone.now())
            continue
        if rule.last_error:
            AlertRule.objects.filter(id=rule.id).update(last_error="", last_error_at=None)
        if at is not None:
            groups[rule.target] = max(groups.get(rule.target, at), at)
        if event:
            log.info("alert %s %s: %s", alert.id, event, alert.message)
            changed.append(alert)
    for group_key, at in groups.items():
        for notification in notifications_flush(group_key=group_key, now=at):
            deliver(notification.deliveries.first().alert)
    return changed


def rule_check(*, rule: AlertRule, now: datetime | None) -> Alert | None:
    """Evaluate one rule at `now` (default: its newest headline); its alert when it fired in this evaluation."""
    at = now or rule_now(rule)
    if at is None:
        return None
    alert, event = alert_step(rule=rule, now=at)
    return alert if event == "fired" else None


def alert_raise(*, rule: AlertRule, verdict: Verdict, now: datetime) -> Alert | None:
    """Store a firing alert of `rule` at once and its notification with one pending delivery per channel.

    For callers that judged the rule themselves (tests of the outbox, manual raises); None when the rule
    already has an open alert.
    """
    from services.sentiment.notifications import notification_create

    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                rule=rule, symbol=rule.ticker.symbol if rule.ticker_id else "", topic=rule.topic, group_key=rule.target,
                kind=rule.kind, state=Alert.FIRING, value=verdict.value, threshold=rule.threshold,
                message=verdict.message, window_end=now, window_start=_window_start(rule, now), started_at=now,
                fired_at=now, dedup_key=f"{rule.id}:{now.isoformat()}", headline_ids=_headline_ids(rule, now))
            notification_create(rule=rule, group_key=rule.target, alerts=[alert], now=now)
            return alert
    except IntegrityError:  # another consumer raised it first
        return None


def alert_acknowledge(*, alert_id: int, user: Any, comment: str = "") -> Alert:
    """Acknowledge an alert once, with a comment; a second acknowledgement is refused."""
    if not Alert.objects.filter(id=alert_id).exists():
        raise NotFound(f"Alert {alert_id} does not exist.", field="alert")
    changed = Alert.objects.filter(id=alert_id, acknowledged_at__isnull=True).update(
        acknowledged_at=timezone.now(), acknowledged_by=user, comment=comment.strip()[:2000])
    if changed != 1:
        raise SuiteError(f"Alert {alert_id} is already acknowledged.", field="alert")
    return Alert.objects.get(id=alert_id)


def alert_headlines(*, alert_id: int) -> list[dict[str, Any]]:
    """The headlines that made an alert (its window when it fired, or when it opened), oldest first."""
    from services.sentiment.live import news_row

    try:
        alert = Alert.objects.get(id=alert_id)
    except Alert.DoesNotExist:
        raise NotFound(f"Alert {alert_id} does not exist.", field="alert") from None
    rows = ScoredNews.objects.in_bulk(alert.headline_ids)
    return [news_row(rows[i]) for i in alert.headline_ids if i in rows]


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def alert_json(alert: Alert) -> dict[str, Any]:
    return {"id": alert.id, "rule": alert.rule_id, "symbol": alert.symbol, "topic": alert.topic, "kind": alert.kind,
            "state": alert.state, "value": round(alert.value, 4), "threshold": alert.threshold, "message": alert.message,
            "window_start": _iso(alert.window_start), "window_end": alert.window_end.isoformat(),
            "started_at": _iso(alert.started_at), "fired_at": _iso(alert.fired_at),
            "resolved_at": _iso(alert.resolved_at), "evaluations": alert.evaluations,
            "headline_ids": alert.headline_ids, "silenced_by": alert.silence_id,
            "created_at": alert.created_at.isoformat(), "acknowledged_at": _iso(alert.acknowledged_at),
            "acknowledged_by": alert.acknowledged_by.get_username() if alert.acknowledged_by else None,
            "comment": alert.comment}
