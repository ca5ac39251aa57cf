"""Rolling aggregates and alert rules: values per bucket, z-score/negative-share/volume rules, cooldown, acknowledge."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from apps.sentiment.models import OVERALL, Alert, AlertRule, Bucket, Delivery
from services.errors import SuiteError
from services.sentiment.aggregates import series_get, window_and_baseline
from services.sentiment.alerts import alert_acknowledge, alerts_check
from services.sentiment.watchlist import relabel_create, relabels_export, rule_save, ticker_save
from tests.services.sentiment.helpers import headlines_store

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 15, 30, tzinfo=timezone.utc)


def quiet_baseline(days: int = 3) -> None:
    """Mildly positive news every 2 hours for `days` days before the last hour (scores 0.2 … 0.4)."""
    points = [(NOW - timedelta(hours=2 + 2 * i), 0.2 + 0.1 * (i % 3)) for i in range(days * 12)]
    headlines_store(points)


def test_buckets_hold_count_mean_score_and_negative_share_per_ticker_and_overall() -> None:
    at = datetime(2026, 3, 2, 9, 15, 30, tzinfo=timezone.utc)
    headlines_store([(at, 0.8), (at + timedelta(seconds=10), -0.6), (at + timedelta(minutes=1), 0.1)])
    headlines_store([(at, -0.9)], symbol="OTHER")

    minute = Bucket.objects.get(scope="ACME", granularity=Bucket.MINUTE, start=at.replace(second=0))
    assert minute.count == 2 and minute.mean_score == pytest.approx(0.1) and minute.negative_share == pytest.approx(0.5)
    hour = Bucket.objects.get(scope="ACME", granularity=Bucket.HOUR)
    assert hour.start == datetime(2026, 3, 2, 9, tzinfo=timezone.utc) and hour.count == 3
    assert hour.mean_score == pytest.approx(0.1)
    overall = Bucket.objects.get(scope=OVERALL, granularity=Bucket.DAY)
    assert overall.start == datetime(2026, 3, 2, tzinfo=timezone.utc) and overall.count == 4
    assert overall.negative_share == pytest.approx(0.5)
    points = series_get(scope="ACME", granularity=Bucket.MINUTE)
    assert [p["count"] for p in points] == [2, 1] and points[0]["mean_score"] == pytest.approx(0.1)
    with pytest.raises(SuiteError, match="granularity"):
        series_get(scope="ACME", granularity="week")


def test_the_batched_bucket_upsert_adds_exactly_what_one_update_per_bucket_adds(monkeypatch) -> None:  # noqa: ANN001
    """SQLite and PostgreSQL add a batch to its buckets with INSERT … ON CONFLICT; other databases one bucket at a time."""
    from django.db import connection

    from apps.sentiment.models import ScoredNews
    from services.sentiment import store

    at = datetime(2026, 3, 2, 9, 15, 30, tzinfo=timezone.utc)
    monkeypatch.setattr(store, "UPSERT_ROWS", 4)  # several statements per batch
    headlines_store([(at, 0.8), (at + timedelta(minutes=1), -0.6), (at + timedelta(hours=1), 0.1)])
    headlines_store([(at, -0.9), (at + timedelta(days=1), 0.3)], symbol="OTHER")
    headlines_store([(at + timedelta(seconds=5), -0.5)])  # into existing buckets: they are added to, not replaced

    def snapshot() -> dict[tuple, tuple]:
        return {(b.scope, b.granularity, b.start): (b.count, round(b.score_sum, 9), round(b.score_sq_sum, 9), b.negative_count)
                for b in Bucket.objects.all()}

    upserted = snapshot()
    assert upserted[(OVERALL, Bucket.DAY, datetime(2026, 3, 2, tzinfo=timezone.utc))] == (
        5, round(0.8 - 0.6 + 0.1 - 0.9 - 0.5, 9), round(0.64 + 0.36 + 0.01 + 0.81 + 0.25, 9), 3)
    assert upserted[("ACME", Bucket.MINUTE, at.replace(second=0))][0] == 2
    Bucket.objects.all().delete()
    monkeypatch.setattr(connection, "vendor", "other")  # the get_or_create + update path, row by row
    for row in ScoredNews.objects.order_by("id"):
        store.buckets_add([row])
    assert snapshot() == upserted


def test_the_window_and_its_baseline_do_not_overlap() -> None:
    quiet_baseline(days=1)
    headlines_store([(NOW - timedelta(minutes=10), -0.9)])
    recent, base = window_and_baseline(scope="ACME", now=NOW, window=timedelta(hours=1), baseline=timedelta(days=7))
    assert recent.count == 1 and recent.mean == pytest.approx(-0.9)
    assert base.count == 12 and base.mean == pytest.approx(0.3)


def test_a_sentiment_drop_raises_one_zscore_alert_per_cooldown_and_it_is_acknowledged_once(role_users, mailoutbox) -> None:  # noqa: ANN001
    ticker = ticker_save(symbol="$acme", name="Acme Corp", aliases=["Acme"])
    rule = AlertRule.objects.get(ticker=ticker)  # the default rule of a new entry
    assert (rule.kind, rule.threshold, rule.window_minutes, rule.baseline_days) == ("zscore", 2.0, 60, 7)
    assert (rule.for_evaluations, rule.clear_threshold) == (3, 1.5)
    rule_save(symbol="ACME", kind="zscore", rule_id=rule.id, for_evaluations=1, channels=["inapp", "email"],
              email_to="risk@example.com")  # fire at the first evaluation (the pending path: test_alert_semantics)
    quiet_baseline()
    assert alerts_check(symbols=["ACME"], now=NOW) == []  # nothing in the window yet

    headlines_store([(NOW - timedelta(minutes=m), -0.8) for m in (5, 15, 25, 35)])
    raised = alerts_check(symbols=["ACME"], now=NOW)
    assert len(raised) == 1
    alert = raised[0]
    assert alert.kind == "zscore" and alert.value < -2 and "below" in alert.message
    assert {d.channel: d.status for d in Delivery.objects.filter(alert=alert)} == {"inapp": "sent", "email": "sent"}
    assert len(mailoutbox) == 1 and mailoutbox[0].to == ["risk@example.com"] and "ACME" in mailoutbox[0].subject

    headlines_store([(NOW + timedelta(minutes=5), -0.9)])
    assert alerts_check(symbols=["ACME"], now=NOW + timedelta(minutes=5)) == []  # within the 60 min cooldown
    assert Alert.objects.count() == 1

    acked = alert_acknowledge(alert_id=alert.id, user=role_users["risk_analyst"], comment="  known: profit warning ")
    assert acked.acknowledged_by == role_users["risk_analyst"] and acked.comment == "known: profit warning"
    with pytest.raises(SuiteError, match="already acknowledged"):
        alert_acknowledge(alert_id=alert.id, user=role_users["admin"], comment="again")


def test_negative_share_and_volume_rules_fire_on_their_own_measures() -> None:
    ticker_save(symbol="ACME")
    AlertRule.objects.filter(kind="zscore").update(enabled=False)
    share = rule_save(symbol="ACME", kind="negative_share", threshold=0.6, for_evaluations=1)
    volume = rule_save(symbol="ACME", kind="volume", threshold=5.0, for_evaluations=1)
    assert volume.threshold == 5.0 and rule_save(symbol="ACME", kind="volume").threshold == 3.0  # the kind's default
    AlertRule.objects.filter(kind="volume", threshold=3.0).delete()
    quiet_baseline(days=7)  # 84 headlines in 7 days: 0.5 per hour expected
    headlines_store([(NOW - timedelta(minutes=m), -0.5 if m % 2 else 0.5) for m in range(6)])  # 3 of 6 negative

    raised = alerts_check(symbols=["ACME"], now=NOW)
    assert [a.rule_id for a in raised] == [volume.id]
    assert raised[0].value == pytest.approx(6.0)  # 0.5 expected per hour, floored at one headline per window
    headlines_store([(NOW - timedelta(minutes=m, seconds=30), -0.7) for m in range(4)])  # now 7 of 10 negative
    raised = alerts_check(symbols=["ACME"], now=NOW)
    assert [a.rule_id for a in raised] == [share.id] and raised[0].value == pytest.approx(0.7)


def test_rules_refuse_bad_values_naming_the_field() -> None:
    ticker_save(symbol="ACME")
    for fields, field in [({"kind": "moon"}, "kind"), ({"kind": "volume", "channels": ["sms"]}, "channels"),
                          ({"kind": "volume", "window_minutes": 0}, "window_minutes"),
                          ({"kind": "volume", "threshold": -1}, "threshold")]:
        with pytest.raises(SuiteError) as caught:
            rule_save(symbol="ACME", **fields)
        assert caught.value.field == field
    with pytest.raises(SuiteError, match="ticker symbol"):
        ticker_save(symbol="not a symbol")


def test_relabels_are_kept_with_source_and_time_and_export_as_training_csv(tmp_path) -> None:  # noqa: ANN001
    row = headlines_store([(NOW, 0.9)]).stored[0]
    first = relabel_create(news_id=row.id, label="neutral", source="analyst:ann")
    relabel_create(news_id=row.id, label="negative", source="analyst:bob")
    assert first.previous_label == "positive" and first.text == row.headline and first.created_at is not None
    with pytest.raises(SuiteError, match="label"):
        relabel_create(news_id=row.id, label="great", source="analyst:ann")
    out = tmp_path / "relabels.csv"
    assert relabels_export(path=out) == 1
    from io import StringIO

    from django.core.management import call_command

    printed = StringIO()
    call_command("relabels_export", out=str(out), stdout=printed)
    assert '"rows": 1' in printed.getvalue()
    lines = out.read_text().splitlines()
    assert lines[0] == "text,label,source,created_at" and lines[1].startswith("$ACME news,negative,analyst:bob,")


@pytest.mark.parametrize(("field", "value"), [("window_minutes", 10**12), ("baseline_days", 10**9),
                                              ("cooldown_minutes", 10**15), ("min_count", 10**20),
                                              ("window_minutes", True), ("threshold", float("inf")),
                                              ("threshold", float("nan")), ("threshold", 1e300)])
def test_rules_refuse_numbers_out_of_range_naming_the_field(field: str, value: object) -> None:
    ticker_save(symbol="ACME")
    with pytest.raises(SuiteError) as caught:
        rule_save(symbol="ACME", kind="volume", **{field: value})
    assert caught.value.field == field


def test_a_rule_that_fails_to_evaluate_is_recorded_and_the_later_rules_still_run(caplog) -> None:  # noqa: ANN001
    ticker_save(symbol="ACME")
    AlertRule.objects.filter(kind="zscore").update(enabled=False)
    broken = rule_save(symbol="ACME", kind="negative_share", threshold=0.1)  # evaluated before the volume rule
    # As stored before the limits existed: 3,800 years reach before year 1 (OverflowError); still a 32-bit integer,
    # which is all PostgreSQL's column holds.
    AlertRule.objects.filter(id=broken.id).update(window_minutes=2_000_000_000)
    volume = rule_save(symbol="ACME", kind="volume", threshold=2.0, for_evaluations=1)
    quiet_baseline(days=7)
    headlines_store([(NOW - timedelta(minutes=m), -0.5) for m in range(6)])

    raised = alerts_check(symbols=["ACME"], now=NOW)
    assert [a.rule_id for a in raised] == [volume.id]
    broken.refresh_from_db()
    assert broken.last_error.startswith("OverflowError") and broken.last_error_at is not None
    assert any("alert rule" in r.message and r.levelname == "ERROR" for r in caplog.records)
    AlertRule.objects.filter(id=broken.id).update(window_minutes=60)  # fixed: the error is cleared at the next check
    alerts_check(symbols=["ACME"], now=NOW)
    broken.refresh_from_db()
    assert broken.last_error == "" and broken.last_error_at is None
