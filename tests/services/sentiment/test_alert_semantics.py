"""Alert semantics analysts expect: pending (`for`), firing, resolved with hysteresis, grouping, repeat, silences,
drill-down to the headlines, and rules on topics."""
from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest

from apps.sentiment.models import Alert, AlertRule, Delivery, Notification
from services.errors import SuiteError
from services.sentiment.alerts import alert_headlines, alerts_check
from services.sentiment.messages import NewsItem
from services.sentiment.notifications import silence_create, silence_expire
from services.sentiment.store import news_store
from services.sentiment.watchlist import rule_save, ticker_save
from tests.services.sentiment.helpers import headlines_store, scored

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)
_ids = itertools.count()


def share_rule(**fields: object) -> AlertRule:
    """ACME on the watchlist with only a negative-share rule (the default z-score rule disabled), firing at its first
    evaluation unless the test sets `for_evaluations` (a new rule's default is 3)."""
    if not AlertRule.objects.filter(ticker__symbol="ACME").exists():
        ticker_save(symbol="ACME")
        AlertRule.objects.filter(kind="zscore").update(enabled=False)
    return rule_save(symbol="ACME", kind="negative_share",
                     **{"threshold": 0.6, "for_evaluations": 1, "channels": ["inapp"], **fields})


def negatives(at: datetime, n: int = 4, symbol: str = "ACME") -> list[int]:
    return [r.id for r in headlines_store([(at - timedelta(seconds=10 * i), -0.8) for i in range(n)], symbol=symbol).stored]


def positives(at: datetime, n: int) -> None:
    headlines_store([(at - timedelta(seconds=10 * i), 0.8) for i in range(n)])


def test_an_alert_is_pending_until_its_condition_held_for_n_evaluations_then_fires() -> None:
    rule = share_rule(for_evaluations=3)
    negatives(T0)
    assert alerts_check(symbols=["ACME"], now=T0) == []
    alert = Alert.objects.get()
    assert alert.state == "pending" and alert.evaluations == 1 and alert.started_at == T0
    assert alerts_check(symbols=["ACME"], now=T0) == []  # the same event time again is not a second evaluation
    assert Alert.objects.get().evaluations == 1
    assert alerts_check(symbols=["ACME"], now=T0 + timedelta(minutes=1)) == []
    fired = alerts_check(symbols=["ACME"], now=T0 + timedelta(minutes=2))
    assert [a.id for a in fired] == [alert.id]
    alert.refresh_from_db()
    assert alert.state == "firing" and alert.fired_at == T0 + timedelta(minutes=2) and alert.rule_id == rule.id
    assert Notification.objects.count() == 1 and Delivery.objects.get().status == Delivery.SENT


def test_a_pending_alert_whose_condition_fails_is_dropped_without_a_notice() -> None:
    share_rule(for_evaluations=2)
    negatives(T0)
    alerts_check(symbols=["ACME"], now=T0)
    assert Alert.objects.get().state == "pending"
    positives(T0 + timedelta(minutes=1), 4)  # 4 of 8 negative: below 0.6
    assert alerts_check(symbols=["ACME"], now=T0 + timedelta(minutes=1)) == []
    assert not Alert.objects.exists() and not Notification.objects.exists()


def test_hysteresis_keeps_an_alert_firing_between_the_thresholds_and_its_resolve_is_notified(mailoutbox) -> None:  # noqa: ANN001
    share_rule(clear_threshold=0.3, channels=["inapp", "email"], email_to="risk@example.com")
    negatives(T0)
    [alert] = alerts_check(symbols=["ACME"], now=T0)
    assert alert.state == "firing"
    positives(T0 + timedelta(minutes=10), 4)  # 4 of 8 negative (0.5): under the fire threshold, over the clear one
    assert alerts_check(symbols=["ACME"], now=T0 + timedelta(minutes=10)) == []
    assert Alert.objects.get().state == "firing"
    positives(T0 + timedelta(minutes=20), 6)  # 4 of 14 (0.29): under the clear threshold
    [resolved] = alerts_check(symbols=["ACME"], now=T0 + timedelta(minutes=20))
    assert resolved.id == alert.id and resolved.state == "resolved" and resolved.resolved_at == T0 + timedelta(minutes=20)
    notices = list(Notification.objects.order_by("at"))
    assert len(notices) == 2 and "1 resolved" in notices[1].message
    assert {d.channel: d.status for d in Delivery.objects.filter(notification=notices[1])} == {"inapp": "sent", "email": "sent"}
    assert len(mailoutbox) == 2 and "resolved" in mailoutbox[1].subject and "ACME" in mailoutbox[1].subject
    # A new episode opens afresh once the condition holds again.
    negatives(T0 + timedelta(minutes=30), 20)
    [again] = alerts_check(symbols=["ACME"], now=T0 + timedelta(minutes=30))
    assert again.id != alert.id and again.state == "firing"


