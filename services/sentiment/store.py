"""Storing scored headlines: one atomic write per batch, idempotent on the message id, aggregates updated once."""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F

from apps.sentiment.models import OVERALL, Bucket, NewsTicker, ScoredNews, Ticker
from services.sentiment.entities import WatchEntry, tickers_find, topics_find
from services.sentiment.messages import NewsItem
from services.sentiment.scoring import Scored

UNTAGGED = "(none)"  # the topic bucket of headlines without a topic

log = logging.getLogger("services.sentiment.store")

GRANULARITIES = (Bucket.MINUTE, Bucket.HOUR, Bucket.DAY)


@dataclass(frozen=True)
class StoreResult:
    stored: list[ScoredNews]  # rows this call created
    duplicates: list[str]  # message ids that were already stored (redelivery)
    refused: dict[int, str] = field(default_factory=dict)  # index in the batch → why it could not be stored


def watchlist_load() -> list[WatchEntry]:
    return [WatchEntry(symbol=t.symbol, names=(t.symbol if len(t.symbol) > 2 else "", t.name, *t.aliases))
            for t in Ticker.objects.all()]


def bucket_start(*, at: datetime, granularity: str) -> datetime:
    """The start of the minute/hour/day bucket holding `at` (UTC)."""
    at = at.replace(second=0, microsecond=0)
    if granularity in (Bucket.HOUR, Bucket.DAY):
        at = at.replace(minute=0)
    if granularity == Bucket.DAY:
        at = at.replace(hour=0)
    return at


def topic_scope(*, topic: str, symbol: str | None = None) -> str:
    """The bucket scope of a topic ("#Earnings") or of a ticker within it ("ACME#Earnings"): an alert rule's target."""
    return f"{symbol or ''}#{topic}"


def row_scopes(row: ScoredNews) -> list[str]:
    """Every bucket scope a stored headline counts in: overall, its tickers, its topics, each ticker × topic."""
    topics = row.topics or [UNTAGGED]
    return [OVERALL, *row.tickers, *(topic_scope(topic=t) for t in topics),
            *(topic_scope(topic=t, symbol=s) for s in row.tickers for t in topics)]


def buckets_add(rows: Sequence[ScoredNews], *, scopes: Callable[[ScoredNews], list[str]] = row_scopes) -> None:
    """Add `rows` to the minute/hour/day buckets of every scope they count in (`scopes`: row_scopes).

    Call inside the transaction that created the rows, so a row is counted exactly when it is stored.
    Headlines without a topic count under the topic "(none)", so the topic breakdown adds up to the total.
    """
    sums: dict[tuple[str, str, datetime], list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0])  # n, sum, sum of squares, negatives
    for row in rows:
        for scope in scopes(row):
            for granularity in GRANULARITIES:
                acc = sums[(scope, granularity, bucket_start(at=row.published_at, granularity=granularity))]
                acc[0] += 1
                acc[1] += row.score
                acc[2] += row.score * row.score
                acc[3] += row.label == "negative"
    if connection.vendor in ("sqlite", "postgresql"):
        _buckets_upsert(sums)
        return
    for (scope, granularity, start), (count, score_sum, sq_sum, negatives) in sums.items():
        bucket, created = Bucket.objects.get_or_create(
            scope=scope, granularity=granularity, start=start,
            defaults={"count": count, "score_sum": score_sum, "score_sq_sum": sq_sum, "negative_count": negatives})
        if not created:
            Bucket.objects.filter(pk=bucket.pk).update(count=F("count") + count, score_sum=F("score_sum") + score_sum,
                                                       score_sq_sum=F("score_sq_sum") + sq_sum,
                                                       negative_count=F("negative_count") + negatives)


def topic_scopes(row: ScoredNews) -> list[str]:
    """The topic scopes of a stored headline: its topics ("#Earnings") and each ticker × topic ("ACME#Earnings")."""
    return [scope for scope in row_scopes(row) if "#" in scope]


REBUILD_SCOPES = {"topics": topic_scopes, "all": row_scopes}


