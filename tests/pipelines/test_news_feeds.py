"""The RSS/Atom poller against feeds served by a local HTTP server: new entries once, deduplicated by id/link."""
from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from apps.sentiment.models import Feed
from pipelines.news_feeds import feed_add, feeds_poll
from services.errors import SuiteError
from tests.helpers import QuietHandler, http_serve, silent_server
from tests.pipelines.conftest import topic_read

pytestmark = pytest.mark.django_db(transaction=True)

RSS_ITEM = """<item><title>{title}</title><link>https://news.example.com/{slug}</link><guid>{guid}</guid>
<description>&lt;p&gt;Shares of &lt;b&gt;$ACME&lt;/b&gt; moved.&lt;/p&gt;</description>
<pubDate>Mon, 05 Jan 2026 10:{minute:02d}:00 GMT</pubDate></item>"""


def rss(items: list[tuple[str, str, str]]) -> str:
    body = "".join(RSS_ITEM.format(title=t, slug=s, guid=g, minute=i) for i, (t, s, g) in enumerate(items))
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>Example wire</title>{body}</channel></rss>'


ATOM = """<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Blog</title>
<entry><title>Acme cuts guidance</title><link href="https://blog.example.com/a"/><updated>2026-01-05T11:00:00Z</updated></entry>
<entry><title>Acme cuts guidance (repost)</title><link href="https://blog.example.com/a"/><updated>2026-01-05T11:05:00Z</updated></entry>
</feed>"""