def test_with_an_empty_clear_threshold_an_alert_resolves_below_the_fire_threshold() -> None:
    rule = share_rule(clear_threshold=None)  # given as empty: no hysteresis (rules stored before the defaults too)
    assert rule.clear_threshold is None and rule.clear_at == 0.6
    negatives(T0)
    alerts_check(symbols=["ACME"], now=T0)
    positives(T0 + timedelta(minutes=10), 4)  # 4 of 8 negative (0.5): over the default clear threshold 0.45
    assert [a.state for a in alerts_check(symbols=["ACME"], now=T0 + timedelta(minutes=10))] == ["resolved"]


def test_a_new_rule_waits_three_evaluations_and_clears_at_three_quarters_of_its_threshold_by_default() -> None:
    ticker_save(symbol="ACME")
    default = AlertRule.objects.get(ticker__symbol="ACME")  # the rule a new watchlist entry gets
    assert (default.kind, default.threshold, default.for_evaluations, default.clear_threshold) == ("zscore", 2.0, 3, 1.5)
    default.enabled = False
    default.save()
    rule = rule_save(symbol="ACME", kind="negative_share", threshold=0.6, channels=["inapp"])
    assert (rule.for_evaluations, rule.clear_threshold) == (3, pytest.approx(0.45))
    negatives(T0)
    for minute in (0, 1):
        assert alerts_check(symbols=["ACME"], now=T0 + timedelta(minutes=minute)) == []
        assert Alert.objects.get().state == "pending"
    assert [a.state for a in alerts_check(symbols=["ACME"], now=T0 + timedelta(minutes=2))] == ["firing"]
    positives(T0 + timedelta(minutes=10), 4)  # 4 of 8 negative (0.5): under 0.6, at or over the clear 0.45
    assert alerts_check(symbols=["ACME"], now=T0 + timedelta(minutes=10)) == []
    assert Alert.objects.get().state == "firing"
    positives(T0 + timedelta(minutes=20), 2)  # 4 of 10 (0.4): under the clear threshold
    assert [a.state for a in alerts_check(symbols=["ACME"], now=T0 + timedelta(minutes=20))] == ["resolved"]


def test_a_default_clear_threshold_follows_a_changed_threshold_and_a_chosen_one_is_kept() -> None:
    derived = share_rule()
    assert derived.clear_threshold == pytest.approx(0.45)
    moved = rule_save(symbol="ACME", kind="negative_share", rule_id=derived.id, threshold=0.4)
    assert moved.clear_threshold == pytest.approx(0.3)  # the old threshold's default: re-derived, not refused
    chosen = share_rule(clear_threshold=0.5)
    kept = rule_save(symbol="ACME", kind="negative_share", rule_id=chosen.id, threshold=0.8)
    assert kept.clear_threshold == 0.5
    assert rule_save(symbol="ACME", kind="negative_share", rule_id=chosen.id, threshold=0.8,
                     clear_threshold=None).clear_threshold is None


