"""Kafka consumer lag measured by the consumers themselves and published in Redis for /metrics and the dashboard.

Each consumer process runs a LagPublisher beside its poll loop. Every few seconds it measures, for the partitions
it owns, end offset − committed offset, and writes one entry per partition into one Redis hash:

    suite:kafka-lag   field ["<group>", "<topic>", <partition>]   value {"lag", "end", "committed", "consumer",
                                                                         "host", "measured_at", "expires_at"}

Times are Redis's own clock (TIME), so hosts with skewed clocks agree on what is stale. A partition's entry is
overwritten by whichever consumer owns it now; one that nobody refreshes (its consumer died, the partition moved and
its new owner has not measured yet) is past its `expires_at` and is dropped by readers and publishers alike. A
consumer that stops cleanly withdraws its own entries. Readers (lag_published) never touch Kafka.

The measurement runs in its own thread with its own Kafka clients (KafkaConsumer is not thread-safe): lag is still
reported, and grows, while the consumer's loop is busy with a long batch — the moment it matters most.
"""
from __future__ import annotations

import json
import logging
import socket
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("services.kafka_lag")

LAG_KEY = "suite:kafka-lag"
KEY_TTL_S = 3600  # the hash itself goes an hour after the last publish of any consumer (entries expire sooner)


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    lag: int  # end − committed (end when nothing was committed yet), never negative
    end: int  # the partition's end offset (the next offset to be written)
    committed: int | None  # the group's committed offset, None before its first commit
    consumer: str  # the publishing consumer's id (host:pid:random)
    host: str
    measured_at: float  # Redis server time, seconds
    expires_at: float

    def as_dict(self) -> dict[str, Any]:
        return {"group": self.group, "topic": self.topic, "partition": self.partition, "lag": self.lag, "end": self.end,
                "committed": self.committed, "consumer": self.consumer, "host": self.host,
                "measured_at": self.measured_at, "expires_at": self.expires_at}


_clients: dict[str, Any] = {}  # REDIS_URL -> client (its pool is thread-safe); one per process, not per call


def redis_client() -> Any:
    """A client on REDIS_URL (TLS and password come with the URL), with short timeouts: lag is never worth a wait."""
    import redis
    from django.conf import settings

    client = _clients.get(settings.REDIS_URL)
    if client is None:
        client = _clients[settings.REDIS_URL] = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2.0,
                                                                     socket_timeout=2.0)
    return client


def _server_now(client: Any) -> float:
    seconds, micros = client.time()
    return seconds + micros / 1e6


def _field(group: str, topic: str, partition: int) -> str:
    return json.dumps([group, topic, partition])


def _decode(field: bytes, value: bytes) -> PartitionLag | None:
    try:
        group, topic, partition = json.loads(field)
        v = json.loads(value)
        return PartitionLag(group=group, topic=topic, partition=int(partition), lag=int(v["lag"]), end=int(v["end"]),
                            committed=None if v.get("committed") is None else int(v["committed"]),
                            consumer=str(v["consumer"]), host=str(v["host"]), measured_at=float(v["measured_at"]),
                            expires_at=float(v["expires_at"]))
    except (ValueError, KeyError, TypeError):
        return None  # not ours or damaged: treated as stale and removed


def lag_publish(*, client: Any, group: str, consumer: str, host: str, ttl_s: float,
                offsets: dict[tuple[str, int], tuple[int, int | None]]) -> list[PartitionLag]:
    """Write this consumer's lag for the partitions it owns; `offsets` maps (topic, partition) to (end, committed).

    1. Under WATCH, read the hash: entries past their expiry (anyone's) and this consumer's entries for partitions
       it no longer owns are deleted with the write.
    2. One entry per owned partition, stamped with Redis's time and `ttl_s` later as its expiry.
    3. Another publisher writing meanwhile makes the transaction fail: it is redone on the new contents.
    """
    import redis

    if ttl_s <= 0:
        raise ValueError(f"ttl_s must be positive (got {ttl_s}).")
    mine = {_field(group, topic, partition) for topic, partition in offsets}
    with client.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(LAG_KEY)
                now = _server_now(pipe)
                drop = []
                for f, v in pipe.hgetall(LAG_KEY).items():
                    entry = _decode(f, v)
                    if entry is None or entry.expires_at <= now or (
                            entry.consumer == consumer and f.decode() not in mine):
                        drop.append(f)
                written = []
                for (topic, partition), (end, committed) in sorted(offsets.items()):
                    done = committed if committed is not None and committed >= 0 else 0
                    written.append(PartitionLag(group=group, topic=topic, partition=partition, lag=max(end - done, 0),
                                                end=end, committed=committed, consumer=consumer, host=host,
                                                measured_at=now, expires_at=now + ttl_s))
                pipe.multi()
                if drop:
                    pipe.hdel(LAG_KEY, *drop)
                if written:
                    pipe.hset(LAG_KEY, mapping={_field(e.group, e.topic, e.partition): _value(e) for e in written})
                    pipe.expire(LAG_KEY, KEY_TTL_S)
                pipe.execute()
                return written
            except redis.WatchError:
                continue


def _value(entry: PartitionLag) -> str:
    return json.dumps({k: v for k, v in entry.as_dict().items() if k not in ("group", "topic", "partition")})


