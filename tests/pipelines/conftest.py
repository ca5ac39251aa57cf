"""Fixtures for the Kafka pipelines: private topics on the real test broker, a word-list classifier, readers."""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from django.conf import settings

from services.ml.runtime import ClassifyOutput
from services.sentiment.bus import Topics, producer_make, topics_ensure

LABEL_NAMES = ["bearish", "bullish", "neutral"]  # as the public Twitter financial set (0, 1, 2)
UP = {"soars", "beats", "upgrade", "record", "rally", "surges"}
DOWN = {"plunges", "misses", "downgrade", "loss", "slump", "cuts"}


def words_classify(texts: list[str]) -> ClassifyOutput:
    """A deterministic stand-in for the model (the model path has its own end-to-end test): counts cue words."""
    probs = []
    for text in texts:
        words = set(text.lower().replace("$", " ").split())
        up, down = len(words & UP), len(words & DOWN)
        probs.append([0.8, 0.1, 0.1] if down > up else [0.1, 0.8, 0.1] if up > down else [0.1, 0.1, 0.8])
    probs_arr = np.array(probs, dtype=np.float32)
    return ClassifyOutput([LABEL_NAMES[i] for i in probs_arr.argmax(axis=1)], probs_arr, LABEL_NAMES, 7)


@pytest.fixture
def news_topics() -> Topics:
    """Topics of this test only (3 partitions each), created on the real broker."""
    topics = Topics.named(f"test-{uuid.uuid4().hex[:10]}.news")
    topics_ensure(topics=topics, partitions=3)
    return topics


def news_message(i: int, **fields: Any) -> dict[str, Any]:
    words = ["beats", "record"] if i % 3 == 0 else ["plunges", "loss"] if i % 3 == 1 else ["holds", "meeting"]
    return {"id": f"n{i}", "source": "wire" if i % 2 else "blog", "published_at": "2026-01-05T10:%02d:00Z" % (i % 60),
            "headline": f"$ACME {' '.join(words)} item {i}", **fields}


def messages_produce(topic: str, values: list[dict[str, Any] | bytes], *, partitions: int | None = None) -> None:
    """Send `values` keyed by their source; with `partitions`, spread them round-robin over that many partitions."""
    producer = producer_make()
    for i, value in enumerate(values):
        key = value.get("source", "x") if isinstance(value, dict) else "raw"
        producer.send(topic, key=key, value=value, partition=None if partitions is None else i % partitions)
    producer.flush(timeout=30)
    producer.close()


def topic_read(topic: str, *, count: int, timeout_s: float = 60,
               until: Callable[[list[dict[str, Any]]], bool] | None = None) -> list[dict[str, Any]]:
    """Read `count` JSON messages (or until `until(read so far)`) from the start of `topic`, waiting up to `timeout_s`."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, group_id=f"reader-{uuid.uuid4().hex}",
                             auto_offset_reset="earliest", enable_auto_commit=False)
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while not (until(out) if until else len(out) >= count) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                out.extend(json.loads(r.value) for r in records)
    finally:
        consumer.close()
    return out


class ProducerCapture:
    """Stands in for the Kafka producer in in-process tests of batch_process: keeps what was sent, per topic."""

    def __init__(self) -> None:
        self.sent: dict[str, list[dict[str, Any]]] = {}

    def send(self, topic: str, *, key: Any = None, value: Any = None, **_: Any) -> None:
        json.dumps(value)  # what the real producer's serializer does: a value it cannot write fails here too
        self.sent.setdefault(topic, []).append(value)

    def flush(self, timeout: float | None = None) -> None:
        pass


def record_make(value: bytes | None, *, offset: int, topic: str = "t.raw", key: bytes | None = b"k",
                timestamp: int | None = None) -> Any:
    """A polled Kafka record as batch_process reads it."""
    from types import SimpleNamespace

    return SimpleNamespace(topic=topic, partition=0, offset=offset, key=key, value=value,
                           timestamp=int(time.time() * 1000) if timestamp is None else timestamp)