def test_a_clear_threshold_above_the_fire_threshold_is_refused_by_name() -> None:
    with pytest.raises(SuiteError) as caught:
        share_rule(clear_threshold=0.8)
    assert caught.value.field == "clear_threshold"
    rule = share_rule(clear_threshold=0.4)
    with pytest.raises(SuiteError) as caught:  # lowering the threshold under the stored clear threshold
        rule_save(symbol="ACME", kind="negative_share", rule_id=rule.id, threshold=0.3)
    assert caught.value.field == "clear_threshold"
    for field, value in [("for_evaluations", 0), ("group_minutes", -1), ("topic", "x" * 101)]:
        with pytest.raises(SuiteError) as caught:
            share_rule(**{field: value})
        assert caught.value.field == field
    with pytest.raises(SuiteError, match="ticker, a topic"):
        rule_save(symbol=None, kind="volume")


def test_alerts_of_one_ticker_within_the_group_window_go_out_as_one_notice() -> None:
    low, mid = share_rule(threshold=0.5), share_rule(threshold=0.6)
    high = share_rule(threshold=0.9, group_minutes=5)
    negatives(T0)
    positives(T0, 1)  # 4 of 5 negative (0.8): the 0.5 and 0.6 rules fire, the 0.9 rule does not
    assert {a.rule_id for a in alerts_check(symbols=["ACME"], now=T0)} == {low.id, mid.id}
    [first] = Notification.objects.all()
    assert {a.rule_id for a in first.alerts.all()} == {low.id, mid.id} and first.group_key == "ACME"
    assert "2 firing" in first.message and Delivery.objects.filter(notification=first).count() == 1  # in-app only

    negatives(T0 + timedelta(minutes=2), 20)  # 24 of 25: the 0.9 rule fires within the group's window …
    assert [a.rule_id for a in alerts_check(symbols=["ACME"], now=T0 + timedelta(minutes=2))] == [high.id]
    assert Notification.objects.count() == 1  # … and waits for it
    assert alerts_check(symbols=["ACME"], now=T0 + timedelta(minutes=6)) == []
    second = Notification.objects.order_by("-at").first()
    assert Notification.objects.count() == 2 and [a.rule_id for a in second.alerts.all()] == [high.id]


def test_a_firing_alert_is_notified_again_after_its_repeat_interval() -> None:
    share_rule(cooldown_minutes=30)
    negatives(T0)
    alerts_check(symbols=["ACME"], now=T0)
    negatives(T0 + timedelta(minutes=10))
    alerts_check(symbols=["ACME"], now=T0 + timedelta(minutes=10))
    assert Notification.objects.count() == 1
    negatives(T0 + timedelta(minutes=31))
    alerts_check(symbols=["ACME"], now=T0 + timedelta(minutes=31))
    assert Notification.objects.count() == 2 and Alert.objects.count() == 1


def test_a_silenced_alert_changes_state_but_sends_nothing_until_the_silence_expires(role_users) -> None:  # noqa: ANN001
    share_rule()
    analyst = role_users["risk_analyst"]
    silence = silence_create(user=analyst, reason="  earnings call, known ", symbol="$acme",
                             starts_at=T0 - timedelta(hours=1), ends_at=T0 + timedelta(minutes=20))
    assert silence.symbol == "ACME" and silence.reason == "earnings call, known" and silence.created_by == analyst
    negatives(T0)
    [alert] = alerts_check(symbols=["ACME"], now=T0)
    alert.refresh_from_db()
    assert alert.state == "firing" and alert.silence_id == silence.id
    assert not Notification.objects.exists() and not Delivery.objects.exists()
    negatives(T0 + timedelta(minutes=25))  # the silence has expired and the alert still fires: notified now
    alerts_check(symbols=["ACME"], now=T0 + timedelta(minutes=25))
    assert [list(n.alerts.values_list("id", flat=True)) for n in Notification.objects.all()] == [[alert.id]]
    alert.refresh_from_db()
    assert alert.silence_id is None and alert.last_notified_at == T0 + timedelta(minutes=25)


