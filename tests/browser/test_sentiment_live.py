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
    rule_save(symbol="ACME", kind="volume", threshold=3.0, min_count=3)
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
