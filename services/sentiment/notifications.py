"""What alerts notify: grouped per ticker/topic, repeated while firing, resolved, muted by silences (Alertmanager's ideas).

After each evaluation pass, `notifications_flush` looks at one group (a rule's target: "ACME", "#earnings",
"ACME#earnings") at the pass's event time:

1. Due alerts: newly firing; resolved after a firing notice was sent; firing and not notified for the rule's repeat
   interval (`cooldown_minutes`).
2. When the group had a notice within its window (`group_minutes`), wait: a later pass sends the due alerts
   together. The first alert of a quiet group goes at once (no group wait), so grouping never delays detection.
3. Alerts matched by an active silence change state but send nothing (their `notified_state` records that the
   state was dealt with; a silenced firing alert is notified at its next repeat once the silence has expired).
4. The rest go out as one notice per set of channels, stored with one pending delivery per channel in one
   transaction (the outbox, services/sentiment/channels.py).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.sentiment.models import Alert, AlertRule, Notification, Silence
from services.errors import NotFound, SuiteError

SILENCE_MAX = timedelta(days=90)  # a mute longer than a quarter is a disabled rule: say so instead


def silence_for(*, alert: Alert, now: datetime) -> Silence | None:
    """The active silence (starts_at ≤ now < ends_at) whose every field set matches `alert`, if any."""
    silences = Silence.objects.filter(starts_at__lte=now, ends_at__gt=now).filter(
        Q(symbol="") | Q(symbol=alert.symbol), Q(topic="") | Q(topic=alert.topic), Q(rule__isnull=True) | Q(rule=alert.rule_id))
    return silences.order_by("-ends_at").first()


def _due(alerts: Sequence[Alert], *, now: datetime) -> list[Alert]:
    """Firing and never notified, muted (checked again), or past its repeat interval; resolved and not yet said so."""
    due = []
    for alert in alerts:
        repeat = timedelta(minutes=alert.rule.cooldown_minutes)
        if alert.state == Alert.FIRING:
            if (alert.notified_state != Alert.FIRING or alert.last_notified_at is None
                    or now - alert.last_notified_at >= repeat):
                due.append(alert)
        elif alert.notified_state in (Alert.FIRING, ""):  # resolved (one that fired and resolved unsaid: both at once)
            due.append(alert)
    return due


def _message(group_key: str, alerts: Sequence[Alert]) -> str:
    firing = [a for a in alerts if a.state == Alert.FIRING]
    resolved = [a for a in alerts if a.state == Alert.RESOLVED]
    head = f"{group_key}: " + ", ".join(filter(None, [f"{len(firing)} firing" if firing else "",
                                                      f"{len(resolved)} resolved" if resolved else ""]))
    return "\n".join([head, *(f"[{a.state}] {a.kind}: {a.message}" for a in alerts)])


def notification_create(*, rule: AlertRule, group_key: str, alerts: Sequence[Alert], now: datetime) -> Notification:
    """One notice about `alerts` on `rule`'s channels, with its deliveries; call it inside a transaction."""
    from services.sentiment.channels import deliveries_create

    notification = Notification.objects.create(group_key=group_key, rule=rule, message=_message(group_key, alerts), at=now)
    notification.alerts.set(alerts)
    Alert.objects.filter(id__in=[a.id for a in alerts]).update(last_notified_at=now, silence=None)
    for alert in alerts:
        Alert.objects.filter(id=alert.id).update(notified_state=alert.state)
    deliveries_create(alert=alerts[0], notification=notification)
    return notification


