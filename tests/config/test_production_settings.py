"""Production settings (issue 13): Celery's visibility timeout, Kafka and Redis security by environment variables."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.kafka_config import kafka_client_options
from tests.config.test_settings import run_manage
from tests.conftest import ROOT

VISIBILITY = ("from django.conf import settings; from config.celery import app; "
              "print(settings.CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout'], app.conf.broker_transport_options['visibility_timeout'])")
LIMITS_UNSET = dict.fromkeys(("SUITE_TASK_LIMIT_INFERENCE_S", "SUITE_TASK_LIMIT_DEFAULT_S", "SUITE_TASK_LIMIT_TRAINING_S",
                              "SUITE_TASK_LIMIT_INDEX_REBUILD_S", "SUITE_TASK_LIMIT_GRACE_S", "CELERY_VISIBILITY_TIMEOUT_S"), "")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, 6 * 3600 + 30 + 600),  # the training queue's hard limit plus the margin
        ({"SUITE_TASK_LIMIT_TRAINING_S": "100"}, 3600 + 30 + 600),  # then the index rebuild is the longest
        ({"SUITE_TASK_LIMIT_GRACE_S": "60", "SUITE_TASK_LIMIT_TRAINING_S": "40000"}, 40000 + 60 + 600),
        ({"CELERY_VISIBILITY_TIMEOUT_S": "30000"}, 30000),
    ],
)
def test_the_visibility_timeout_outlasts_the_longest_task(env: dict[str, str], expected: int) -> None:
    result = run_manage("shell", "--no-imports", "-c", VISIBILITY, **{**LIMITS_UNSET, **env})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(expected), str(expected)]  # the setting reaches the Celery app


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"CELERY_VISIBILITY_TIMEOUT_S": "3600"}, "CELERY_VISIBILITY_TIMEOUT_S"),  # shorter than a training run
        ({"CELERY_VISIBILITY_TIMEOUT_S": str(6 * 3600 + 30)}, "21630 s"),  # equal to the longest hard limit
        ({"CELERY_VISIBILITY_TIMEOUT_S": "soon"}, "CELERY_VISIBILITY_TIMEOUT_S"),
    ],
)
def test_a_bad_production_setting_fails_loudly_naming_the_variable(env: dict[str, str], names: str) -> None:
    result = run_manage("check", **{**LIMITS_UNSET, **env})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert names in result.stderr


# --- Kafka: one place builds every client's options -------------------------------------------------------------
KAFKA_UNSET = dict.fromkeys(("KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD",
                             "KAFKA_SSL_CAFILE", "KAFKA_SSL_CERTFILE", "KAFKA_SSL_KEYFILE"), "")


@pytest.fixture
def pem(tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")  # only its existence is checked: no TLS connection is made
    return str(path)


def _kafka(settings, **values: str) -> dict:  # noqa: ANN001
    for name in KAFKA_UNSET:
        setattr(settings, name, "")
    settings.KAFKA_SASL_MECHANISM = "PLAIN"
    for name, value in values.items():
        setattr(settings, name, value)
    return kafka_client_options()


def test_plaintext_kafka_clients_get_the_brokers_and_nothing_else(settings) -> None:  # noqa: ANN001
    settings.KAFKA_BOOTSTRAP_SERVERS = "k1.internal:9092, k2.internal:9092"
    assert _kafka(settings, KAFKA_SECURITY_PROTOCOL="PLAINTEXT") == {
        "bootstrap_servers": ["k1.internal:9092", "k2.internal:9092"], "security_protocol": "PLAINTEXT"}


def test_ssl_kafka_clients_check_the_brokers_certificate_and_may_present_their_own(settings, pem: str) -> None:  # noqa: ANN001
    options = _kafka(settings, KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CAFILE=pem, KAFKA_SSL_CERTFILE=pem, KAFKA_SSL_KEYFILE=pem)
    assert options["security_protocol"] == "SSL"
    assert options["ssl_check_hostname"] is True
    assert (options["ssl_cafile"], options["ssl_certfile"], options["ssl_keyfile"]) == (pem, pem, pem)
    assert not any(key.startswith("sasl_") for key in options)
    bare = _kafka(settings, KAFKA_SECURITY_PROTOCOL="SSL")  # the system's CAs: no file options at all
    assert {key for key in bare if key.startswith("ssl_")} == {"ssl_check_hostname"}


@pytest.mark.parametrize("protocol", ["SASL_SSL", "SASL_PLAINTEXT"])
def test_sasl_kafka_clients_send_the_mechanism_user_and_password(settings, protocol: str) -> None:  # noqa: ANN001
    options = _kafka(settings, KAFKA_SECURITY_PROTOCOL=protocol, KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
                     KAFKA_SASL_USERNAME="suite", KAFKA_SASL_PASSWORD="pw")
    assert options["security_protocol"] == protocol
    assert (options["sasl_mechanism"], options["sasl_plain_username"], options["sasl_plain_password"]) == ("SCRAM-SHA-512", "suite", "pw")
    assert ("ssl_check_hostname" in options) == (protocol == "SASL_SSL")


def test_the_options_are_accepted_by_every_kafka_python_client(settings, pem: str) -> None:  # noqa: ANN001
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient

    options = _kafka(settings, KAFKA_SECURITY_PROTOCOL="SASL_SSL", KAFKA_SASL_MECHANISM="SCRAM-SHA-256", KAFKA_SASL_USERNAME="u",
                     KAFKA_SASL_PASSWORD="p", KAFKA_SSL_CAFILE=pem, KAFKA_SSL_CERTFILE=pem, KAFKA_SSL_KEYFILE=pem)
    for client in (KafkaProducer, KafkaConsumer, KafkaAdminClient):
        assert set(options) <= set(client.DEFAULT_CONFIG), client.__name__


def test_the_producer_is_built_with_the_security_options(settings, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    import kafka

    from services.sentiment.bus import producer_make

    built: dict = {}
    monkeypatch.setattr(kafka, "KafkaProducer", lambda **kwargs: built.update(kwargs))
    _kafka(settings, KAFKA_SECURITY_PROTOCOL="SASL_SSL", KAFKA_SASL_USERNAME="suite", KAFKA_SASL_PASSWORD="pw")
    producer_make()
    assert (built["security_protocol"], built["sasl_plain_username"], built["acks"]) == ("SASL_SSL", "suite", "all")


def test_every_kafka_client_of_the_suite_starts_from_the_shared_options() -> None:
    pattern = re.compile(r"(KafkaProducer|KafkaConsumer|KafkaAdminClient)\(([^)]*)", re.DOTALL)
    calls = [(str(path.relative_to(ROOT)), args) for folder in ("services", "pipelines", "apps")
             for path in (ROOT / folder).rglob("*.py") for _, args in pattern.findall(path.read_text())]
    assert len(calls) >= 7
    assert [path for path, args in calls if "kafka_client_options(" not in args and "**options" not in args and "**{**options" not in args] == []


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "KAFKA_SASL_USERNAME"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "suite"}, "KAFKA_SASL_PASSWORD"),
        ({"KAFKA_SASL_USERNAME": "suite", "KAFKA_SASL_PASSWORD": "pw"}, "KAFKA_SASL_USERNAME"),  # PLAINTEXT: SASL unused
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "GSSAPI", "KAFKA_SASL_USERNAME": "u",
          "KAFKA_SASL_PASSWORD": "p"}, "KAFKA_SASL_MECHANISM"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"}, "KAFKA_SSL_CAFILE"),
        ({"KAFKA_SSL_CAFILE": "manage.py"}, "KAFKA_SSL_CAFILE"),  # a file, but the protocol has no TLS
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_KEYFILE": "manage.py"}, "KAFKA_SSL_CERTFILE"),
        ({"REDIS_URL": "rediss://redis.internal:6380/0", "REDIS_SSL_CERT_REQS": "maybe"}, "REDIS_SSL_CERT_REQS"),
        ({"REDIS_URL": "rediss://redis.internal:6380/0", "REDIS_SSL_CA_CERTS": "/nonexistent/ca.pem"}, "REDIS_SSL_CA_CERTS"),
        ({"REDIS_URL": "redis://redis.internal:6379/0", "REDIS_SSL_CA_CERTS": "manage.py"}, "REDIS_SSL_CA_CERTS"),
    ],
)
def test_a_bad_security_setting_fails_loudly_naming_the_variable(env: dict[str, str], names: str) -> None:
    result = run_manage("check", **{**KAFKA_UNSET, "REDIS_SSL_CERT_REQS": "", "REDIS_SSL_CA_CERTS": "", **env})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert names in result.stderr


# --- Redis: a password and TLS reach the broker, the result backend, the cache and the channel layer ----------------
REDIS_CLIENTS = """
import redis
from django.conf import settings
from channels.layers import get_channel_layer
from config.celery import app
cache = redis.ConnectionPool.from_url(settings.CACHES['default']['LOCATION'])
layer = redis.ConnectionPool.from_url(get_channel_layer().hosts[0]['address'])
print(cache.connection_class.__name__, cache.connection_kwargs['password'], cache.connection_kwargs['ssl_ca_certs'],
      cache.connection_kwargs['ssl_cert_reqs'])
