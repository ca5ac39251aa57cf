"""The news consumer measures its own lag on the real broker and publishes it; /metrics exports what it published."""
from __future__ import annotations

import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.test import Client, override_settings

from pipelines.news_consumer import news_consume
from services.kafka_lag import lag_published
from tests.helpers import wait_until
from tests.pipelines.conftest import messages_produce, news_message, words_classify

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "metrics-token-for-lag-tests-0123456789"


def _lag_series(client: Client, group: str) -> dict[int, float]:
    """suite_kafka_consumer_lag of `group`, by partition, from a real scrape of /metrics."""
    with override_settings(SUITE_METRICS_TOKEN=TOKEN):
        text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("suite_kafka_consumer_lag{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
            if labels["group"] == group:
                out[int(labels["partition"])] = float(line.rsplit(" ", 1)[1])
    return out


def test_lag_published_by_a_consumer_shows_per_partition_in_metrics_then_drops_to_zero_and_goes_with_it(
        news_topics) -> None:  # noqa: ANN001
    from django.db import connection

    group = f"g-lag-{uuid.uuid4().hex[:8]}"
    # 5 messages on partition 0, 2 on partition 1, none on partition 2: n0..n3 alternate over 0 and 1, n4..n6 go to 0.
    messages_produce(news_topics.raw, [news_message(i) for i in range(4)], partitions=2)
    messages_produce(news_topics.raw, [news_message(i) for i in range(4, 7)], partitions=1)
    release, stop = threading.Event(), threading.Event()

    def held_classify(texts: list[str]):  # noqa: ANN202 - the first batch waits: nothing is committed meanwhile
        release.wait(60)
        return words_classify(texts)

    def consume() -> int:
        try:
            return news_consume(group=group, topics=news_topics, batch_size=20, classify=held_classify, after_store=None,
                                stop=stop, lag_every_s=0.3).stored
        finally:
            connection.close()

    client = Client()
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(consume)
        try:
            # While the consumer holds its batch, the lag is every produced message of each partition it owns.
            wait_until(lambda: _lag_series(client, group) == {0: 5.0, 1: 2.0, 2: 0.0}, timeout=60,
                       message=lambda: f"published lag never matched; /metrics shows {_lag_series(client, group)}")
            entries = lag_published(group=group, topic=news_topics.raw)
            assert [(e.partition, e.end, e.committed) for e in entries] == [(0, 5, None), (1, 2, None), (2, 0, None)]
            assert len({e.consumer for e in entries}) == 1 and entries[0].host
            release.set()
            wait_until(lambda: _lag_series(client, group) == {0: 0.0, 1: 0.0, 2: 0.0}, timeout=60,
                       message=lambda: f"the lag did not fall to 0 after the commit; /metrics shows {_lag_series(client, group)}")
        finally:
            release.set()
            stop.set()
        assert future.result(timeout=60) == 7
    # A consumer that stops cleanly withdraws its entries: nothing stale is left behind in /metrics.
    assert _lag_series(client, group) == {}
    assert lag_published(group=group) == []


def test_a_consumer_without_publication_leaves_no_lag_behind(news_topics) -> None:  # noqa: ANN001
    group = f"g-nolag-{uuid.uuid4().hex[:8]}"
    messages_produce(news_topics.raw, [news_message(i) for i in range(3)])
    stats = news_consume(group=group, topics=news_topics, batch_size=8, max_messages=3, idle_exit_seconds=20,
                         classify=words_classify, after_store=None, lag_every_s=0)
    assert stats.stored == 3
    assert lag_published(group=group) == []


def test_the_lag_of_a_consumer_that_died_without_withdrawing_vanishes_from_metrics(news_topics) -> None:  # noqa: ANN001
    from kafka import TopicPartition

    from services.kafka_lag import LagPublisher

    group = f"g-dead-{uuid.uuid4().hex[:8]}"
    messages_produce(news_topics.raw, [news_message(i) for i in range(3)], partitions=1)
    owned = frozenset({TopicPartition(news_topics.raw, 0)})
    publisher = LagPublisher(group=group, owned=lambda: owned, every_s=0.2, ttl_s=1.5).start()
    client = Client()
    try:
        wait_until(lambda: _lag_series(client, group) == {0: 3.0}, timeout=60,
                   message=lambda: f"the publisher's lag never showed; /metrics shows {_lag_series(client, group)}")
    finally:
        publisher.stop(withdraw=False)  # as a killed process: its entry stays in Redis until it expires
    assert [e.partition for e in lag_published(group=group)] in ([0], [])
    wait_until(lambda: _lag_series(client, group) == {}, timeout=30,
               message=lambda: f"a stale entry was still exported: {_lag_series(client, group)}")
