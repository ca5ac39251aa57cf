from __future__ import annotations

import socket

import pytest
from django.conf import settings

from services.errors import ServiceUnavailable
from services.health import kafka_check, redis_check, service_require


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_running_redis_and_kafka_are_reported_reachable() -> None:
    assert redis_check(url=settings.REDIS_URL).ok
    assert kafka_check(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS).ok


def test_an_unreachable_redis_names_the_service_the_address_and_how_to_start_it() -> None:
    port = _free_port()
    status = redis_check(url=f"redis://127.0.0.1:{port}/0", timeout=0.5)
    assert not status.ok
    assert f"Redis is not reachable at 127.0.0.1:{port}" in status.message
    assert "deploy/redis.sh start" in status.message
    with pytest.raises(ServiceUnavailable, match=f"127.0.0.1:{port}"):
        service_require(status)


def test_an_unreachable_kafka_names_the_service_the_address_and_how_to_start_it() -> None:
    port = _free_port()
    status = kafka_check(bootstrap_servers=f"127.0.0.1:{port}", timeout=0.5)
    assert not status.ok
    assert f"Kafka is not reachable at 127.0.0.1:{port}" in status.message
    assert "deploy/kafka.sh start" in status.message


def test_services_check_command_fails_with_one_clear_message(monkeypatch) -> None:  # noqa: ANN001
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    port = _free_port()
    env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    result = subprocess.run([sys.executable, "manage.py", "services_check", "--only", "redis"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"Redis is not reachable at 127.0.0.1:{port}" in result.stderr
