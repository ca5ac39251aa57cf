"""The alert API beyond acknowledging: rule fields (for, clear threshold, group, topic), states, drill-down, silences."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from apps.sentiment.models import Silence
from services.sentiment.alerts import alerts_check
from tests.services.sentiment.helpers import headlines_store

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)


def test_analysts_set_the_new_rule_fields_and_follow_an_alert_to_its_headlines(client, role_users) -> None:  # noqa: ANN001
    client.force_login(role_users["risk_analyst"])
    client.post("/api/sentiment/tickers", {"symbol": "ACME"}, content_type="application/json")
    default = client.get("/api/sentiment/tickers").json()[0]["rules"][0]
    assert (default["for_evaluations"], default["clear_threshold"], default["group_minutes"], default["topic"]) == (3, 1.5, 5, "")
    client.put(f"/api/sentiment/tickers/ACME/rules/{default['id']}", {"kind": "zscore", "enabled": False},
               content_type="application/json")
    made = client.post("/api/sentiment/tickers/ACME/rules", {"kind": "negative_share", "threshold": 0.6,
                                                             "clear_threshold": 0.3, "for_evaluations": 1},
                       content_type="application/json")
    assert made.status_code == 201 and made.json()["clear_threshold"] == 0.3 and made.json()["ticker"] == "ACME"
    bad = client.post("/api/sentiment/tickers/ACME/rules", {"kind": "negative_share", "threshold": 0.6,
                                                            "clear_threshold": 0.9}, content_type="application/json")
    assert bad.status_code == 400 and bad.json()["field"] == "clear_threshold"
    topic = client.post("/api/sentiment/rules", {"kind": "volume", "topic": "earnings"}, content_type="application/json")
    assert topic.status_code == 201 and topic.json()["ticker"] is None and topic.json()["topic"] == "earnings"
    no_target = client.post("/api/sentiment/rules", {"kind": "volume"}, content_type="application/json")
    assert no_target.status_code == 400 and no_target.json()["field"] == "topic"
    assert {r["id"] for r in client.get("/api/sentiment/rules").json()} >= {made.json()["id"], topic.json()["id"]}

    ids = [r.id for r in headlines_store([(T0 - timedelta(minutes=m), -0.8) for m in range(4)]).stored]
    alerts_check(symbols=["ACME"], now=T0)
    [alert] = client.get("/api/sentiment/alerts?state=firing").json()
    assert alert["state"] == "firing" and alert["fired_at"] == T0.isoformat() and sorted(alert["headline_ids"]) == sorted(ids)
    assert client.get("/api/sentiment/alerts?state=resolved").json() == []
    assert client.get("/api/sentiment/alerts?state=asleep").json()["field"] == "state"
    headlines = client.get(f"/api/sentiment/alerts/{alert['id']}/headlines").json()
    assert sorted(h["id"] for h in headlines) == sorted(ids)
    assert client.get("/api/sentiment/alerts/999999/headlines").status_code == 404


def test_silences_are_created_listed_with_who_and_why_and_expired(client, role_users) -> None:  # noqa: ANN001
    client.force_login(role_users["risk_analyst"])
    made = client.post("/api/sentiment/silences", {"ticker": "acme", "minutes": 90, "reason": "earnings call"},
                       content_type="application/json")
    assert made.status_code == 201
    body = made.json()
    assert body["symbol"] == "ACME" and body["active"] and body["created_by"] == "analyst" and body["reason"] == "earnings call"
    for data, field in [({"minutes": 5, "reason": "x"}, "symbol"), ({"ticker": "ACME", "reason": "x"}, "ends_at"),
                        ({"ticker": "ACME", "minutes": 5}, "reason")]:
        refused = client.post("/api/sentiment/silences", data, content_type="application/json")
        assert refused.status_code == 400 and refused.json()["field"] == field, data
    assert [s["id"] for s in client.get("/api/sentiment/silences").json()] == [body["id"]]
    expired = client.delete(f"/api/sentiment/silences/{body['id']}")
    assert expired.status_code == 200 and expired.json()["expired"] and not expired.json()["active"]
    assert client.get("/api/sentiment/silences").json() == []
    assert [s["id"] for s in client.get("/api/sentiment/silences?all=1").json()] == [body["id"]]
    assert client.delete("/api/sentiment/silences/999999").status_code == 404
    client.force_login(role_users["support_agent"])
    assert client.get("/api/sentiment/silences").status_code == 403


def test_the_admin_lists_silences_and_records_who_made_one(client, role_users) -> None:  # noqa: ANN001
    client.force_login(role_users["admin"])
    added = client.post("/admin/sentiment/silence/add/", {
        "symbol": "ACME", "topic": "", "rule": "", "starts_at_0": "2026-03-02", "starts_at_1": "15:00:00",
        "ends_at_0": "2026-03-02", "ends_at_1": "17:00:00", "reason": "maintenance"})
    assert added.status_code == 302, added.content.decode()[:2000]
    silence = Silence.objects.get()
    assert silence.created_by == role_users["admin"] and silence.reason == "maintenance"
    listing = client.get("/admin/sentiment/silence/").content.decode()
    assert "maintenance" in listing and "ACME" in listing


def test_the_admin_form_gives_a_new_rule_the_defaults_and_refuses_a_clear_threshold_over_the_threshold() -> None:
    from apps.sentiment.admin import AlertRuleForm
    from services.sentiment.watchlist import ticker_save

    ticker = ticker_save(symbol="ACME")
    base = {"ticker": ticker.id, "topic": "", "kind": "volume", "threshold": 4.0, "window_minutes": 60,
            "baseline_days": 7, "min_count": 3, "for_evaluations": 3, "cooldown_minutes": 60, "group_minutes": 5,
            "channels": '["inapp"]', "email_to": "", "webhook_url": "", "enabled": True, "last_error": ""}
    assert AlertRuleForm().fields["for_evaluations"].initial == 3
    form = AlertRuleForm(data=base)
    assert form.is_valid(), form.errors
    assert form.save().clear_threshold == 3.0  # 0.75 × 4.0, as the API gives a new rule
    over = AlertRuleForm(data={**base, "clear_threshold": 5.0})
    assert not over.is_valid() and over.errors["clear_threshold"] == [  # the API's rule and words (rule_clear_check)
        "clear_threshold (5) must not exceed threshold (4): an alert resolves below the level that fires it."]