print(layer.connection_class.__name__, layer.connection_kwargs['password'])
print(app.backend.connparams['connection_class'].__name__, app.backend.connparams['password'], app.backend.connparams['ssl_ca_certs'])
print(app.conf.broker_use_ssl['ssl_ca_certs'], int(app.conf.broker_use_ssl['ssl_cert_reqs']))
"""


def test_a_rediss_url_with_a_password_reaches_every_redis_client(pem: str) -> None:
    result = run_manage("shell", "--no-imports", "-c", REDIS_CLIENTS, REDIS_URL="rediss://:s3cr%40t@redis.internal:6380/0",
                        REDIS_SSL_CA_CERTS=pem, REDIS_SSL_CERT_REQS="")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"SSLConnection s3cr@t {pem} required",  # the cache (and the health check: the same URL)
        "SSLConnection s3cr@t",  # the channel layer
        f"SSLConnection s3cr@t {pem}",  # Celery's result backend
        f"{pem} 2",  # Celery's broker: ssl.CERT_REQUIRED
    ]


def test_a_plain_redis_url_with_a_password_stays_without_tls() -> None:
    code = ("import redis; from django.conf import settings; p = redis.ConnectionPool.from_url(settings.REDIS_URL); "
            "print(settings.REDIS_URL, p.connection_class.__name__, p.connection_kwargs['password'], "
            "hasattr(settings, 'CELERY_BROKER_USE_SSL'))")
    result = run_manage("shell", "--no-imports", "-c", code, REDIS_URL="redis://:pw@redis.internal:6379/1",
                        REDIS_SSL_CA_CERTS="", REDIS_SSL_CERT_REQS="")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["redis://:pw@redis.internal:6379/1", "Connection", "pw", "False"]
