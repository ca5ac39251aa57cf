"""The sentiment topics on Kafka: names, idempotent creation, producers and consumer lag."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from services.errors import ServiceUnavailable, SuiteError
from services.health import kafka_check, service_require
from services.kafka_config import kafka_client_options, kafka_servers

DEFAULT_GROUP = "news-consumer"


@dataclass(frozen=True)
class Topics:
    raw: str
    scored: str
    dlq: str

    @classmethod
    def named(cls, prefix: str = "news") -> Topics:
        """`news.raw`, `news.scored`, `news.dlq` (tests use their own prefix so runs never share topics)."""
        return cls(raw=f"{prefix}.raw", scored=f"{prefix}.scored", dlq=f"{prefix}.dlq")

    def all(self) -> list[str]:
        return [self.raw, self.scored, self.dlq]


def topics_default() -> Topics:
    return Topics.named(getattr(settings, "NEWS_TOPIC_PREFIX", "news"))


def servers() -> list[str]:
    return kafka_servers()


def kafka_require() -> None:
    """Raise ServiceUnavailable (naming the address and how to start Kafka) when the broker is down."""
    service_require(kafka_check(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS))


def topics_ensure(*, topics: Topics, partitions: int | None = None, replication: int | None = None) -> list[str]:
    """Create the topics that do not exist yet (partitioned, replicated); returns the ones created. Safe to run any time.

    `partitions` (how many consumers can share the work) defaults to the NEWS_TOPIC_PARTITIONS setting, `replication`
    (copies of each partition on different brokers) to NEWS_TOPIC_REPLICATION. An existing topic is left as it is.
    """
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import InvalidReplicationFactorError, TopicAlreadyExistsError

    partitions = settings.NEWS_TOPIC_PARTITIONS if partitions is None else partitions
    replication = settings.NEWS_TOPIC_REPLICATION if replication is None else replication
    if partitions < 1 or replication < 1:
        raise SuiteError(f"A topic needs at least 1 partition and 1 replica (got {partitions} and {replication}).",
                         field="replication" if replication < 1 else "partitions")
    kafka_require()
    admin = KafkaAdminClient(**kafka_client_options(), client_id="news-topics")
    try:
        missing = [t for t in topics.all() if t not in set(admin.list_topics())]
        created = []
        for name in missing:  # one at a time: a concurrent creator makes only that topic's call fail
            try:
                admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=replication)])
                created.append(name)
            except TopicAlreadyExistsError:
                pass
            except InvalidReplicationFactorError:
                raise SuiteError(f"Kafka refused topic {name!r} with {replication} replicas: the cluster has fewer brokers "
                                 "(lower NEWS_TOPIC_REPLICATION).", field="replication") from None
        return created
    finally:
        admin.close()


def producer_make(**overrides: Any) -> Any:
    """A KafkaProducer that waits for the broker's acknowledgement and sends JSON values with string keys."""
    from kafka import KafkaProducer

    options = {**kafka_client_options(), "acks": "all", "linger_ms": 5, "retries": 5,
               "key_serializer": lambda k: k.encode() if isinstance(k, str) else k,
               "value_serializer": lambda v: v if isinstance(v, bytes) else json.dumps(v).encode()}
    return KafkaProducer(**{**options, **overrides})


def _offsets_measure(admin: Any, consumer: Any, group: str, tps: list, *, wait_s: float = 15.0) -> dict:
    """kafka_offsets_measure, waiting out retriable broker errors (on a fresh broker the group coordinator, i.e. the
    __consumer_offsets topic, takes a few seconds to appear: COORDINATOR_NOT_AVAILABLE)."""
    import time

    from kafka.errors import KafkaError

    from services.kafka_lag import kafka_offsets_measure

    deadline = time.monotonic() + wait_s
    while True:
        try:
            return kafka_offsets_measure(admin=admin, consumer=consumer, group=group, partitions=tps)
        except KafkaError as exc:
            if not getattr(exc, "retriable", False) or time.monotonic() > deadline:
                raise ServiceUnavailable(f"Kafka could not report the offsets of consumer group {group!r} ({type(exc).__name__}); "
                                 "try again in a moment.", field="group") from None
            time.sleep(0.5)


def lag_get(*, group: str = DEFAULT_GROUP, topic: str | None = None) -> dict[str, Any]:
    """Consumer lag of `group` on the raw topic: per partition and in total (end offset − committed offset), measured
    as the consumers' published lag is (services/kafka_lag.py)."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.admin import KafkaAdminClient

    topic = topic or topics_default().raw
    admin = KafkaAdminClient(**kafka_client_options(), client_id="news-lag", request_timeout_ms=5000)
    consumer = KafkaConsumer(**kafka_client_options(), client_id="news-lag", request_timeout_ms=5000)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or set())]
        offsets = _offsets_measure(admin, consumer, group, tps)
        per = {partition: max(end - (done or 0), 0) for (_, partition), (end, done) in offsets.items()}
        return {"group": group, "topic": topic, "partitions": per, "total": sum(per.values())}
    finally:
        consumer.close()
        admin.close()
