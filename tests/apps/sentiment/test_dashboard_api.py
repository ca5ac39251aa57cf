"""The dashboard's read endpoints: a page of headlines, the topic breakdown, the watchlist's sparklines."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from services.sentiment.messages import NewsItem
from services.sentiment.store import news_store
from services.sentiment.watchlist import ticker_save
from tests.services.sentiment.helpers import scored

pytestmark = pytest.mark.django_db


def store(rows: list[tuple[str, str, float, int]]) -> None:
    """(id, headline, score, minutes ago) → scored headlines from 'wire'."""
    now = timezone.now()
    news_store(items=[NewsItem(id=i, source="wire", published_at=now - timedelta(minutes=ago), headline=h)
                      for i, h, _, ago in rows],
               scores=[scored(s) for _, _, s, _ in rows], model_version=2)


def test_headlines_come_a_page_at_a_time_newest_first_with_total_and_pages(client, role_users) -> None:  # noqa: ANN001
    store([(f"n{i}", f"$ACME item {i}", 0.5, i) for i in range(23)])
    client.force_login(role_users["risk_analyst"])
    first = client.get("/api/sentiment/headlines/page?page_size=10").json()
    assert (first["total"], first["pages"], first["page"], first["page_size"]) == (23, 3, 1, 10)
    assert [h["headline"] for h in first["items"]] == [f"$ACME item {i}" for i in range(10)]
    last = client.get("/api/sentiment/headlines/page?page_size=10&page=3").json()
    assert [h["headline"] for h in last["items"]] == ["$ACME item 20", "$ACME item 21", "$ACME item 22"]
    assert client.get("/api/sentiment/headlines/page").json()["page_size"] == 25

    past = client.get("/api/sentiment/headlines/page?page_size=10&page=4")
    assert past.status_code == 400 and past.json()["field"] == "page" and "last page (3)" in past.json()["detail"]
    for query, field in [("page_size=7", "page_size"), ("page=0", "page"), ("page=two", "page"), ("range=1y", "range")]:
        bad = client.get("/api/sentiment/headlines/page?" + query)
        assert bad.status_code == 400 and bad.json()["field"] == field, query
    empty = client.get("/api/sentiment/headlines/page?ticker=NONE").json()
    assert (empty["total"], empty["pages"], empty["items"]) == (0, 1, [])


def test_the_topic_breakdown_counts_each_topic_and_the_table_filters_by_topic(client, role_users) -> None:  # noqa: ANN001
    store([("e1", "$ACME quarterly earnings beat", 0.8, 1), ("e2", "$ACME earnings miss as the lawsuit widens", -0.6, 2),
           ("d1", "$BOLT merger agreed", 0.4, 3), ("x1", "$BOLT opens a plant", 0.0, 4),
           ("old", "$ACME earnings a week ago", 0.9, 60 * 24 * 8)])
    client.force_login(role_users["risk_analyst"])
    body = client.get("/api/sentiment/topics?range=24h").json()
    assert body["headlines"] == 4 and body["limited"] is False
    by = {t["topic"]: t for t in body["topics"]}
    assert [t["topic"] for t in body["topics"]] == ["earnings", "deals", "legal", "(none)"]  # most first; untagged last
    assert (by["earnings"]["count"], by["earnings"]["mean_score"], by["earnings"]["negative_share"]) == (2, 0.1, 0.5)
    assert (by["legal"]["count"], by["deals"]["count"], by["(none)"]["count"]) == (1, 1, 1)
    assert [t["topic"] for t in client.get("/api/sentiment/topics?range=24h&ticker=BOLT").json()["topics"]] == ["deals", "(none)"]
    assert client.get("/api/sentiment/topics?range=all").json()["headlines"] == 5

    page = client.get("/api/sentiment/headlines/page?range=24h&topic=earnings").json()
    assert page["total"] == 2 and {h["id"] for h in page["items"]} and all("earnings" in h["topics"] for h in page["items"])
    assert client.get("/api/sentiment/headlines/page?range=all&topic=earnings&ticker=ACME").json()["total"] == 3
    assert client.get("/api/sentiment/headlines/page?topic=earn").json()["total"] == 0  # a whole topic name only
    bad = client.get('/api/sentiment/headlines/page?topic=a"b')
    assert bad.status_code == 400 and bad.json()["field"] == "topic"


def test_sparklines_give_each_watchlist_ticker_its_buckets_and_totals_in_the_range(client, role_users) -> None:  # noqa: ANN001
    ticker_save(symbol="ACME", name="Acme Corp")
    ticker_save(symbol="QUIET")
    store([("a1", "$ACME up", 0.6, 5), ("a2", "$ACME down", -0.6, 65), ("a3", "$ACME down again", -0.6, 70),
           ("b1", "$BOLT not on the watchlist", 0.2, 5)])
    client.force_login(role_users["risk_analyst"])
    rows = client.get("/api/sentiment/sparklines?range=24h").json()
    assert [r["symbol"] for r in rows] == ["ACME", "QUIET"]
    acme, quiet = rows
    assert (acme["name"], acme["count"], acme["negative_share"]) == ("Acme Corp", 3, 0.6667)
    assert acme["mean_score"] == pytest.approx(-0.2, abs=1e-4)
    assert sum(p["count"] for p in acme["points"]) == 3 and len(acme["points"]) in (2, 3)  # hour buckets
    assert acme["points"] == sorted(acme["points"], key=lambda p: p["start"])
    assert (quiet["count"], quiet["mean_score"], quiet["points"]) == (0, None, [])
    assert sum(p["count"] for p in client.get("/api/sentiment/sparklines?range=1h").json()[0]["points"]) == 1  # minutes
    assert client.get("/api/sentiment/sparklines?range=2d").status_code == 400


def test_the_dashboard_endpoints_are_for_risk_analysts_only(client, role_users) -> None:  # noqa: ANN001
    for path in ("headlines/page", "topics", "sparklines"):
        assert client.get(f"/api/sentiment/{path}").status_code in (401, 403)
        client.force_login(role_users["support_agent"])
        assert client.get(f"/api/sentiment/{path}").status_code == 403
        client.logout()


def test_the_page_loads_the_chart_library_from_its_own_static_files(client, role_users) -> None:  # noqa: ANN001
    from django.contrib.staticfiles import finders

    client.force_login(role_users["risk_analyst"])
    page = client.get("/sentiment/").content.decode()
    assert "/static/vendor/uplot/uPlot.iife.min.js" in page and "/static/vendor/uplot/uPlot.min.css" in page
    assert "//cdn" not in page and "unpkg" not in page and "jsdelivr" not in page
    found = finders.find("vendor/uplot/uPlot.iife.min.js")  # copied by deploy/vendor.sh (deploy/test.sh runs it)
    assert found, "vendor/uplot/uPlot.iife.min.js is not in the static files: run deploy/vendor.sh"
    with open(found, encoding="utf-8") as f:
        assert "uPlot" in f.read(4000)
