"""The `news.raw` consumer: poll a batch, validate, score, store atomically, publish, then commit offsets.

    python manage.py news_consume [--group news-consumer] [--batch-size 64] [--max-messages N] [--idle-exit-seconds S]

Delivery is at least once from Kafka and exactly once into the database: rows are unique on the message id
and offsets are committed only after the database transaction, so a crash between the two redelivers a batch
whose rows are then skipped. No message can stop the consumer: one that cannot be decoded, validated (field
limits are checked before the database), scored (after NEWS_MODEL_RETRIES retries) or stored goes to `news.dlq`
with the reason, and the rest of its batch is stored. A headline dated more than NEWS_FUTURE_TOLERANCE_S
ahead is clamped to the time it was received (services.sentiment.messages says why).
Run several processes with the same group to share the partitions.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from services.kafka_config import kafka_client_options
from services.ml.runtime import ClassifyOutput
from services.output import json_line
from services.sentiment.bus import DEFAULT_GROUP, Topics, kafka_require, producer_make, topics_default
from services.sentiment.messages import MalformedMessage, NewsItem, news_decode
from services.sentiment.scoring import texts_score
from services.sentiment.store import StoreResult, news_store_isolating
from services.sentiment.topics import classify_topic_champion, texts_topics

log = logging.getLogger("pipelines.news_consumer")

Classify = Callable[[list[str]], ClassifyOutput]
AfterStore = Callable[[StoreResult], None]


@dataclass
class ConsumeStats:
    consumed: int = 0  # records polled (well-formed and malformed)
    stored: int = 0  # rows created
    duplicates: int = 0  # well-formed records already stored (redelivery)
    malformed: int = 0  # sent to the DLQ (refused, failed by the model or by storage)
    model_failed: int = 0  # of which the model failed on them (after its retries)
    store_failed: int = 0  # of which the database refused them
    retried_batches: int = 0  # batches redone after an error of Kafka or the database (not of a message)
    batches: int = 0
    model_versions: set[int] = field(default_factory=set)
    # Seconds spent per phase (PHASES), summed over the batches: where a consumer's time goes.
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def timing(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - started

    def as_dict(self) -> dict[str, Any]:
        return {"consumed": self.consumed, "stored": self.stored, "duplicates": self.duplicates,
                "malformed": self.malformed, "model_failed": self.model_failed, "store_failed": self.store_failed,
                "retried_batches": self.retried_batches, "batches": self.batches,
                "model_versions": sorted(self.model_versions),
                "seconds": {phase: round(self.seconds[phase], 3) for phase in PHASES if phase in self.seconds}}


# A batch's phases, in order: poll Kafka, decode and validate, the sentiment call, the topic call, the database
# transaction (rows, ticker links, aggregates), produce news.scored and flush, commit the offsets, live push and alerts.
PHASES = ("poll", "decode", "sentiment", "topic", "store", "publish", "commit", "after_store")


def classify_champion(texts: list[str]) -> ClassifyOutput:
    """The registry's `sentiment` champion through the in-process micro-batcher."""
    from services.registry.serving import texts_classify

    return texts_classify(task="sentiment", texts=texts)


def alert_deliver_later(alert: Any) -> None:
    """Enqueue the alert's deliveries (stored with the alert) as Celery tasks once its transaction has committed.

    Nothing waits here for a slow webhook. A process that dies before the enqueue leaves pending rows, which the
    `sentiment.deliveries_requeue` beat task sends later; a broker that cannot be reached now is the same case.
    """
    from django.db import transaction

    from services.sentiment.channels import deliveries_enqueue

    def enqueue(alert_id: int = alert.id) -> None:
        try:
            deliveries_enqueue(alert_id=alert_id)
        except Exception:  # noqa: BLE001 - the rows stay pending and the beat task re-sends them
            log.exception("could not enqueue the deliveries of alert %s; the periodic re-send will", alert_id)

    transaction.on_commit(enqueue)


def after_store_default(result: StoreResult) -> None:
    """Live push of the new rows and alert checks for their tickers; a failure here is logged, never fatal."""
    if not result.stored:
        return
    try:
        from services.sentiment.live import news_push

        news_push(rows=result.stored)
    except Exception:  # noqa: BLE001 - the page missing an update must not stop ingestion
        log.exception("live push failed")
    try:
        from services.sentiment.alerts import alerts_check

        alerts_check(symbols=sorted({s for row in result.stored for s in row.tickers}), deliver=alert_deliver_later)
    except Exception:  # noqa: BLE001
        log.exception("alert check failed")


