"""The suite's Prometheus series, served by GET /metrics (apps/core/operators.py) when SUITE_METRICS_TOKEN is set.

Three kinds of series, because the suite runs as several processes (Daphne web processes, Celery workers, the
Kafka consumer), possibly on several hosts:
1. Per process, in memory (prometheus-client's default REGISTRY): what the serving process itself did —
   inference batch sizes and latency per task, support answers vs handoffs, recommendation latency, the
   revision and size of each in-memory vector index (vector_index_observe, called after every sync), and on
   workers the Celery tasks run by outcome. Each web process serves its own; Prometheus scrapes every web
   process (each host's /metrics) and sums them. Celery workers have no web server: with
   SUITE_WORKER_METRICS_PORT set, each worker serves this registry itself (worker_exporter_start, from
   config/celery.py); prometheus-client's multiprocess mode was not chosen because it needs one shared folder
   per host wiped at every start, and the suite's workers run a thread pool (one process, one registry).
2. Cluster-wide, read from the database at scrape time (DatabaseCollector): what any process did and recorded —
   sentiment alerts raised by kind, retraining runs by outcome.
3. Cluster-wide, read from Redis at scrape time (KafkaLagCollector): the Kafka consumer lag per partition, as
   the news consumers measured and published it (services/kafka_lag.py); no scrape touches Kafka.
Every host reports the same figures for 2 and 3, so dashboards take max() over hosts for these, not sum(). They
live in CLUSTER_REGISTRY, which /metrics serves and a worker's exporter does not (it would repeat them).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

# Batch sizes follow SUITE_BATCH_MAX (64 by default); latency buckets span a tiny CPU model to a large batch.
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

INFERENCE_BATCH_SIZE = Histogram("suite_inference_batch_size", "Texts per micro-batch run through the encoder.",
                                 ["task", "kind"], buckets=_SIZE_BUCKETS)
INFERENCE_SECONDS = Histogram("suite_inference_seconds", "Time to run one micro-batch (classify or embed).",
                              ["task", "kind"], buckets=_SECONDS_BUCKETS)
SUPPORT_REPLIES = Counter("suite_support_replies", "Customer messages answered by the bot or handed off to an agent.",
                          ["outcome", "reason"])
RECOMMEND_SECONDS = Histogram("suite_recommend_seconds", "Time to compute recommendations.", ["kind"],
                              buckets=_SECONDS_BUCKETS)
# Labels stay bounded: a space is one of a few index families (the catalogue, one per knowledge base), an encoder
# is the version that built the vectors; a replaced encoder's series is removed when the process switches.
VECTOR_INDEX_REVISION = Gauge("suite_vector_index_revision",
                              "Revision of the vectors this process's in-memory index is current with.",
                              ["space", "encoder"])
VECTOR_INDEX_SIZE = Gauge("suite_vector_index_size", "Vectors held by this process's in-memory index.",
                          ["space", "encoder"])
# Celery tasks are a fixed set of names (config/celery.py's routes): a bounded label.
CELERY_TASKS = Counter("suite_celery_tasks", "Celery tasks run by this worker, by task name and outcome (Celery's state).",
                       ["task", "outcome"])
CELERY_TASK_SECONDS = Histogram("suite_celery_task_seconds", "Time a Celery task ran on this worker.", ["task"],
                                buckets=(0.01, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0, 7200.0))
_vector_index_encoders: dict[str, str] = {}
_vector_index_lock = threading.Lock()


def inference_observe(*, task: str | None, kind: str, size: int, seconds: float) -> None:
    """Record one micro-batch: its number of texts and how long the runtime took (task None: the base encoder)."""
    labels = {"task": task or "base", "kind": kind}
    INFERENCE_BATCH_SIZE.labels(**labels).observe(size)
    INFERENCE_SECONDS.labels(**labels).observe(seconds)


def support_reply_count(*, handoff: bool, reason: str) -> None:
    """Record one customer message: answered by the bot, or handed off (reason: empty_kb, out_of_scope, ...)."""
    SUPPORT_REPLIES.labels(outcome="handoff" if handoff else "answered", reason=reason or "unknown").inc()


def vector_index_observe(*, space: str, encoder: str, revision: int, size: int) -> None:
    """Record a process's in-memory index after a sync: the revision it reached and how many vectors it holds.

    1. A space served by a new encoder drops the old encoder's series (one series per space, not one per
       encoder ever used). 2. Set both gauges.
    """
    if not space or not encoder:
        raise ValueError("vector_index_observe needs a space and an encoder (got empty).")
    with _vector_index_lock:  # syncs run in several threads of one process
        previous = _vector_index_encoders.get(space)
        if previous is not None and previous != encoder:
            for gauge in (VECTOR_INDEX_REVISION, VECTOR_INDEX_SIZE):
                try:
                    gauge.remove(space, previous)
                except KeyError:
                    pass
        _vector_index_encoders[space] = encoder
        VECTOR_INDEX_REVISION.labels(space=space, encoder=encoder).set(revision)
        VECTOR_INDEX_SIZE.labels(space=space, encoder=encoder).set(size)


def task_observe(*, task: str, outcome: str, seconds: float | None) -> None:
    """Record one Celery task run: outcome is Celery's state lower-cased (success, failure, retry, ...)."""
    CELERY_TASKS.labels(task=task, outcome=outcome.lower() or "unknown").inc()
    if seconds is not None:
        CELERY_TASK_SECONDS.labels(task=task).observe(seconds)


