from __future__ import annotations

import json
import uuid

from django.conf import settings
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic


def test_messages_make_a_round_trip_through_the_real_broker() -> None:
    topic = f"test.roundtrip.{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS)
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    admin.close()

    producer = KafkaProducer(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, acks="all",
                             key_serializer=str.encode, value_serializer=lambda v: json.dumps(v).encode())
    sent = [{"id": i, "headline": f"headline {i}"} for i in range(30)]
    for item in sent:
        producer.send(topic, key=str(item["id"]), value=item)
    producer.flush(timeout=30)
    producer.close()

    consumer = KafkaConsumer(topic, bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, group_id=f"g-{topic}",
                             auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=20000,
                             value_deserializer=lambda b: json.loads(b))
    received = []
    for message in consumer:
        received.append(message.value)
        if len(received) == len(sent):
            break
    partitions = consumer.partitions_for_topic(topic)
    consumer.close()
    assert sorted(received, key=lambda v: v["id"]) == sent
    assert partitions == {0, 1, 2}