def test_a_silence_matches_only_what_it_names_and_can_be_expired_early(role_users) -> None:  # noqa: ANN001
    rule = share_rule(clear_threshold=0.3)
    other = silence_create(user=None, reason="other ticker", symbol="OTHER", starts_at=T0 - timedelta(hours=1),
                           ends_at=T0 + timedelta(hours=1))
    by_rule = silence_create(user=role_users["risk_analyst"], reason="tuning this rule", rule_id=rule.id,
                             starts_at=T0 - timedelta(hours=1), ends_at=T0 + timedelta(hours=1))
    negatives(T0)
    alerts_check(symbols=["ACME"], now=T0)
    assert Alert.objects.get().silence_id == by_rule.id and not Notification.objects.exists()
    positives(T0 + timedelta(minutes=10), 20)  # resolves while muted: its end is muted too
    assert [a.state for a in alerts_check(symbols=["ACME"], now=T0 + timedelta(minutes=10))] == ["resolved"]
    assert not Notification.objects.exists() and other.alerts.count() == 0
    expired = silence_expire(silence_id=by_rule.id, now=T0 + timedelta(minutes=11))
    assert expired.ends_at == T0 + timedelta(minutes=11)
    for fields, field in [({"reason": "x"}, "symbol"), ({"reason": " ", "symbol": "ACME"}, "reason"),
                          ({"reason": "x", "symbol": "ACME", "ends_at": T0 - timedelta(days=1)}, "ends_at"),
                          ({"reason": "x", "symbol": "ACME", "ends_at": T0 + timedelta(days=365)}, "ends_at"),
                          ({"reason": "x", "rule_id": 10**9}, "rule")]:
        with pytest.raises(SuiteError) as caught:
            silence_create(user=None, **{"starts_at": T0, "ends_at": T0 + timedelta(hours=1), **fields})
        assert caught.value.field == field


def test_an_alert_links_to_the_headlines_of_its_window() -> None:
    share_rule()
    negatives(T0 - timedelta(hours=2), 3)  # before the window
    negatives(T0, 2, symbol="OTHER")  # another ticker
    ids = negatives(T0)
    [alert] = alerts_check(symbols=["ACME"], now=T0)
    assert sorted(alert.headline_ids) == sorted(ids)
    rows = alert_headlines(alert_id=alert.id)
    assert sorted(r["id"] for r in rows) == sorted(ids) and all(r["label"] == "negative" for r in rows)
    with pytest.raises(SuiteError, match="does not exist"):
        alert_headlines(alert_id=10**9)


def topic_news(at: datetime, headline: str, score: float, n: int) -> list[int]:
    items = [NewsItem(id=f"topic{next(_ids)}", source="wire", published_at=at - timedelta(seconds=10 * i),
                      headline=headline, tickers=[]) for i in range(n)]
    return [r.id for r in news_store(items=items, scores=[scored(score)] * n, model_version=1).stored]


def test_rules_target_a_topic_or_a_ticker_within_a_topic() -> None:
    ticker_save(symbol="ACME")
    AlertRule.objects.filter(kind="zscore").update(enabled=False)
    topic_rule = rule_save(symbol=None, kind="negative_share", topic="earnings", threshold=0.6, for_evaluations=1)
    within = rule_save(symbol="ACME", kind="negative_share", topic="earnings", threshold=0.6, for_evaluations=1)
    earnings = topic_news(T0, "$BETA quarterly earnings miss", -0.8, 3) + topic_news(T0, "$GAMMA profit warning", -0.8, 2)
    topic_news(T0, "$ACME quarterly earnings beat", 0.8, 3)  # ACME within earnings: 0 of 3 negative
    topic_news(T0, "$ACME recalls cars", -0.8, 5)  # ACME, not earnings
    fired = alerts_check(symbols=["ACME"], now=T0)
    assert [a.rule_id for a in fired] == [topic_rule.id]  # earnings overall: 5 of 8 negative
    assert fired[0].group_key == "#earnings" and fired[0].topic == "earnings" and fired[0].symbol == ""
    assert set(earnings) <= set(fired[0].headline_ids) and len(fired[0].headline_ids) == 8
    assert Notification.objects.get().group_key == "#earnings"
    topic_news(T0 + timedelta(minutes=1), "$ACME earnings guidance cut", -0.8, 6)  # ACME within earnings: 6 of 9
    fired = alerts_check(symbols=["ACME"], now=T0 + timedelta(minutes=1))
    assert [a.rule_id for a in fired] == [within.id] and fired[0].group_key == "ACME#earnings"