def worker_exporter_start(*, addr: str, port: int) -> object:
    """Serve this process's registry (per-process series only) on http://addr:port/ in a daemon thread.

    Returns the server (its .server_address tells the port when 0 was asked for). Raises OSError when the port
    is taken; the caller decides whether that stops the process.
    """
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=addr, registry=REGISTRY)
    return server


class DatabaseCollector(Collector):
    """Cluster-wide counts read from the database at each scrape: alerts by kind, retraining runs by outcome."""

    def describe(self) -> list[GaugeMetricFamily]:
        """The families without samples: registering must not query (the apps may not be loaded yet)."""
        return [GaugeMetricFamily("suite_sentiment_alerts", "", labels=["kind"]),
                GaugeMetricFamily("suite_retrain_runs", "", labels=["task", "outcome"])]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """1. Count in two grouped queries. 2. A database error yields nothing (the scrape still answers)."""
        from django.db import DatabaseError
        from django.db.models import Count

        from apps.registry.models import RetrainRun
        from apps.sentiment.models import Alert

        try:
            alerts = list(Alert.objects.order_by().values("kind").annotate(n=Count("id")))
            runs = list(RetrainRun.objects.order_by().values("task__name", "status").annotate(n=Count("id")))
        except DatabaseError as exc:
            logger.warning("metrics: database series skipped (%s)", type(exc).__name__)
            return
        alert_family = GaugeMetricFamily("suite_sentiment_alerts", "Sentiment alerts raised (rows in the database), by kind.",
                                         labels=["kind"])
        for row in alerts:
            alert_family.add_metric([row["kind"]], row["n"])
        yield alert_family
        run_family = GaugeMetricFamily("suite_retrain_runs", "Retraining runs (rows in the database), by task and outcome.",
                                       labels=["task", "outcome"])
        for row in runs:
            run_family.add_metric([row["task__name"], row["status"]], row["n"])
        yield run_family


class KafkaLagCollector(Collector):
    """suite_kafka_consumer_lag{group,topic,partition}: what the consumers published in Redis and is not stale."""

    def describe(self) -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily("suite_kafka_consumer_lag", "", labels=["group", "topic", "partition"])]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """1. Read the published entries (Redis only). 2. Redis unreachable: nothing (the scrape still answers)."""
        import redis

        from services.kafka_lag import lag_published

        try:
            entries = lag_published()
        except redis.RedisError as exc:
            logger.warning("metrics: Kafka lag skipped (%s)", type(exc).__name__)
            return
        family = GaugeMetricFamily("suite_kafka_consumer_lag",
                                   "Messages not yet committed by the consumer group, per partition, as measured and "
                                   "published by the consumer that owns it.", labels=["group", "topic", "partition"])
        for entry in entries:
            family.add_metric([entry.group, entry.topic, str(entry.partition)], entry.lag)
        yield family


CLUSTER_REGISTRY = CollectorRegistry(auto_describe=True)
CLUSTER_REGISTRY.register(DatabaseCollector())
CLUSTER_REGISTRY.register(KafkaLagCollector())


def metrics_render() -> tuple[bytes, str]:
    """(body, content type) of every series, this process's and the cluster-wide ones, in Prometheus' text format."""
    return generate_latest(REGISTRY) + generate_latest(CLUSTER_REGISTRY), CONTENT_TYPE_LATEST
