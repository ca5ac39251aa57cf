"""Reachability checks for the backing services, with messages that say how to fix them."""
from __future__ import annotations

import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
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

    from services.kafka_config import kafka_client_options

    servers = [s.strip() for s in bootstrap_servers.split(",") if s.strip()]
    # A plain TCP probe first: kafka-python would otherwise retry for its full timeout.
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


# --- Readiness for operators (/readyz): every check named, no addresses, no model loaded ----------------------------
# The probe answers anyone, unauthenticated: a reason says what is wrong in words, never a host, port, path or the
# text of a driver's exception (which carries them). Operators find the address in their own configuration.
ARTIFACT_FILES = ("artifact.json", "adapter_config.json", "adapter_model.safetensors")  # what the runtime loads


@dataclass(frozen=True)
class ReadyCheck:
    name: str
    ok: bool
    reason: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def database_ready() -> ReadyCheck:
    """Run `SELECT 1` on the default database."""
    from django.db import DatabaseError, connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        return ReadyCheck("database", False, f"query failed ({type(exc).__name__})")
    return ReadyCheck("database", True, "query answered")


def redis_ready(*, url: str, timeout: float = 1.0) -> ReadyCheck:
    """Ping Redis; the reason never repeats the address or the client's error text."""
    status = redis_check(url=url, timeout=timeout)
    return ReadyCheck("redis", status.ok, "ping answered" if status.ok else "not reachable")


def kafka_ready(*, bootstrap_servers: str, timeout: float = 1.0) -> ReadyCheck:
    """Ask the brokers for cluster metadata; the reason never repeats an address."""
    status = kafka_check(bootstrap_servers=bootstrap_servers, timeout=timeout)
    return ReadyCheck("kafka", status.ok, "cluster metadata answered" if status.ok else "not reachable")


def registry_ready(*, registry_dir: str | Path) -> ReadyCheck:
    """The registry folder exists and this process may write to it (promotions and retraining write there).

    The first registration creates the folder: a fresh install with nothing registered is ready without it, but
    once a version is recorded a missing folder is a shared registry that is not mounted on this host.
    """
    from django.db import DatabaseError

    from apps.registry.models import AdapterVersion

    folder = Path(registry_dir)
    if not folder.is_dir():
        try:
            registered = AdapterVersion.objects.exists()
        except DatabaseError:
            registered = True  # cannot tell: say what is seen
        return ReadyCheck("registry", not registered, "folder missing" if registered else "nothing registered yet")
    if not os.access(folder, os.R_OK | os.W_OK | os.X_OK):
        return ReadyCheck("registry", False, "folder not readable and writable")
    return ReadyCheck("registry", True, "folder present")


def champions_ready(*, registry_dir: str | Path) -> ReadyCheck:
    """Every champion's artifact folder (and its base model's folder) holds the files the runtime loads.

    1. Read the champion aliases with their versions and bases (one query).
    2. For each: the adapter folder has artifact.json and the LoRA weights; the base folder exists.
    A cheap presence check, not a load or a hash: a probe runs every few seconds, and a load would evict
    adapters the requests are using. (The runtime verifies the sha256 when it loads an adapter.)
    """
    from django.db import DatabaseError

    from apps.registry.models import Alias
    from services.errors import SuiteError
    from services.registry.paths import base_resolve, registry_resolve

    try:
        champions = list(Alias.objects.filter(name=Alias.CHAMPION).select_related("version__task", "version__base"))
    except DatabaseError as exc:
        return ReadyCheck("champions", False, f"could not be listed ({type(exc).__name__})")
    missing: list[str] = []
    for alias in champions:
        version = alias.version
        adapter = registry_resolve(version.location, root=registry_dir)
        try:
            base = base_resolve(version.base.location, root=registry_dir)
        except SuiteError:  # a packaged base whose package is not installed on this host
            base = None
        if not all((adapter / name).is_file() for name in ARTIFACT_FILES):
            missing.append(f"{version.task.name} v{version.version} artifact incomplete")
        elif base is None or not base.is_dir():
            missing.append(f"{version.task.name} v{version.version} base model missing")
    if missing:
        return ReadyCheck("champions", False, "; ".join(missing)[:300])
    return ReadyCheck("champions", True, f"{len(champions)} champion(s) present")



def readiness_report(*, redis_url: str, kafka_bootstrap_servers: str, registry_dir: str | Path,
                     timeout: float = 1.0) -> dict[str, object]:
    """{"status": "ready"|"not_ready", "checks": [{name, ok, reason}, ...]} over every backing service.

    1. Database, Redis, Kafka, the registry folder, then the champions' artifacts (skipped, as not ready, when the
       database is down: it is where they are listed).
    2. Ready only when every check is ok.
    """
    checks = [database_ready(), redis_ready(url=redis_url, timeout=timeout),
              kafka_ready(bootstrap_servers=kafka_bootstrap_servers, timeout=timeout),
              registry_ready(registry_dir=registry_dir)]
    if checks[0].ok:
        checks.append(champions_ready(registry_dir=registry_dir))
    else:
        checks.append(ReadyCheck("champions", False, "database not reachable"))
    ready = all(check.ok for check in checks)
    return {"status": "ready" if ready else "not_ready", "checks": [check.as_dict() for check in checks]}
