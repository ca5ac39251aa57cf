"""Topic creation follows NEWS_TOPIC_PARTITIONS and NEWS_TOPIC_REPLICATION (real broker, private topic names)."""
from __future__ import annotations

import uuid

import pytest

from services.errors import SuiteError
from services.sentiment.bus import Topics, servers, topics_ensure


def _describe(topic: str) -> dict:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=servers(), client_id="test-topics")
    try:
        return admin.describe_topics([topic])[0]
    finally:
        admin.close()


def test_new_topics_get_the_partitions_and_replication_of_the_settings(settings) -> None:  # noqa: ANN001
    settings.NEWS_TOPIC_PARTITIONS = 2
    settings.NEWS_TOPIC_REPLICATION = 1
    topics = Topics.named(f"test-{uuid.uuid4().hex[:10]}.news")
    assert sorted(topics_ensure(topics=topics)) == sorted(topics.all())
    described = _describe(topics.raw)
    assert len(described["partitions"]) == 2
    assert [len(p["replica_nodes"]) for p in described["partitions"]] == [1, 1]
    assert topics_ensure(topics=topics) == []  # idempotent: existing topics are left as they are


def test_a_replication_factor_above_the_broker_count_is_refused_naming_the_setting(settings) -> None:  # noqa: ANN001
    settings.NEWS_TOPIC_REPLICATION = 3  # the test cluster has one broker: proves the setting reaches Kafka
    topics = Topics.named(f"test-{uuid.uuid4().hex[:10]}.news")
    with pytest.raises(SuiteError, match="NEWS_TOPIC_REPLICATION") as caught:
        topics_ensure(topics=topics)
    assert caught.value.field == "replication"


def test_a_replication_below_one_is_refused_before_reaching_kafka() -> None:
    with pytest.raises(SuiteError) as caught:
        topics_ensure(topics=Topics.named("never-created"), replication=0)
    assert caught.value.field == "replication"
