"""The `news.raw` consumer: poll a batch, validate, score, store atomically, publish, then commit offsets.

    python manage.py news_consume [--group news-consumer] [--batch-size 64] [--max-messages N] [--idle-exit-seconds S]

Delivery is at least once from Kafka and exactly once into the database: rows are unique on the message id
and offsets are committed only after the database transaction, so a crash between the two redelivers a batch
whose rows are then skipped. Malformed messages go to `news.dlq` with the reason and never stop the consumer.
Run several processes with the same group to share the partitions.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from services.ml.runtime import ClassifyOutput
from services.output import json_line
from services.sentiment.bus import DEFAULT_GROUP, Topics, kafka_require, producer_make, servers, topics_default
from services.sentiment.messages import MalformedMessage, NewsItem, news_decode
from services.sentiment.scoring import probs_score
from services.sentiment.store import StoreResult, news_store

log = logging.getLogger("pipelines.news_consumer")

Classify = Callable[[list[str]], ClassifyOutput]
AfterStore = Callable[[StoreResult], None]


@dataclass
class ConsumeStats:
    consumed: int = 0  # records polled (well-formed and malformed)
    stored: int = 0  # rows created
    duplicates: int = 0  # well-formed records already stored (redelivery)
    malformed: int = 0  # sent to the DLQ
    batches: int = 0
    model_versions: set[int] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        return {"consumed": self.consumed, "stored": self.stored, "duplicates": self.duplicates,
                "malformed": self.malformed, "batches": self.batches, "model_versions": sorted(self.model_versions)}


def classify_champion(texts: list[str]) -> ClassifyOutput:
    """The registry's `sentiment` champion through the in-process micro-batcher."""
    from services.registry.serving import texts_classify

    return texts_classify(task="sentiment", texts=texts)


_deliveries: ThreadPoolExecutor | None = None  # alert deliveries (webhook retries) run beside ingestion
_pending: set[Future] = set()
_pending_lock = threading.Lock()


def _deliver_by_id(alert_id: int) -> None:
    from django.db import connection

    from apps.sentiment.models import Alert
    from services.sentiment.channels import alert_deliver

    try:
        alert_deliver(alert=Alert.objects.select_related("rule").get(id=alert_id))
    except Exception:  # noqa: BLE001 - a failed delivery is recorded by alert_deliver; anything else is logged
        log.exception("delivery of alert %s failed", alert_id)
    finally:
        connection.close()  # pool threads outlive requests: do not keep a connection per thread


def alert_deliver_later(alert: Any) -> None:
    """Hand an alert to the delivery pool, so a slow webhook (retries, timeouts) never holds up ingestion."""
    global _deliveries
    with _pending_lock:
        if _deliveries is None:
            _deliveries = ThreadPoolExecutor(max_workers=2, thread_name_prefix="alert-delivery")
        future = _deliveries.submit(_deliver_by_id, alert.id)
        _pending.add(future)
    future.add_done_callback(lambda f: _pending.discard(f))


def deliveries_drain(timeout_s: float = 60) -> None:
    """Wait for the alert deliveries handed to the pool (a consumer calls it before it exits)."""
    with _pending_lock:
        pending = list(_pending)
    wait(pending, timeout=timeout_s)


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


def _dlq_value(record: Any, reason: str) -> dict[str, Any]:
    value = record.value.decode("utf-8", errors="replace") if record.value is not None else None
    return {"reason": reason, "value": value, "topic": record.topic, "partition": record.partition,
            "offset": record.offset, "failed_at": datetime.now(timezone.utc).isoformat()}


def _scored_value(row: Any) -> dict[str, Any]:
    return {"id": row.message_id, "source": row.source, "published_at": row.published_at.isoformat(),
            "headline": row.headline, "body": row.body, "url": row.url, "tickers": row.tickers, "topics": row.topics,
            "label": row.label, "score": row.score, "probs": {"positive": row.p_positive, "neutral": row.p_neutral,
                                                              "negative": row.p_negative},
            "model_task": row.model_task, "model_version": row.model_version}