@pytest.fixture
def feed_server(tmp_path: Path, settings) -> Iterator[tuple[str, Path]]:  # noqa: ANN001
    """A local HTTP server for the files in tmp_path: (base URL, folder), allow-listed (127.0.0.1 is refused by default)."""
    settings.SUITE_OUTBOUND_ALLOW = ["127.0.0.1"]

    class Files(QuietHandler, SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
            super().__init__(*args, directory=str(tmp_path), **kwargs)

    with http_serve(Files) as base:
        yield base, tmp_path


def test_feed_entries_are_sent_once_and_only_new_ones_later(feed_server, news_topics) -> None:  # noqa: ANN001
    base, folder = feed_server
    (folder / "wire.xml").write_text(rss([("Acme beats estimates", "a1", "g-1"), ("Acme &amp; Co plunges", "a2", "g-2")]))
    (folder / "blog.atom").write_text(ATOM)
    out = StringIO()
    call_command("news_poll", add=f"{base}/wire.xml", source="wire", stdout=out)
    assert json.loads(out.getvalue()) == {"feed": f"{base}/wire.xml", "source": "wire"}
    call_command("news_poll", add=f"{base}/blog.atom", source="blog", stdout=StringIO())

    first = {r.feed.rsplit("/", 1)[-1]: r for r in feeds_poll(topics=news_topics)}
    assert (first["wire.xml"].entries, first["wire.xml"].sent) == (2, 2)
    assert (first["blog.atom"].entries, first["blog.atom"].sent) == (2, 1)  # two entries, one link: one message
    assert all(r.sent == 0 for r in feeds_poll(topics=news_topics))

    (folder / "wire.xml").write_text(rss([("Acme names a new CFO", "a3", "g-3"), ("Acme beats estimates", "a1", "g-1"),
                                          ("Acme &amp; Co plunges", "a2", "g-2")]))
    # Last-Modified has whole seconds: a file rewritten within the second of the last poll would answer 304.
    os.utime(folder / "wire.xml", (time.time() + 5, time.time() + 5))
    assert {r.feed.rsplit("/", 1)[-1]: r.sent for r in feeds_poll(topics=news_topics)} == {"wire.xml": 1, "blog.atom": 0}

    messages = topic_read(news_topics.raw, count=4)
    assert len(messages) == 4 and len({m["id"] for m in messages}) == 4
    by_title = {m["headline"]: m for m in messages}
    assert set(by_title) == {"Acme beats estimates", "Acme & Co plunges", "Acme cuts guidance", "Acme names a new CFO"}
    beat = by_title["Acme beats estimates"]
    assert beat["source"] == "wire" and beat["url"] == "https://news.example.com/a1"
    assert beat["published_at"] == "2026-01-05T10:00:00+00:00" and beat["body"] == "Shares of $ACME moved."
    assert by_title["Acme cuts guidance"]["source"] == "blog"


def test_a_broken_feed_is_recorded_and_does_not_stop_the_others(feed_server, news_topics) -> None:  # noqa: ANN001
    base, folder = feed_server
    (folder / "ok.xml").write_text(rss([("Acme rally", "r1", "r-1")]))
    Feed.objects.create(url=f"{base}/missing.xml", source="gone")
    Feed.objects.create(url=f"{base}/ok.xml", source="ok")
    results = {r.feed.rsplit("/", 1)[-1]: r for r in feeds_poll(topics=news_topics)}
    assert results["ok.xml"].sent == 1
    assert results["missing.xml"].sent == 0 and results["missing.xml"].error
    assert Feed.objects.get(source="gone").last_error


def test_the_beat_task_polls_the_enabled_feeds_and_does_nothing_without_any(feed_server, settings, news_topics) -> None:  # noqa: ANN001
    from apps.sentiment.tasks import feeds_poll_task

    assert "sentiment.feeds_poll" in {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert feeds_poll_task.apply().get() == 0
    base, folder = feed_server
    (folder / "wire.xml").write_text(rss([("Acme rally", "r1", "r-1"), ("Acme slump", "r2", "r-2")]))
    Feed.objects.create(url=f"{base}/wire.xml", source="wire")
    settings.NEWS_TOPIC_PREFIX = news_topics.raw.removesuffix(".raw")
    assert feeds_poll_task.apply().get() == 2
    assert feeds_poll_task.apply().get() == 0


def test_feeds_at_internal_addresses_are_refused_when_added_and_when_polled(news_topics, tmp_path) -> None:  # noqa: ANN001
    for url in ("http://127.0.0.1:8000/rss", "http://169.254.169.254/latest/meta-data/", "file:///etc/passwd"):
        with pytest.raises(SuiteError) as caught:
            feed_add(url=url, source="inside")
        assert caught.value.field == "url"
    Feed.objects.create(url="http://127.0.0.1:9/rss", source="inside")  # stored before the check, or by hand
    [result] = feeds_poll(topics=news_topics)
    assert result.sent == 0 and "private or reserved" in result.error
    assert "private or reserved" in Feed.objects.get(source="inside").last_error


def test_a_feed_server_that_never_answers_ends_the_poll_with_a_timeout(feed_server, settings, news_topics) -> None:  # noqa: ANN001
    base, folder = feed_server
    (folder / "ok.xml").write_text(rss([("Acme rally", "r1", "r-1")]))
    settings.SUITE_OUTBOUND_READ_TIMEOUT_S = 0.3
    with silent_server() as silent:
        Feed.objects.create(url=f"{silent}/rss", source="silent")
        Feed.objects.create(url=f"{base}/ok.xml", source="ok")
        results = {r.feed: r for r in feeds_poll(topics=news_topics)}
    assert "timed out: it sent nothing for 0.3 s" in results[f"{silent}/rss"].error
    assert results[f"{base}/ok.xml"].sent == 1  # the next feed is polled all the same
    assert "timed out" in Feed.objects.get(source="silent").last_error


def test_huge_and_gzip_bomb_feeds_are_refused(feed_server, settings, news_topics) -> None:  # noqa: ANN001
    import gzip

    class Bomb(QuietHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = gzip.compress(b"<rss>" + b" " * 50_000_000 + b"</rss>", compresslevel=9)
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    base, folder = feed_server
    (folder / "huge.xml").write_text(rss([(f"Acme item {i}", f"h{i}", f"h-{i}") for i in range(2000)]))
    settings.SUITE_OUTBOUND_MAX_BYTES = 100_000
    with http_serve(Bomb) as bomb:
        Feed.objects.create(url=f"{bomb}/rss", source="bomb")
        Feed.objects.create(url=f"{base}/huge.xml", source="huge")
        results = {r.feed: r for r in feeds_poll(topics=news_topics)}
    assert "decompressed body is larger than 100000" in results[f"{bomb}/rss"].error
    assert "larger than 100000" in results[f"{base}/huge.xml"].error
    assert all(r.sent == 0 for r in results.values())


def test_a_feed_poll_past_its_celery_time_limit_is_stopped(settings, monkeypatch, news_topics) -> None:  # noqa: ANN001
    from celery.exceptions import SoftTimeLimitExceeded

    from apps.sentiment.tasks import feeds_poll_task

    # Every task has limits (config/celery.py); the poll's default queue gives it SUITE_TASK_LIMIT_DEFAULT_S.
    assert feeds_poll_task.soft_time_limit == settings.SUITE_TASK_TIME_LIMITS_S["default"]
    assert feeds_poll_task.time_limit == feeds_poll_task.soft_time_limit + settings.SUITE_TASK_TIME_LIMIT_GRACE_S
    settings.SUITE_OUTBOUND_ALLOW = ["127.0.0.1"]
    settings.SUITE_OUTBOUND_READ_TIMEOUT_S = 0.5  # each silent feed costs half a second; five cost more than the limit
    settings.NEWS_TOPIC_PREFIX = news_topics.raw.removesuffix(".raw")
    monkeypatch.setattr(feeds_poll_task, "soft_time_limit", 1)
    with silent_server() as silent:
        for i in range(5):
            Feed.objects.create(url=f"{silent}/rss{i}", source=f"silent{i}")
        result = feeds_poll_task.apply()
    assert result.failed() and isinstance(result.result, SoftTimeLimitExceeded)
    assert Feed.objects.filter(last_polled_at__isnull=True).exists()  # stopped before the last feeds
