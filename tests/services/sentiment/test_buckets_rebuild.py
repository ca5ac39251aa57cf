"""Rebuilding the topic buckets from stored headlines (headlines stored before topic aggregates existed)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from io import StringIO

import pytest
from django.core.management import call_command

from apps.sentiment.models import Bucket
from services.sentiment.messages import NewsItem
from services.sentiment.store import buckets_rebuild, news_store
from tests.services.sentiment.helpers import scored

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=timezone.utc)


def buckets(*, topics: bool) -> dict[tuple[str, str, datetime], tuple[int, float, float, int]]:
    rows = Bucket.objects.filter(scope__contains="#") if topics else Bucket.objects.exclude(scope__contains="#")
    return {(b.scope, b.granularity, b.start): (b.count, round(b.score_sum, 9), round(b.score_sq_sum, 9), b.negative_count)
            for b in rows}


def stored_stream() -> None:
    """Eleven headlines over two days, tickers and topics mixed, one without a topic ('(none)')."""
    points = [("$ACME quarterly earnings beat", -0.6, ["Earnings"]), ("$ACME $BOLT merger talks", 0.4, ["M&A | Investments"]),
              ("$BOLT dividend cut", -0.8, ["Dividend"]), ("markets wait", 0.0, None)]
    items, scores, topics = [], [], []
    for i in range(11):
        headline, score, tags = points[i % len(points)]
        items.append(NewsItem(id=f"r{i}", source="wire", published_at=T0 + timedelta(hours=5 * i, minutes=i),
                              headline=f"{headline} {i}", tickers=[]))
        scores.append(scored(score))
        topics.append(tags)
    news_store(items=items, scores=scores, model_version=1, topics=topics, topic_versions=[1 if t else None for t in topics])


def test_the_topic_buckets_are_rebuilt_from_the_rows_exactly_as_storing_made_them_and_a_rerun_changes_nothing() -> None:
    stored_stream()
    as_stored, others = buckets(topics=True), buckets(topics=False)
    assert ("ACME#Earnings", Bucket.DAY, T0.replace(hour=0)) in as_stored and ("#(none)", Bucket.HOUR, T0 + timedelta(hours=15, minutes=0)) in as_stored
    # As before topic aggregates existed: no topic bucket at all; and one that is wrong.
    Bucket.objects.filter(scope__contains="#").exclude(scope="#Dividend").delete()
    Bucket.objects.filter(scope="#Dividend").update(count=99)
    left = Bucket.objects.filter(scope__contains="#").count()
    assert 0 < left < len(as_stored)
    seen = []
    report = buckets_rebuild(chunk=3, progress=lambda done, total: seen.append((done, total)))
    assert buckets(topics=True) == as_stored and buckets(topics=False) == others  # ticker and overall untouched
    assert report == {"scopes": "topics", "headlines": 11, "buckets_deleted": left, "buckets": len(as_stored)}
    assert seen == [(3, 11), (6, 11), (9, 11), (11, 11)]
    again = buckets_rebuild()
    assert buckets(topics=True) == as_stored and again["buckets_deleted"] == again["buckets"] == len(as_stored)


def test_every_scope_can_be_rebuilt_and_the_command_reports_it_as_json() -> None:
    stored_stream()
    everything = {**buckets(topics=True), **buckets(topics=False)}
    Bucket.objects.all().delete()
    out = StringIO()
    call_command("buckets_rebuild", scopes="all", chunk=4, no_progress=True, stdout=out)
    report = json.loads(out.getvalue().strip().splitlines()[-1])
    assert report == {"scopes": "all", "headlines": 11, "buckets_deleted": 0, "buckets": len(everything)}
    assert {**buckets(topics=True), **buckets(topics=False)} == everything
    call_command("buckets_rebuild", stdout=StringIO(), stderr=StringIO())  # topics, with the progress bar
    assert {**buckets(topics=True), **buckets(topics=False)} == everything


def test_a_bad_scope_or_chunk_is_refused_before_anything_is_deleted() -> None:
    stored_stream()
    before = Bucket.objects.count()
    for kwargs in ({"scopes": "tickers"}, {"chunk": 0}):
        with pytest.raises(ValueError):
            buckets_rebuild(**kwargs)
    assert Bucket.objects.count() == before