DLQ_VALUE_CHARS = 50_000  # of the refused value kept in the dead letter (as JSON ≤ ~600 kB, under Kafka's 1 MB)


def _dlq_value(record: Any, reason: str) -> dict[str, Any]:
    """The dead letter: why, where the original lies (topic, partition, offset) and its value (cut when huge)."""
    value = record.value.decode("utf-8", errors="replace") if record.value is not None else None
    truncated = value is not None and len(value) > DLQ_VALUE_CHARS
    return {"reason": reason, "value": value[:DLQ_VALUE_CHARS] if truncated else value, "truncated": truncated,
            "topic": record.topic, "partition": record.partition, "offset": record.offset,
            "failed_at": datetime.now(timezone.utc).isoformat()}


def _scored_value(row: Any, published_at_given: datetime | None = None) -> dict[str, Any]:
    out = {"id": row.message_id, "source": row.source, "published_at": row.published_at.isoformat(),
           "headline": row.headline, "body": row.body, "url": row.url, "tickers": row.tickers, "topics": row.topics,
           "label": row.label, "score": row.score, "probs": {"positive": row.p_positive, "neutral": row.p_neutral,
                                                             "negative": row.p_negative},
           "model_task": row.model_task, "model_version": row.model_version, "topic_version": row.topic_version}
    if published_at_given is not None:  # clamped: the message was dated beyond the future tolerance
        out["published_at_given"] = published_at_given.isoformat()
    return out


def _record_time(record: Any) -> datetime | None:
    """The record's CreateTime, or None when absent or absurd (a producer sets it to anything)."""
    try:
        return datetime.fromtimestamp(record.timestamp / 1000, tz=timezone.utc) if record.timestamp and record.timestamp > 0 else None
    except (OverflowError, OSError, ValueError, TypeError):
        return None


def batch_process(*, records: Sequence[Any], producer: Any, topics: Topics, classify: Classify,
                  stats: ConsumeStats, classify_topic: Classify | None = classify_topic_champion) -> StoreResult | None:
    """Validate, score and store one polled batch; every record ends stored or in the DLQ with its reason.

    1. Decode each record (news_decode never raises anything but MalformedMessage; a future-dated headline
       is clamped to now); refused ones go to the DLQ.
    2. Score with one model call; a headline the model fails on is found by halving the batch and retried
       NEWS_MODEL_RETRIES times with backoff, then dead-lettered. Tag the scored headlines' topics with one call of
       the `topic` champion (services/sentiment/topics.py); without one, or where it fails, the keyword lists tag them.
    3. Store in one transaction; when a message's data makes that fail, one at a time (the failing one is
       dead-lettered, the rest stored).
    4. Publish every stored or already-stored row to news.scored and flush. The caller commits the offsets.
    Errors of the infrastructure (Kafka, the database, the model's worker) are raised: the caller retries
    the batch; no message is blamed for them.
    """
    from django.conf import settings

    from apps.sentiment.models import ScoredNews

    def dead(record: Any, reason: str) -> None:
        key = record.key if record.key is None or len(record.key) <= 1024 else None  # a huge key must not block it
        producer.send(topics.dlq, key=key, value=_dlq_value(record, reason))
        stats.malformed += 1

    received_at = datetime.now(timezone.utc)
    kept: list[tuple[Any, NewsItem]] = []
    with stats.timing("decode"):
        for record in records:
            try:
                kept.append((record, news_decode(record.value, received_at=received_at)))
            except MalformedMessage as exc:
                dead(record, exc.message)
            except Exception as exc:  # noqa: BLE001 - a parser bug must not stop ingestion: the message is set aside
                log.exception("decoding the message at %s/%s/%s failed", record.topic, record.partition, record.offset)
                dead(record, f"could not be decoded ({type(exc).__name__}: {str(exc)[:300]})")
    result = None
    if kept:
        with stats.timing("sentiment"):
            batch = texts_score(texts=[item.headline for _, item in kept], classify=classify,
                                retries=settings.NEWS_MODEL_RETRIES, backoff_s=settings.NEWS_MODEL_RETRY_BACKOFF_S)
        for i in batch.failed():
            dead(kept[i][0], batch.errors[i] or "the model failed on this headline")
            stats.model_failed += 1
        by_version: dict[int, list[int]] = {}
        for i, version in enumerate(batch.versions):
            if version is not None:
                by_version.setdefault(version, []).append(i)
        scored_idx = [i for idx in by_version.values() for i in idx]
        with stats.timing("topic"):
            tags = texts_topics(texts=[kept[i][1].headline for i in scored_idx], classify=classify_topic)
        topic_of = {i: (tags.topics[j], tags.versions[j]) for j, i in enumerate(scored_idx)}
        stored, duplicates = [], []
        with stats.timing("store"):
            for version, idx in sorted(by_version.items()):
                part = news_store_isolating(items=[kept[i][1] for i in idx], scores=[batch.scores[i] for i in idx],
                                            model_version=version, produced_at=[_record_time(kept[i][0]) for i in idx],
                                            topics=[topic_of[i][0] for i in idx],
                                            topic_versions=[topic_of[i][1] for i in idx])
                for j, reason in part.refused.items():
                    dead(kept[idx[j]][0], reason)
                    stats.store_failed += 1
                stored += part.stored
                duplicates += part.duplicates
                stats.model_versions.add(version)
        result = StoreResult(stored=stored, duplicates=duplicates)
        stats.stored += len(stored)
        stats.duplicates += len(duplicates)
        # Every well-formed record is (re)published, duplicates included: a crash after the database commit
        # but before this point must not lose the scored message. news.scored is at least once, keyed by id.
        # The rows this batch created are at hand; only the already-stored ones (redelivery) are read back.
        with stats.timing("publish"):
            given = {item.id: item.published_at_given for _, item in kept}
            rows = {row.message_id: row for row in stored}
            if duplicates:
                rows.update((row.message_id, row) for row in ScoredNews.objects.filter(message_id__in=set(duplicates)))
            for message_id in dict.fromkeys(item.id for _, item in kept):
                row = rows.get(message_id)
                if row is not None:
                    producer.send(topics.scored, key=row.message_id, value=_scored_value(row, given.get(row.message_id)))
    with stats.timing("publish"):
        producer.flush(timeout=30)
    stats.consumed += len(records)
    stats.batches += 1
    return result


