from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest

from tests.apps.sentiment.conftest import app_topics  # noqa: F401 - fixture
from tests.browser.conftest import SCREENSHOTS, login
from tests.pipelines.conftest import messages_produce, news_message, words_classify

pytestmark = pytest.mark.browser


def consume_all(topics, n: int) -> int:  # noqa: ANN001
    from django.db import connection

    from pipelines.news_consumer import after_store_default, news_consume

    try:
        return news_consume(group="g-browser", topics=topics, batch_size=3, max_messages=n, idle_exit_seconds=30,
                            classify=words_classify, after_store=after_store_default).stored
    finally:
        connection.close()


def test_replayed_news_updates_the_dashboard_chart_and_table_live_and_an_alert_appears(
        asgi_server: str, browser_page, role_users, app_topics, celery_worker_process) -> None:  # noqa: ANN001, F811
    # The in-app alert reaches the page through its outbox delivery, a Celery task: the real worker sends it.
    from services.sentiment.watchlist import rule_save, ticker_save

    ticker_save(symbol="ACME", name="Acme Corp")
    rule_save(symbol="ACME", kind="volume", threshold=3.0, min_count=3, for_evaluations=1)
    page = browser_page
    login(page, asgi_server, "analyst", "pw-analyst")
    page.goto(asgi_server + "/sentiment/")
    page.wait_for_selector("#live[data-state=live]")
    page.wait_for_selector("#chart[data-total='0']")
    assert page.locator("#headlines tbody tr").count() == 0

    now = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    messages_produce(app_topics.raw, [news_message(i, published_at=now) for i in range(6)])
    with ThreadPoolExecutor(1) as pool:  # outside Playwright's event-loop thread
        assert pool.submit(consume_all, app_topics, 6).result(timeout=120) == 6

    page.wait_for_function("document.querySelectorAll('#headlines tbody tr').length === 6")
    page.wait_for_selector("#chart[data-total='6']")
    page.wait_for_selector("#alerts li:has-text('ACME')")
    labels = page.locator("#headlines tbody td.label").all_inner_texts()
    assert sorted(set(labels)) == ["negative", "neutral", "positive"]
    assert "v7" in page.inner_text("#headlines tbody")
    assert "volume" in page.inner_text("#alerts")
    page.screenshot(path=str(SCREENSHOTS / "sentiment.png"), full_page=True)


def test_the_dashboard_shows_the_lag_the_consumer_published_and_follows_it_to_zero(
        asgi_server: str, browser_page, role_users, app_topics) -> None:  # noqa: ANN001, F811
    import threading
    import uuid
    from urllib.parse import urlencode

    from django.db import connection

    from pipelines.news_consumer import news_consume

    group = f"g-browser-lag-{uuid.uuid4().hex[:6]}"
    messages_produce(app_topics.raw, [news_message(i) for i in range(5)], partitions=3)  # partitions 0,1,2,0,1
    release, stop = threading.Event(), threading.Event()

    def held_classify(texts: list[str]):  # noqa: ANN202 - the consumer holds its first batch: nothing is committed
        release.wait(90)
        return words_classify(texts)

    def consume() -> int:
        try:
            return news_consume(group=group, topics=app_topics, batch_size=10, classify=held_classify, after_store=None,
                                stop=stop, lag_every_s=0.5).stored
        finally:
            connection.close()

    page = browser_page
    login(page, asgi_server, "analyst", "pw-analyst")
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(consume)
        try:
            page.goto(asgi_server + "/sentiment/?" + urlencode({"group": group, "topic": app_topics.raw}))
            page.wait_for_selector("#live[data-state=live]")
            page.wait_for_selector("#lag[data-total='5']", timeout=60000)  # polled every 5 s from what was published
            assert page.inner_text("#lag") == "5 message(s)"
            title = page.get_attribute("#lag", "title")
            assert "partition 0: 2" in title and "partition 1: 2" in title and "partition 2: 1" in title
            page.screenshot(path=str(SCREENSHOTS / "sentiment-lag.png"), full_page=True)
            release.set()
            page.wait_for_selector("#lag[data-total='0']", timeout=60000)
        finally:
            release.set()
            stop.set()
        assert future.result(timeout=60) == 5