def batch_process(*, records: Sequence[Any], producer: Any, topics: Topics, classify: Classify,
                  stats: ConsumeStats) -> StoreResult | None:
    """Validate, score and store one polled batch; malformed records and scored rows are produced (and flushed).

    The caller commits the offsets afterwards.
    """
    from apps.sentiment.models import ScoredNews

    items: list[NewsItem] = []
    produced: list[datetime | None] = []
    for record in records:
        try:
            items.append(news_decode(record.value))
            produced.append(datetime.fromtimestamp(record.timestamp / 1000, tz=timezone.utc) if record.timestamp else None)
        except MalformedMessage as exc:
            producer.send(topics.dlq, key=record.key, value=_dlq_value(record, exc.message))
            stats.malformed += 1
    result = None
    if items:
        output = classify([item.headline for item in items])
        scores = probs_score(probs=output.probs, label_names=output.label_names)
        result = news_store(items=items, scores=scores, model_version=output.version, produced_at=produced)
        stats.stored += len(result.stored)
        stats.duplicates += len(result.duplicates)
        stats.model_versions.add(output.version)
        # Every well-formed record is (re)published, duplicates included: a crash after the database commit
        # but before this point must not lose the scored message. news.scored is at least once, keyed by id.
        for row in ScoredNews.objects.filter(message_id__in=[item.id for item in items]):
            producer.send(topics.scored, key=row.message_id, value=_scored_value(row))
    producer.flush(timeout=30)
    stats.consumed += len(records)
    stats.batches += 1
    return result


def news_consume(*, group: str = DEFAULT_GROUP, topics: Topics | None = None, batch_size: int = 64,
                 max_messages: int | None = None, idle_exit_seconds: float | None = None,
                 classify: Classify = classify_champion, after_store: AfterStore | None = after_store_default,
                 stop: threading.Event | None = None, poll_timeout_ms: int = 500) -> ConsumeStats:
    """Consume `topics.raw` as a member of `group` until `stop` is set, `max_messages` are done or it idles.

    1. Poll up to `batch_size` records.
    2. Validate; malformed ones go to the DLQ with the reason.
    3. Score the batch with one classifier call, store it in one transaction (idempotent on the id).
    4. Produce the scored rows, flush, then commit the offsets.
    5. Live push and alert checks for the new rows; alerts are delivered by a small thread pool, drained
       before returning.
    """
    from kafka import KafkaConsumer
    from kafka.errors import CommitFailedError

    topics = topics or topics_default()
    stop = stop or threading.Event()
    kafka_require()
    consumer = KafkaConsumer(topics.raw, bootstrap_servers=servers(), group_id=group, client_id=f"{group}-consumer",
                             enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=batch_size,
                             # A killed member's partitions move to the others after 10 s, not the client's 45 s.
                             session_timeout_ms=10000, heartbeat_interval_ms=3000)
    producer = producer_make()
    stats = ConsumeStats()
    idle_since = time.monotonic()
    try:
        while not stop.is_set():
            if max_messages is not None and stats.consumed >= max_messages:
                break
            polled = consumer.poll(timeout_ms=poll_timeout_ms, max_records=batch_size)
            records = [r for part in polled.values() for r in part]
            if not records:
                if not consumer.assignment():  # still joining the group (or waiting out a dead member): not idle
                    idle_since = time.monotonic()
                elif idle_exit_seconds is not None and time.monotonic() - idle_since >= idle_exit_seconds:
                    break
                continue
            idle_since = time.monotonic()
            result = batch_process(records=records, producer=producer, topics=topics, classify=classify, stats=stats)
            try:
                consumer.commit()  # only now: the rows are committed and the outputs acknowledged by the broker
            except CommitFailedError:
                # The group rebalanced during the batch: its new owner re-reads it and skips the stored ids.
                log.warning("offset commit failed after a rebalance; the batch will be redelivered (no duplicates)")
            log.info("batch of %d: %d stored, %d duplicates, %d malformed", len(records), len(result.stored) if result else 0,
                     len(result.duplicates) if result else 0, stats.malformed)
            if result is not None and after_store is not None:
                after_store(result)
    finally:
        consumer.close(autocommit=False)
        producer.close(timeout=10)
        deliveries_drain()
    return stats


def stats_json(stats: ConsumeStats) -> str:
    return json_line(stats.as_dict())