def _transient() -> tuple[type[BaseException], ...]:
    from django.db import InterfaceError, OperationalError
    from kafka.errors import KafkaError

    from services.errors import ServiceUnavailable

    return (KafkaError, OperationalError, InterfaceError, ServiceUnavailable)


def _rewind(consumer: Any, records: Sequence[Any]) -> None:
    """Seek each partition of a failed batch back to its first record, so the next poll reads it again."""
    from kafka import TopicPartition

    first: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        first[tp] = min(first.get(tp, r.offset), r.offset)
    for tp, offset in first.items():
        try:
            consumer.seek(tp, offset)
        except Exception:  # noqa: BLE001 - no longer assigned (a rebalance): its new owner reads it from the commit
            log.info("partition %s moved during the retry; its new owner re-reads it", tp)


def _db_reset() -> None:
    """Drop the database connection after an error, so the retry opens a fresh one."""
    from django.db import connection

    try:
        connection.close()
    except Exception:  # noqa: BLE001 - closing a broken connection may itself fail
        pass


def news_consume(*, group: str = DEFAULT_GROUP, topics: Topics | None = None, batch_size: int = 64,
                 max_messages: int | None = None, idle_exit_seconds: float | None = None,
                 classify: Classify = classify_champion, after_store: AfterStore | None = after_store_default,
                 classify_topic: Classify | None = classify_topic_champion,
                 stop: threading.Event | None = None, poll_timeout_ms: int = 500,
                 lag_every_s: float | None = None, stats: ConsumeStats | None = None) -> ConsumeStats:
    """Consume `topics.raw` as a member of `group` until `stop` is set, `max_messages` are done or it idles.

    1. Poll up to `batch_size` records.
    2. batch_process: every record is stored or dead-lettered with its reason (see there); scored rows
       are produced and flushed. When Kafka or the database fails meanwhile, the batch is re-read after a
       backoff (1 s doubling to 30 s) instead of exiting: no message is blamed, stored ids are skipped.
    3. Commit the offsets.
    4. Live push and alert checks for the new rows; an alert's deliveries are stored with it and sent by
       Celery tasks (`alert_deliver_later`).
    Beside the loop, a LagPublisher thread publishes the lag of the partitions this member owns every
    `lag_every_s` seconds (default NEWS_LAG_PUBLISH_S; 0: off) for /metrics and the dashboard
    (services/kafka_lag.py); a clean exit withdraws them.
    `stats`: counters to add to (a caller may read them while it runs, e.g. a benchmark); a new one by default.
    """
    from django.conf import settings
    from kafka import KafkaConsumer
    from kafka.errors import CommitFailedError

    from services.kafka_lag import LagPublisher

    topics = topics or topics_default()
    stop = stop or threading.Event()
    TRANSIENT = _transient()  # noqa: N806 - a constant of this run, imported lazily
    kafka_require()
    consumer = KafkaConsumer(topics.raw, **kafka_client_options(), group_id=group, client_id=f"{group}-consumer",
                             enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=batch_size,
                             # A killed member's partitions move to the others after 10 s, not the client's 45 s.
                             session_timeout_ms=10000, heartbeat_interval_ms=3000)
    producer = producer_make()
    stats = stats if stats is not None else ConsumeStats()
    lag_every_s = settings.NEWS_LAG_PUBLISH_S if lag_every_s is None else lag_every_s
    assigned: list[frozenset] = [frozenset()]  # replaced after each poll; the publisher thread only reads it
    publisher = LagPublisher(group=group, owned=lambda: assigned[0], every_s=lag_every_s).start() if lag_every_s > 0 else None
    idle_since = time.monotonic()
    backoff = 1.0  # seconds before redoing a batch that failed for the infrastructure; doubles up to 30 s
    try:
        while not stop.is_set():
            if max_messages is not None and stats.consumed >= max_messages:
                break
            try:
                polled_at = time.perf_counter()
                polled = consumer.poll(timeout_ms=poll_timeout_ms, max_records=batch_size)
            except TRANSIENT as exc:  # the broker went away mid-poll: wait for it, as for a failed batch
                log.warning("poll failed (%s: %s); polling again in %.1f s", type(exc).__name__, str(exc)[:200], backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            assigned[0] = frozenset(consumer.assignment())  # after the poll, where a rebalance changes it
            records = [r for part in polled.values() for r in part]
            if not records:
                if not consumer.assignment():  # still joining the group (or waiting out a dead member): not idle
                    idle_since = time.monotonic()
                elif idle_exit_seconds is not None and time.monotonic() - idle_since >= idle_exit_seconds:
                    break
                continue
            idle_since = time.monotonic()
            stats.seconds["poll"] = stats.seconds.get("poll", 0.0) + time.perf_counter() - polled_at  # polls that brought records
            try:
                result = batch_process(records=records, producer=producer, topics=topics, classify=classify, stats=stats,
                                       classify_topic=classify_topic)
            except TRANSIENT as exc:
                # Kafka, the database or the model's worker is away (a broker restart, a lock): no message is at
                # fault, so none is dead-lettered. Re-read the batch after a pause; stored ids are skipped.
                stats.retried_batches += 1
                log.warning("batch failed (%s: %s); retrying it in %.1f s", type(exc).__name__, str(exc)[:200], backoff)
                _rewind(consumer, records)
                _db_reset()
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            backoff = 1.0
            try:
                with stats.timing("commit"):
                    consumer.commit()  # only now: the rows are committed and the outputs acknowledged by the broker
            except CommitFailedError:
                # The group rebalanced during the batch: its new owner re-reads it and skips the stored ids.
                log.warning("offset commit failed after a rebalance; the batch will be redelivered (no duplicates)")
            except TRANSIENT as exc:
                # The broker is away: the next batch's commit covers this one, or a restart re-reads it (skipped).
                log.warning("offset commit failed (%s); it is retried with the next batch", type(exc).__name__)
            log.info("batch of %d: %d stored, %d duplicates, %d malformed", len(records), len(result.stored) if result else 0,
                     len(result.duplicates) if result else 0, stats.malformed)
            if result is not None and after_store is not None:
                with stats.timing("after_store"):
                    after_store(result)
    finally:
        if publisher is not None:
            publisher.stop()  # its partitions go to the other members, which publish them
        consumer.close(autocommit=False)
        producer.close(timeout=10)
    return stats


def stats_json(stats: ConsumeStats) -> str:
    return json_line(stats.as_dict())