def buckets_rebuild(*, scopes: str = "topics", chunk: int = 2000,
                    progress: Callable[[int, int], None] | None = None) -> dict[str, int | str]:
    """Rebuild the minute/hour/day buckets of the topic scopes (`scopes` "all": of every scope) from the stored rows.

    For headlines stored before the topic buckets existed. Idempotent: the buckets are deleted and summed again
    from the rows in one transaction, so a rerun gives the same buckets and a failed run leaves the old ones.
    1. Lock the bucket table against writers (PostgreSQL; SQLite's write lock does it), so a consumer storing
       meanwhile adds its headlines after the rebuild, never twice or not at all; it waits until the end.
    2. Delete the buckets of those scopes: "topics" is '#<topic>' and '<ticker>#<topic>'.
    3. Read the headlines in id order, `chunk` at a time, and add each to its buckets (buckets_add); call
       `progress(done, total)` after each chunk.
    Returns {"scopes", "headlines", "buckets_deleted", "buckets"} (the last: buckets of those scopes now).
    """
    if scopes not in REBUILD_SCOPES:
        raise ValueError(f"scopes must be one of {sorted(REBUILD_SCOPES)} (got {scopes!r})")
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1 (got {chunk})")
    which = Bucket.objects.filter(scope__contains="#") if scopes == "topics" else Bucket.objects.all()
    fields = ("id", "published_at", "score", "label", "tickers", "topics")
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {connection.ops.quote_name(Bucket._meta.db_table)} IN EXCLUSIVE MODE")
        deleted, _ = which.delete()
        total, done, last = ScoredNews.objects.count(), 0, 0
        while True:
            rows = list(ScoredNews.objects.filter(id__gt=last).order_by("id").only(*fields)[:chunk])
            if not rows:
                break
            buckets_add(rows, scopes=REBUILD_SCOPES[scopes])
            done, last = done + len(rows), rows[-1].id
            if progress is not None:
                progress(done, max(total, done))
        return {"scopes": scopes, "headlines": done, "buckets_deleted": deleted, "buckets": which.count()}


UPSERT_ROWS = 100  # buckets per INSERT statement (7 parameters each: under SQLite's oldest limit of 999)


def _buckets_upsert(sums: dict[tuple[str, str, datetime], list[float]]) -> None:
    """Add the sums to their buckets with INSERT … ON CONFLICT DO UPDATE (SQLite ≥ 3.24, PostgreSQL): one statement
    per UPSERT_ROWS buckets instead of a get_or_create and an update per bucket. Keys in sorted order, so two
    consumers adding to the same buckets lock them in the same order."""
    qn = connection.ops.quote_name
    table = qn(Bucket._meta.db_table)
    columns = ("scope", "granularity", "start", "count", "score_sum", "score_sq_sum", "negative_count")
    added = ", ".join(f"{qn(c)} = {table}.{qn(c)} + excluded.{qn(c)}" for c in columns[3:])
    keys = sorted(sums)
    with connection.cursor() as cursor:
        for i in range(0, len(keys), UPSERT_ROWS):
            chunk = keys[i:i + UPSERT_ROWS]
            params: list[object] = []
            for scope, granularity, start in chunk:
                count, score_sum, sq_sum, negatives = sums[(scope, granularity, start)]
                params += [scope, granularity, connection.ops.adapt_datetimefield_value(start), int(count),
                           float(score_sum), float(sq_sum), int(negatives)]
            values = ", ".join(["(" + ", ".join(["%s"] * len(columns)) + ")"] * len(chunk))
            cursor.execute(f"INSERT INTO {table} ({', '.join(qn(c) for c in columns)}) VALUES {values} "
                           f"ON CONFLICT ({qn('scope')}, {qn('granularity')}, {qn('start')}) DO UPDATE SET {added}", params)


