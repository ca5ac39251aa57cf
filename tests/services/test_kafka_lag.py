"""Published consumer lag in the real Redis: owners overwrite, stale entries vanish, readers never see them."""
from __future__ import annotations

import json
import uuid

import pytest

from services.kafka_lag import LAG_KEY, lag_publish, lag_published, lag_withdraw, redis_client
from tests.helpers import wait_until


@pytest.fixture
def group() -> str:
    return f"g-lag-{uuid.uuid4().hex[:8]}"


def _fields(group: str) -> set[tuple[str, int, str]]:
    """(topic, partition, consumer) of every entry of `group` still in the hash, stale or not."""
    out = set()
    for field, value in redis_client().hgetall(LAG_KEY).items():
        g, topic, partition = json.loads(field)
        if g == group:
            out.add((topic, partition, json.loads(value)["consumer"] if value.startswith(b"{") else "damaged"))
    return out


def test_the_lag_is_end_minus_committed_and_the_whole_end_before_a_first_commit(group: str) -> None:
    written = lag_publish(client=redis_client(), group=group, consumer="a", host="h1", ttl_s=60,
                          offsets={("t.raw", 0): (10, 4), ("t.raw", 1): (7, None), ("t.raw", 2): (3, 5)})
    assert [(e.partition, e.lag) for e in written] == [(0, 6), (1, 7), (2, 0)]  # a committed past the end is 0, not -2
    read = lag_published(group=group)
    assert [(e.topic, e.partition, e.lag, e.end, e.committed, e.consumer, e.host) for e in read] == [
        ("t.raw", 0, 6, 10, 4, "a", "h1"), ("t.raw", 1, 7, 7, None, "a", "h1"), ("t.raw", 2, 0, 3, 5, "a", "h1")]
    assert all(e.expires_at - e.measured_at == pytest.approx(60) for e in read)
    assert [e.partition for e in lag_published(group=group, topic="other")] == []


def test_an_entry_not_refreshed_expires_for_readers_and_is_pruned_by_the_next_publisher(group: str) -> None:
    client = redis_client()
    lag_publish(client=client, group=group, consumer="dead", host="h1", ttl_s=0.5, offsets={("t.raw", 0): (5, 1)})
    lag_publish(client=client, group=group, consumer="alive", host="h2", ttl_s=60, offsets={("t.raw", 1): (9, 9)})
    assert {(e.partition, e.consumer) for e in lag_published(group=group)} == {(0, "dead"), (1, "alive")}

    wait_until(lambda: [e.partition for e in lag_published(group=group)] == [1], timeout=10,
               message="the dead consumer's entry was still read after its expiry")
    assert ("t.raw", 0, "dead") in _fields(group)  # readers do not write: it is still stored ...
    lag_publish(client=client, group=group, consumer="alive", host="h2", ttl_s=60, offsets={("t.raw", 1): (9, 9)})
    assert _fields(group) == {("t.raw", 1, "alive")}  # ... until any publisher prunes it


def test_a_partition_that_moved_is_owned_by_its_new_publisher_and_dropped_by_the_old_one(group: str) -> None:
    client = redis_client()
    lag_publish(client=client, group=group, consumer="a", host="h1", ttl_s=60,
                offsets={("t.raw", 0): (5, 5), ("t.raw", 1): (8, 2)})
    lag_publish(client=client, group=group, consumer="b", host="h2", ttl_s=60, offsets={("t.raw", 1): (9, 3)})
    assert {(e.partition, e.consumer, e.lag) for e in lag_published(group=group)} == {(0, "a", 0), (1, "b", 6)}
    # After the rebalance `a` owns only partition 0: its publish must not delete b's partition 1.
    lag_publish(client=client, group=group, consumer="a", host="h1", ttl_s=60, offsets={("t.raw", 0): (6, 5)})
    assert {(e.partition, e.consumer, e.lag) for e in lag_published(group=group)} == {(0, "a", 1), (1, "b", 6)}
    lag_withdraw(client=client, consumer="a")  # a clean stop
    assert {(e.partition, e.consumer) for e in lag_published(group=group)} == {(1, "b")}


def test_a_damaged_entry_is_ignored_by_readers_and_removed_by_publishers(group: str) -> None:
    client = redis_client()
    client.hset(LAG_KEY, json.dumps([group, "t.raw", 0]), b"not json")
    assert lag_published(group=group) == []
    lag_publish(client=client, group=group, consumer="a", host="h1", ttl_s=60, offsets={})
    assert _fields(group) == set() and client.hget(LAG_KEY, json.dumps([group, "t.raw", 0])) is None


def test_a_ttl_that_is_not_positive_is_refused(group: str) -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        lag_publish(client=redis_client(), group=group, consumer="a", host="h", ttl_s=0, offsets={})