def dashboard_data_store(now: datetime) -> None:
    """60 headlines over the last 24 h: ACME (earnings, mostly good) each hour, BOLT (deals, mostly bad) now and
    then; alerts: one resolved (ACME, 12 h → 10 h ago), one firing (BOLT, pending 8 h ago, firing from 7 h ago),
    one pending (ACME, 3 h ago), each with four headlines for the drill-down."""
    from datetime import timedelta

    from apps.sentiment.models import Alert, AlertRule
    from services.sentiment.messages import NewsItem
    from services.sentiment.store import news_store
    from services.sentiment.watchlist import rule_save, ticker_save
    from tests.services.sentiment.helpers import scored

    ticker_save(symbol="ACME", name="Acme Corp")
    ticker_save(symbol="BOLT", name="Bolt Motors")
    items, scores = [], []
    for i in range(60):
        at = now - timedelta(minutes=23 * i + 5)
        if i % 3 == 2:
            items.append(NewsItem(id=f"d{i}", source="blog", published_at=at,
                                  headline=f"$BOLT merger talks stall as the takeover deal faces questions, item {i}"))
            scores.append(scored(-0.6 if i % 2 else 0.1))
        else:
            items.append(NewsItem(id=f"d{i}", source="wire", published_at=at,
                                  headline=f"$ACME quarterly earnings beat the forecast again, item {i}"))
            scores.append(scored(0.7 if i % 4 else -0.4))
    stored = news_store(items=items, scores=scores, model_version=3).stored
    rule = rule_save(symbol="ACME", kind=AlertRule.VOLUME, threshold=3.0)
    bolt = rule_save(symbol="BOLT", kind=AlertRule.NEGATIVE_SHARE, threshold=0.5)
    ago = lambda hours: now - timedelta(hours=hours)  # noqa: E731
    for key, r, state, started, fired, resolved in [("resolved", rule, Alert.RESOLVED, 12, 12, 10),
                                                    ("firing", bolt, Alert.FIRING, 8, 7, None),
                                                    ("pending", rule, Alert.PENDING, 3, None, None)]:
        Alert.objects.create(rule=r, symbol=r.ticker.symbol, kind=r.kind, state=state, value=4.2, threshold=3.0,
                             message=f"{key}: 4.2 against 3", dedup_key=f"browser-dash-{key}", window_end=ago(started),
                             started_at=ago(started), fired_at=fired and ago(fired),
                             resolved_at=resolved and ago(resolved),
                             headline_ids=[row.id for row in stored if r.ticker.symbol in row.tickers][:4])