def notifications_flush(*, group_key: str, now: datetime) -> list[Notification]:
    """Send what is due in one group at `now` (see the module's steps); the notices made, with their deliveries."""
    open_or_unsaid = Q(state=Alert.FIRING) | Q(state=Alert.RESOLVED, notified_state=Alert.FIRING) | Q(
        state=Alert.RESOLVED, notified_state="", fired_at__isnull=False)  # alerts from before these states had no fired_at
    alerts = list(Alert.objects.filter(open_or_unsaid, group_key=group_key).select_related("rule").order_by("id"))
    due = _due(alerts, now=now)
    if not due:
        return []
    window = timedelta(minutes=max(a.rule.group_minutes for a in due))
    last = Notification.objects.filter(group_key=group_key).order_by("-at").values_list("at", flat=True).first()
    if last is not None and window and now < last + window:
        return []  # the group spoke lately: its due alerts wait for the window to pass and go together
    by_channels: dict[tuple, list[Alert]] = defaultdict(list)
    made = []
    with transaction.atomic():
        for alert in due:
            # Claim it: another consumer flushing the same group at the same time finds it changed and skips it.
            claimed = Alert.objects.filter(id=alert.id, state=alert.state, notified_state=alert.notified_state,
                                           last_notified_at=alert.last_notified_at)
            silence = silence_for(alert=alert, now=now)
            if silence is not None:
                claimed.update(notified_state=alert.state, silence=silence)
                continue
            if alert.state == Alert.RESOLVED and alert.notified_state == Alert.FIRING and alert.last_notified_at is None:
                # its firing was muted: so is its end
                claimed.update(notified_state=alert.state)
                continue
            if claimed.update(notified_state="-") != 1:  # a placeholder that notification_create replaces
                continue
            rule = alert.rule
            by_channels[(tuple(sorted(set(rule.channels))), rule.email_to, rule.webhook_url)].append(alert)
        for group in by_channels.values():
            made.append(notification_create(rule=group[0].rule, group_key=group_key, alerts=group, now=now))
    return made


def notification_json(notification: Notification) -> dict[str, Any]:
    from services.sentiment.alerts import alert_json

    return {"id": notification.id, "group": notification.group_key, "message": notification.message,
            "at": notification.at.isoformat(), "alerts": [alert_json(a) for a in notification.alerts.order_by("id")]}


def silence_create(*, user: Any, reason: str, ends_at: datetime, starts_at: datetime | None = None, symbol: str = "",
                   topic: str = "", rule_id: int | None = None) -> Silence:
    """Mute the alerts of a ticker, a topic or a rule (every field given must match) from `starts_at` to `ends_at`."""
    symbol, topic, reason = symbol.strip().lstrip("$").upper(), topic.strip(), reason.strip()
    starts_at = starts_at or timezone.now()
    if not (symbol or topic or rule_id):
        raise SuiteError("a silence needs a ticker, a topic or a rule to match.", field="symbol")
    if not reason:
        raise SuiteError("say why the alerts are silenced (reason).", field="reason")
    if len(symbol) > 20 or len(topic) > 100:
        raise SuiteError("ticker is at most 20 characters and topic at most 100.", field="symbol" if len(symbol) > 20 else "topic")
    if not ends_at > starts_at:
        raise SuiteError("ends_at must be after starts_at.", field="ends_at")
    if ends_at - starts_at > SILENCE_MAX:
        raise SuiteError(f"a silence lasts at most {SILENCE_MAX.days} days; disable the rule instead.", field="ends_at")
    rule = None
    if rule_id is not None:
        rule = AlertRule.objects.filter(id=rule_id).first()
        if rule is None:
            raise NotFound(f"Rule {rule_id} does not exist.", field="rule")
    return Silence.objects.create(symbol=symbol, topic=topic, rule=rule, starts_at=starts_at, ends_at=ends_at,
                                  reason=reason[:2000], created_by=user)


def silence_expire(*, silence_id: int, now: datetime | None = None) -> Silence:
    """End a silence now (it stays listed as expired)."""
    now = now or timezone.now()
    silence = Silence.objects.filter(id=silence_id).first()
    if silence is None:
        raise NotFound(f"Silence {silence_id} does not exist.", field="silence")
    if silence.ends_at > now:
        Silence.objects.filter(id=silence_id).update(ends_at=max(now, silence.starts_at))
        silence.refresh_from_db()
    return silence


def silences_list(*, active_only: bool = True, now: datetime | None = None, limit: int = 100) -> list[Silence]:
    now = now or timezone.now()
    silences = Silence.objects.select_related("created_by", "rule")
    if active_only:
        silences = silences.filter(ends_at__gt=now)
    return list(silences[:limit])


def silence_json(silence: Silence, *, now: datetime | None = None) -> dict[str, Any]:
    now = now or timezone.now()
    return {"id": silence.id, "symbol": silence.symbol, "topic": silence.topic, "rule": silence.rule_id,
            "starts_at": silence.starts_at.isoformat(), "ends_at": silence.ends_at.isoformat(),
            "active": silence.starts_at <= now < silence.ends_at, "expired": silence.ends_at <= now,
            "reason": silence.reason, "created_by": silence.created_by.get_username() if silence.created_by else None,
            "created_at": silence.created_at.isoformat()}