def lag_withdraw(*, client: Any, consumer: str) -> None:
    """Delete the entries `consumer` published (a clean stop: it owns nothing now). Another owner's entries stay."""
    lag_publish(client=client, group="", consumer=consumer, host="", ttl_s=1.0, offsets={})


def lag_published(*, client: Any | None = None, group: str | None = None, topic: str | None = None) -> list[PartitionLag]:
    """The entries not yet expired, optionally of one group and topic, sorted. Read-only (publishers prune).

    Raises redis.RedisError when Redis cannot be reached (callers decide what to show).
    """
    client = client or redis_client()
    now = _server_now(client)
    live = []
    for f, v in client.hgetall(LAG_KEY).items():
        entry = _decode(f, v)
        if entry is not None and entry.expires_at > now and (group is None or entry.group == group) and (
                topic is None or entry.topic == topic):
            live.append(entry)
    return sorted(live, key=lambda e: (e.group, e.topic, e.partition))


def kafka_offsets_measure(*, admin: Any, consumer: Any, group: str,
                          partitions: Iterable[Any]) -> dict[tuple[str, int], tuple[int, int | None]]:
    """(end, committed) of each TopicPartition: end offsets from the broker, the group's committed offsets from its
    coordinator. `consumer` is a group-less KafkaConsumer and `admin` a KafkaAdminClient, both owned by the caller."""
    tps = sorted(partitions, key=lambda tp: (tp.topic, tp.partition))
    if not tps:
        return {}
    ends = consumer.end_offsets(tps)
    committed = admin.list_group_offsets({group: tps}).get(group, {})
    out = {}
    for tp in tps:
        meta = committed.get(tp)
        out[(tp.topic, tp.partition)] = (int(ends.get(tp, 0)),
                                         meta.offset if meta is not None and meta.offset is not None and meta.offset >= 0 else None)
    return out


def consumer_id_make() -> tuple[str, str]:
    """(consumer id, host name) of this process: host:pid:random, unique across hosts and restarts."""
    import os

    host = socket.gethostname()
    return f"{host}:{os.getpid()}:{uuid.uuid4().hex[:6]}", host


class LagPublisher:
    """A daemon thread that publishes the lag of the partitions `owned()` returns, every `every_s` seconds.

    `owned` is read from this thread: pass something cheap and safe, e.g. a lambda over a frozenset the poll loop
    replaces after each poll (the poll loop's KafkaConsumer itself must not be called from here).
    """

    def __init__(self, *, group: str, owned: Callable[[], frozenset], every_s: float, ttl_s: float | None = None,
                 client: Any | None = None) -> None:
        if every_s <= 0:
            raise ValueError(f"every_s must be positive (got {every_s}).")
        self.group = group
        self.owned = owned
        self.every_s = every_s
        self.ttl_s = ttl_s if ttl_s is not None else max(3 * every_s, 10.0)  # three missed publishes and it is stale
        self.consumer_id, self.host = consumer_id_make()
        self._client = client
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lag-publisher-{group}", daemon=True)
        self.published = 0  # successful publishes (a test waits on it)

    def start(self) -> LagPublisher:
        self._thread.start()
        return self

    def stop(self, *, withdraw: bool = True) -> None:
        """Stop the thread; with `withdraw`, delete this consumer's entries (its partitions move to other members)."""
        self._stop.set()
        self._thread.join(timeout=self.every_s + 10)
        if withdraw:
            try:
                lag_withdraw(client=self._redis(), consumer=self.consumer_id)
            except Exception:  # noqa: BLE001 - the entries then expire on their own
                log.warning("could not withdraw the published lag of %s; it expires in %.0f s", self.consumer_id, self.ttl_s)

    def _redis(self) -> Any:
        if self._client is None:
            self._client = redis_client()
        return self._client

    def _run(self) -> None:
        from kafka import KafkaConsumer
        from kafka.admin import KafkaAdminClient

        from services.kafka_config import kafka_client_options

        admin = consumer = None
        while not self._stop.is_set():
            try:
                owned = self.owned()
                if owned:
                    if consumer is None:
                        consumer = KafkaConsumer(**kafka_client_options(), client_id=f"{self.group}-lag",
                                                 request_timeout_ms=10000)
                        admin = KafkaAdminClient(**kafka_client_options(), client_id=f"{self.group}-lag",
                                                 request_timeout_ms=10000)
                    offsets = kafka_offsets_measure(admin=admin, consumer=consumer, group=self.group, partitions=owned)
                else:
                    offsets = {}  # owns nothing (yet, or after a rebalance): its old entries are replaced by the owners'
                lag_publish(client=self._redis(), group=self.group, consumer=self.consumer_id, host=self.host,
                            ttl_s=self.ttl_s, offsets=offsets)
                self.published += 1
            except Exception as exc:  # noqa: BLE001 - measuring lag must never stop the consumer; the entries expire
                log.warning("lag not published (%s: %s); trying again in %.1f s", type(exc).__name__, str(exc)[:200],
                            self.every_s)
            self._stop.wait(self.every_s)
        for client in (consumer, admin):
            if client is not None:
                try:
                    client.close()
                except Exception:  # noqa: BLE001
                    pass
