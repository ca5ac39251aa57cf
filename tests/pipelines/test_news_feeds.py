"""The RSS/Atom poller against feeds served by a local HTTP server: new entries once, deduplicated by id/link."""
from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from apps.sentiment.models import Feed
from pipelines.news_feeds import feeds_poll
from tests.helpers import QuietHandler, http_serve
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
def feed_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server for the files in tmp_path: (base URL, folder)."""

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
