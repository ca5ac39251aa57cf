"""RSS/Atom poller: new entries of the registered feeds go to `news.raw`, each entry once.

    python manage.py news_poll --add https://example.com/rss --source example   # register a feed
    python manage.py news_poll [--once] [--interval 300]                         # poll every enabled feed

An entry is known by its id (guid), else its link. Entries are marked as sent only after the broker
acknowledged them, so a crash re-sends rather than loses (the consumer then skips the repeated ids).
"""
from __future__ import annotations

import calendar
import hashlib
import html
import logging
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.utils import timezone as dj_timezone

from apps.sentiment.models import Feed, FeedEntry
from services.errors import SuiteError
from services.outbound import outbound_check, outbound_fetch
from services.sentiment.bus import Topics, producer_make, topics_default

log = logging.getLogger("pipelines.news_feeds")
TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class PollResult:
    feed: str
    entries: int  # in the feed document
    sent: int  # new ones produced
    error: str = ""


def feed_add(*, url: str, source: str) -> Feed:
    outbound_check(url=url, field_name="url")  # http(s) to a public address (or an allow-listed one), checked again at each poll
    if not source.strip():
        raise SuiteError("A feed needs a source name.", field="source")
    feed, _ = Feed.objects.update_or_create(url=url, defaults={"source": source.strip(), "enabled": True})
    return feed


def entry_key(entry: Any) -> str | None:
    ident = entry.get("id") or entry.get("guid") or entry.get("link")
    return hashlib.sha256(ident.encode()).hexdigest() if ident else None


def entry_message(*, entry: Any, feed: Feed, key: str) -> dict[str, Any] | None:
    """A `news.raw` message from a feed entry (None when it has no title)."""
    title = html.unescape(TAG.sub("", entry.get("title", ""))).strip()
    if not title:
        return None
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    published = datetime.fromtimestamp(calendar.timegm(parsed), tz=timezone.utc) if parsed else dj_timezone.now()
    summary = html.unescape(TAG.sub(" ", entry.get("summary", ""))).strip()
    return {"id": f"{feed.source}:{key[:24]}", "source": feed.source, "published_at": published.isoformat(),
            "headline": title, "body": re.sub(r"\s+", " ", summary)[:5000], "url": entry.get("link", "")}


def feed_poll(*, feed: Feed, producer: Any, topics: Topics) -> PollResult:
    """Fetch one feed (conditional GET under the outbound policy), send its unseen entries, then remember them.

    1. GET through services.outbound (public addresses, timeouts, size and decompression limits, checked redirects);
       a refusal or a network failure is recorded on the feed as its error.
    2. 304: nothing new. 4xx/5xx: recorded. Else parse the body (feedparser) and send what was not sent before.
    """
    import feedparser

    feed.last_polled_at = dj_timezone.now()
    conditional = {k: v for k, v in (("If-None-Match", feed.etag), ("If-Modified-Since", feed.modified)) if v}
    try:
        response = outbound_fetch(method="GET", url=feed.url, headers={"User-Agent": "sector-ai-suite news poller",
                                                                       **conditional})
    except SuiteError as exc:  # OutboundRefused / OutboundUnreachable: the message says which and why
        return _poll_failed(feed, exc.message)
    if response.status == 304:
        feed.last_error = ""
        feed.save(update_fields=["last_polled_at", "last_error"])
        return PollResult(feed.url, 0, 0)
    if response.status >= 400:
        return _poll_failed(feed, f"HTTP {response.status}")
    document = feedparser.parse(response.body, response_headers=response.headers)
    if document.get("bozo") and not document.entries:
        return _poll_failed(feed, str(document.get("bozo_exception", "unreadable feed")))
    keyed = [(key, entry) for entry in document.entries if (key := entry_key(entry))]
    seen = set(FeedEntry.objects.filter(feed=feed, key__in=[k for k, _ in keyed]).values_list("key", flat=True))
    fresh: dict[str, dict[str, Any]] = {}
    for key, entry in keyed:
        if key in seen or key in fresh:
            continue
        message = entry_message(entry=entry, feed=feed, key=key)
        if message is not None:
            fresh[key] = message
    for message in fresh.values():
        producer.send(topics.raw, key=feed.source, value=message)
    producer.flush(timeout=30)  # acknowledged by the broker before they are marked as sent
    FeedEntry.objects.bulk_create([FeedEntry(feed=feed, key=k) for k in fresh], ignore_conflicts=True)
    feed.etag = response.headers.get("etag", "")[:500]
    feed.modified = response.headers.get("last-modified", "")[:100]
    feed.last_error = ""
    feed.save(update_fields=["last_polled_at", "last_error", "etag", "modified"])
    return PollResult(feed.url, len(document.entries), len(fresh))


def _poll_failed(feed: Feed, error: str) -> PollResult:
    feed.last_error = error[:2000]
    feed.save(update_fields=["last_polled_at", "last_error"])
    return PollResult(feed.url, 0, 0, feed.last_error)


def feeds_poll(*, topics: Topics | None = None, once: bool = True, interval_s: float = 300,
               stop: threading.Event | None = None) -> list[PollResult]:
    """Poll every enabled feed once (or every `interval_s` until `stop`); a failing feed never stops the others."""
    topics = topics or topics_default()
    stop = stop or threading.Event()
    producer = producer_make()
    results: list[PollResult] = []
    try:
        while True:
            for feed in Feed.objects.filter(enabled=True):
                try:
                    result = feed_poll(feed=feed, producer=producer, topics=topics)
                except SoftTimeLimitExceeded:  # the Celery task's time limit: the whole poll stops here
                    raise
                except Exception as exc:  # noqa: BLE001 - one broken feed must not stop the poller
                    log.exception("feed %s failed", feed.url)
                    result = PollResult(feed.url, 0, 0, str(exc)[:500])
                log.info("feed %s: %d entries, %d new%s", result.feed, result.entries, result.sent,
                         f", error: {result.error}" if result.error else "")
                results.append(result)
            if once or stop.wait(interval_s):
                return results
    finally:
        producer.close(timeout=10)
