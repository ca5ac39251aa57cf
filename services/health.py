"""Reachability checks for the backing services, with messages that say how to fix them."""
from __future__ import annotations

import socket
from dataclasses import asdict, dataclass
from urllib.parse import urlparse

from services.errors import ServiceUnavailable

HOW_TO_START = {
    "Redis": "start it with `make services` (or `deploy/redis.sh start`), or point REDIS_URL at a running Redis",
    "Kafka": "start it with `make services` (or `deploy/kafka.sh start`), or point KAFKA_BOOTSTRAP_SERVERS at a running broker",
}


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    address: str
    ok: bool
    detail: str

    @property
    def message(self) -> str:
        if self.ok:
            return f"{self.name} is reachable at {self.address}."
        return f"{self.name} is not reachable at {self.address} ({self.detail}); {HOW_TO_START.get(self.name, 'start it')}."

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "message": self.message}


def _redis_address(url: str) -> str:
    parsed = urlparse(url)
    return f"{parsed.hostname}:{parsed.port or 6379}"


def redis_check(*, url: str, timeout: float = 1.0) -> ServiceStatus:
    """Ping Redis at `url`."""
    import redis

    address = _redis_address(url)
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
    except redis.RedisError as exc:
        return ServiceStatus("Redis", address, False, _reason(exc))
    return ServiceStatus("Redis", address, True, "PONG")


def kafka_check(*, bootstrap_servers: str, timeout: float = 3.0) -> ServiceStatus:
    """Connect to the first reachable bootstrap server and ask it for cluster metadata."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    servers = [s.strip() for s in bootstrap_servers.split(",") if s.strip()]
    # A plain TCP probe first: kafka-python would otherwise retry for its full timeout.
    from services.kafka_config import kafka_client_options

    reachable = [s for s in servers if _tcp_open(s, timeout)]
    if not reachable:
        return ServiceStatus("Kafka", bootstrap_servers, False, "connection refused or timed out")
    try:
        admin = KafkaAdminClient(
            **kafka_client_options(bootstrap_servers=reachable),  # the suite's TLS/SASL options, as every client
            request_timeout_ms=int(timeout * 1000),
            client_id="suite-health",
        )
        try:
            brokers = admin.describe_cluster().get("brokers", [])
        finally:
            admin.close()
    except KafkaError as exc:
        return ServiceStatus("Kafka", bootstrap_servers, False, _reason(exc))
    return ServiceStatus("Kafka", bootstrap_servers, True, f"{len(brokers)} broker(s)")


def service_require(status: ServiceStatus) -> ServiceStatus:
    """Raise ServiceUnavailable with the status's message unless it is ok."""
    if not status.ok:
        raise ServiceUnavailable(status.message)
    return status


def _tcp_open(server: str, timeout: float) -> bool:
    host, _, port = server.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