def news_store(*, items: Sequence[NewsItem], scores: Sequence[Scored], model_version: int, model_task: str = "sentiment",
               produced_at: Sequence[datetime | None] | None = None, topics: Sequence[list[str] | None] | None = None,
               topic_versions: Sequence[int | None] | None = None) -> StoreResult:
    """Store a scored batch in one transaction; ids already stored (or repeated in the batch) are skipped.

    1. Drop ids already in the table or seen earlier in the batch.
    2. Find each headline's tickers (message list, cashtags, watchlist); its topics are `topics` (the topic model's,
       with `topic_versions`) or, where not given (None), the keyword lists' matches in headline and body.
    3. Create the rows, their ticker links, and add them to the aggregates, all in one transaction.
    """
    if len(items) != len(scores):
        raise ValueError(f"{len(items)} items but {len(scores)} scores")
    if topics is not None and len(topics) != len(items):
        raise ValueError(f"{len(items)} items but {len(topics)} topic lists")
    produced_at = list(produced_at) if produced_at is not None else [None] * len(items)
    topics = list(topics) if topics is not None else [None] * len(items)
    topic_versions = list(topic_versions) if topic_versions is not None else [None] * len(items)
    watchlist = watchlist_load()
    with transaction.atomic():
        existing = set(ScoredNews.objects.filter(message_id__in=[i.id for i in items]).values_list("message_id", flat=True))
        duplicates, fresh, seen = [], [], set()
        for item, scored, produced, tags, topic_version in zip(items, scores, produced_at, topics, topic_versions):
            if item.id in existing or item.id in seen:
                duplicates.append(item.id)
                continue
            seen.add(item.id)
            text = f"{item.headline} {item.body}"
            fresh.append(ScoredNews(
                message_id=item.id, source=item.source, published_at=item.published_at, headline=item.headline,
                body=item.body, url=item.url, tickers=tickers_find(text=text, given=item.tickers, watchlist=watchlist),
                topics=topics_find(text) if tags is None else list(tags),
                topic_version=topic_version if tags is not None else None, label=scored.label,
                p_positive=scored.p_positive, p_neutral=scored.p_neutral,
                p_negative=scored.p_negative, score=scored.score, model_task=model_task, model_version=model_version,
                produced_at=produced))
        ScoredNews.objects.bulk_create(fresh)
        stored = list(ScoredNews.objects.filter(message_id__in=[row.message_id for row in fresh]))  # with their ids
        NewsTicker.objects.bulk_create([NewsTicker(news=row, symbol=s) for row in stored for s in row.tickers])
        buckets_add(stored)
    return StoreResult(stored=stored, duplicates=duplicates)


# Errors of one message's data (too long for a column, a value the driver refuses); OperationalError and
# InterfaceError are the database being unreachable or locked, which no message causes: those are raised.
DATA_ERRORS = (DatabaseError, ValueError, TypeError, OverflowError, UnicodeError)


def _data_error(exc: BaseException) -> bool:
    return isinstance(exc, DATA_ERRORS) and not isinstance(exc, OperationalError | InterfaceError)


def news_store_isolating(*, items: Sequence[NewsItem], scores: Sequence[Scored], model_version: int,
                         model_task: str = "sentiment", produced_at: Sequence[datetime | None] | None = None,
                         topics: Sequence[list[str] | None] | None = None,
                         topic_versions: Sequence[int | None] | None = None) -> StoreResult:
    """Store a batch in one transaction; when the data of some message makes that fail, store one at a time.

    1. news_store on the whole batch (the common case: one transaction).
    2. On an error caused by the data (DataError, IntegrityError, ValueError …), store each message alone:
       the ones that fail again are returned in `refused` with the reason, the others are stored.
    An error of the database itself (OperationalError, InterfaceError) is raised: retrying message by
    message would only dead-letter good messages while the database is away.
    """
    produced_at = list(produced_at) if produced_at is not None else [None] * len(items)
    topics = list(topics) if topics is not None else None
    topic_versions = list(topic_versions) if topic_versions is not None else [None] * len(items)
    try:
        return news_store(items=items, scores=scores, model_version=model_version, model_task=model_task,
                          produced_at=produced_at, topics=topics, topic_versions=topic_versions)
    except Exception as exc:
        if not _data_error(exc):
            raise
        log.warning("storing a batch of %d failed (%s: %s); storing its messages one at a time",
                    len(items), type(exc).__name__, str(exc)[:300])
    stored: list[ScoredNews] = []
    duplicates: list[str] = []
    refused: dict[int, str] = {}
    for i, (item, scored, produced) in enumerate(zip(items, scores, produced_at)):
        try:
            one = news_store(items=[item], scores=[scored], model_version=model_version, model_task=model_task,
                             produced_at=[produced], topics=None if topics is None else [topics[i]],
                             topic_versions=[topic_versions[i]])
        except Exception as exc:
            if not _data_error(exc):
                raise
            refused[i] = f"could not be stored ({type(exc).__name__}: {str(exc)[:300]})"
            continue
        stored += one.stored
        duplicates += one.duplicates
    return StoreResult(stored=stored, duplicates=duplicates, refused=refused)
