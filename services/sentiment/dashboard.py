"""What the dashboard reads beyond the single series: headline pages, the topic breakdown, the sparklines."""
from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime
from typing import Any

from django.db.models import QuerySet, Sum

from apps.sentiment.models import OVERALL, Bucket, ScoredNews, Ticker
from services.errors import SuiteError
from services.sentiment.aggregates import topics_sums
from services.sentiment.live import news_row
from services.sentiment.store import UNTAGGED
from services.sentiment.topics import topic_source

PAGE_SIZES = (10, 25, 50, 100)
TOPIC_ROWS_MAX = 20_000  # the topic breakdown reads at most this many of the newest headlines in the range
SPARK_POINTS_MAX = 200  # points per sparkline (the newest buckets)


def _headlines_filtered(*, ticker: str | None, source: str | None, topic: str | None,
                        since: datetime | None) -> QuerySet[ScoredNews]:
    rows = ScoredNews.objects.all()
    if ticker and ticker != OVERALL:
        rows = rows.filter(ticker_links__symbol=ticker.upper())
    if source:
        rows = rows.filter(source=source)
    if topic:
        # topics is a JSON list of names; the quoted name matches one element on SQLite and PostgreSQL alike
        # (JSON `contains` is not available on SQLite).
        if len(topic) > 100 or '"' in topic or "\\" in topic:
            raise SuiteError(f"topic must be a topic name of up to 100 characters without quotes or backslashes "
                             f"(got {topic[:120]!r}).", field="topic")
        rows = rows.filter(topics__icontains=f'"{topic}"')
    if since is not None:
        rows = rows.filter(published_at__gte=since)
    return rows


def headlines_page(*, ticker: str | None = None, source: str | None = None, topic: str | None = None,
                   since: datetime | None = None, page: int = 1, page_size: int = 25) -> dict[str, Any]:
    """One page of the filtered headlines, newest first, with the total and the number of pages.

    A page past the last one is refused by name rather than answered empty, so a stale pager says what happened.
    """
    if page_size not in PAGE_SIZES:
        raise SuiteError(f"page_size must be one of {', '.join(map(str, PAGE_SIZES))} (got {page_size}).", field="page_size")
    if page < 1:
        raise SuiteError(f"page must be 1 or more (got {page}).", field="page")
    rows = _headlines_filtered(ticker=ticker, source=source, topic=topic, since=since)
    total = rows.count()
    pages = max(1, math.ceil(total / page_size))
    if page > pages:
        raise SuiteError(f"page {page} is past the last page ({pages}) of {total} headline(s).", field="page")
    start = (page - 1) * page_size
    items = [news_row(row) for row in rows.order_by("-published_at", "-id")[start:start + page_size]]
    return {"items": items, "total": total, "page": page, "pages": pages, "page_size": page_size}


def topics_breakdown(*, ticker: str | None = None, source: str | None = None, since: datetime | None = None,
                     granularity: str = Bucket.HOUR) -> dict[str, Any]:
    """Per topic: count, mean score and negative share in the range, most frequent first, and what tags topics now.

    Read from the topic buckets ("#<topic>", or "<ticker>#<topic>" with a ticker) of `granularity` starting at or
    after `since`, like the series. A headline with several topics counts in each; one with none under "(none)".
    Buckets have no source: with a `source` filter the newest TOPIC_ROWS_MAX headlines of the range are read
    instead, and `limited` says when it stopped there.
    """
    if granularity not in dict(Bucket.GRANULARITIES):
        raise SuiteError(f"granularity must be one of minute, hour, day (got {granularity!r}).", field="granularity")
    symbol = ticker.upper() if ticker and ticker != OVERALL else None
    if source:
        out, n = _topics_from_rows(rows=_headlines_filtered(ticker=ticker, source=source, topic=None, since=since))
        limited = n == TOPIC_ROWS_MAX
    else:
        per = topics_sums(symbol=symbol, granularity=granularity, since=since)
        out = [{"topic": topic, "count": st.count, "mean_score": round(st.mean, 4),
                "negative_share": round(st.negative_share, 4)} for topic, st in per.items()]
        totals = Bucket.objects.filter(scope=symbol or OVERALL, granularity=granularity)
        if since is not None:
            totals = totals.filter(start__gte=since)
        n, limited = int(totals.aggregate(n=Sum("count"))["n"] or 0), False
    out.sort(key=lambda t: (t["topic"] == UNTAGGED, -t["count"], t["topic"]))
    return {"topics": out, "headlines": n, "limited": limited, "tagger": topic_source()}


def _topics_from_rows(*, rows: QuerySet[ScoredNews]) -> tuple[list[dict[str, Any]], int]:
    """The breakdown from the newest TOPIC_ROWS_MAX rows (for filters the buckets do not have) and rows read."""
    acc: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0])  # count, score sum, negatives
    n = 0
    for topics, score, label in rows.order_by("-published_at", "-id").values_list("topics", "score", "label")[:TOPIC_ROWS_MAX]:
        n += 1
        for topic in topics or [UNTAGGED]:
            a = acc[topic]
            a[0] += 1
            a[1] += score
            a[2] += label == "negative"
    return [{"topic": topic, "count": int(c), "mean_score": round(s / c, 4), "negative_share": round(neg / c, 4)}
            for topic, (c, s, neg) in acc.items()], n


def sparklines_get(*, granularity: str, since: datetime | None = None) -> list[dict[str, Any]]:
    """For each watchlist ticker: its buckets in the range (the newest SPARK_POINTS_MAX) and their totals."""
    if granularity not in dict(Bucket.GRANULARITIES):
        raise SuiteError(f"granularity must be one of minute, hour, day (got {granularity!r}).", field="granularity")
    tickers = list(Ticker.objects.all())
    buckets = Bucket.objects.filter(scope__in=[t.symbol for t in tickers], granularity=granularity)
    if since is not None:
        buckets = buckets.filter(start__gte=since)
    per: dict[str, list[Bucket]] = defaultdict(list)
    for b in buckets.order_by("scope", "start"):
        per[b.scope].append(b)
    out = []
    for t in tickers:
        points = per.get(t.symbol, [])[-SPARK_POINTS_MAX:]
        count = sum(b.count for b in points)
        out.append({
            "symbol": t.symbol, "name": t.name, "count": count,
            "mean_score": round(sum(b.score_sum for b in points) / count, 4) if count else None,
            "negative_share": round(sum(b.negative_count for b in points) / count, 4) if count else None,
            "points": [{"start": b.start.isoformat(), "count": b.count, "mean_score": round(b.mean_score, 4),
                        "negative_share": round(b.negative_share, 4)} for b in points]})
    return out