def test_the_dashboard_charts_with_axes_hover_values_sparklines_topics_alert_marks_and_pages(
        asgi_server: str, browser_page, role_users) -> None:  # noqa: ANN001
    from concurrent.futures import ThreadPoolExecutor

    from apps.sentiment.models import ScoredNews
    from services.sentiment.live import news_push

    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    dashboard_data_store(now)
    page = browser_page
    login(page, asgi_server, "analyst", "pw-analyst")
    page.goto(asgi_server + "/sentiment/")
    page.wait_for_selector("#live[data-state=live]")
    page.wait_for_selector("#chart[data-total='60']")

    # The chart: uPlot's canvas, a time axis with hour labels, a score axis, the alert's mark.
    assert page.locator("#chart canvas").count() >= 1
    x_ticks = page.get_attribute("#chart", "data-x-ticks").split("|")
    y_ticks = page.get_attribute("#chart", "data-y-ticks").split("|")
    assert len(x_ticks) >= 3 and all(":" in t for t in x_ticks), x_ticks
    assert "0" in y_ticks and any(t.startswith("−") for t in y_ticks) and any(t.startswith("+") for t in y_ticks), y_ticks
    page.wait_for_selector("#chart[data-alerts='3']")  # every alert in the range is marked
    assert page.locator("#alerts li[data-state]").evaluate_all("ls => ls.map(l => l.dataset.state)") == [
        "pending", "firing", "resolved"]
    page.click("#alerts li[data-state=firing] .drill-open")  # the alert's headlines
    page.wait_for_selector("#alerts li[data-state=firing] ul.drill:not([hidden]) li")
    drill = page.locator("#alerts li[data-state=firing] ul.drill li").all_inner_texts()
    assert len(drill) == 4 and all("$BOLT merger talks" in h for h in drill), drill

    # Hovering the plot shows that bucket's values, in the tooltip and in the legend.
    assert page.is_hidden("#chart-tip")
    box = page.locator("#chart .u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    page.wait_for_selector("#chart-tip:not([hidden])")
    tip = page.inner_text("#chart-tip")
    assert "headline(s)" in tip and ("mean score" in tip or "no score" in tip), tip
    legend = page.locator("#chart .u-legend .u-series").all_inner_texts()
    assert any("headlines" in s and any(c.isdigit() for c in s) for s in legend), legend
    page.locator(".chart-card").screenshot(path=str(SCREENSHOTS / "sentiment-chart-hover.png"))

    # The watchlist: one sparkline (a canvas) per ticker, with its totals.
    page.wait_for_selector("#watch tbody tr[data-symbol=BOLT] .spark canvas")
    assert page.locator("#watch tbody tr[data-symbol=ACME] .spark canvas").count() == 1
    assert int(page.get_attribute("#watch tr[data-symbol=ACME] .spark", "data-points")) > 10
    assert page.inner_text("#watch tr[data-symbol=ACME] td:nth-child(3)") == "40"
    assert page.inner_text("#watch tr[data-symbol=BOLT] td:nth-child(3)") == "20"

    # The topic breakdown, as the headlines were tagged; picking a topic filters the headlines.
    page.wait_for_selector("#topics tbody tr[data-topic=earnings]")
    assert page.inner_text("#topics tr[data-topic=earnings] .bar-n") == "40"
    assert page.inner_text("#topics tr[data-topic=deals] .bar-n") == "20"
    assert page.inner_text("#topics-tagger") == "topics: keyword lists (no topic model registered)"

    # A headline's topic is relabelled like its sentiment: stored as a `topic` training example.
    from apps.sentiment.models import Relabel

    first_row = page.locator("#headlines tbody tr").first
    first_row.locator("select[aria-label='correct topic']").select_option("M&A | Investments")
    first_row.locator("button.relabel-topic-button").click()
    page.wait_for_function("document.querySelector('#headlines tbody tr .relabel-topic-button').textContent === 'Saved ✓'")
    topic_relabel = Relabel.objects.get(task="topic")
    assert topic_relabel.label == "M&A | Investments" and topic_relabel.news_id == int(first_row.get_attribute("data-id"))

    # The table pages: 25 rows a page, the newest first; older pages, then back.
    assert page.locator("#headlines tbody tr").count() == 25
    assert page.get_attribute("#pg-info", "data-pages") == "3"
    first_page_ids = page.locator("#headlines tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)")
    page.click("#pg-next")
    page.wait_for_selector("#pg-info[data-page='2']")
    second_page_ids = page.locator("#headlines tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)")
    assert len(second_page_ids) == 25 and not set(first_page_ids) & set(second_page_ids)
    page.screenshot(path=str(SCREENSHOTS / "sentiment-dashboard.png"), full_page=True)

    # A live headline while on page 2: the page stays, a banner offers the newest; on page 1 it is the first row.
    from services.sentiment.messages import NewsItem
    from services.sentiment.store import news_store
    from tests.services.sentiment.helpers import scored

    fresh = news_store(items=[NewsItem(id="live-1", source="wire", published_at=now,
                                       headline="$ACME raises its dividend and announces a buyback")],
                       scores=[scored(0.8)], model_version=3).stored
    with ThreadPoolExecutor(1) as pool:  # the channel layer's async_to_sync, outside Playwright's event loop
        pool.submit(news_push, rows=fresh).result(timeout=30)
    page.wait_for_selector("#hl-new:not([hidden])")
    assert page.get_attribute("#pg-info", "data-page") == "2"
    page.click("#hl-new-button")
    page.wait_for_selector("#pg-info[data-page='1']")
    page.wait_for_function("document.querySelector('#headlines tbody tr').dataset.id === '%d'" % fresh[0].id)
    page.wait_for_selector("#chart[data-total='61']")

    page.select_option("#pg-size", "100")
    page.wait_for_function("document.querySelectorAll('#headlines tbody tr').length === 61")
    assert page.get_attribute("#pg-info", "data-pages") == "1" and page.is_disabled("#pg-next")

    page.click("#topics tr[data-topic=deals] button")
    page.wait_for_function("document.querySelectorAll('#headlines tbody tr').length === 20")
    chips = page.locator("#headlines tbody tr").evaluate_all(
        "rows => rows.map(r => [...r.querySelectorAll('.chip.topic')].map(c => c.textContent))")
    assert all("deals" in c for c in chips)
    assert ScoredNews.objects.count() == 61
