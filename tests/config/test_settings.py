from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys

import pytest
from django.conf import settings

from tests.conftest import ROOT


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    full_env.update(env)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=120)


def test_the_default_settings_load_with_sqlite_redis_and_kafka() -> None:
    # The tests themselves may run on PostgreSQL (DATABASE_URL): the default is what a process without it gets.
    result = run_manage("shell", "--no-imports", "-c", "from django.conf import settings; d = settings.DATABASES['default']; "
                        "print(d['ENGINE'], d['CONN_MAX_AGE'], d['OPTIONS']['transaction_mode'])", DATABASE_URL="")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.sqlite3", "0", "IMMEDIATE"]
    assert settings.REDIS_URL.startswith("redis://")
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == "channels_redis.core.RedisChannelLayer"
    assert settings.CELERY_BROKER_URL == settings.REDIS_URL
    assert ":" in settings.KAFKA_BOOTSTRAP_SERVERS


def test_database_url_switches_to_postgresql() -> None:
    result = run_manage("shell", "--no-imports", "-c", "from django.conf import settings; print(settings.DATABASES['default']['ENGINE'], settings.DATABASES['default']['NAME'])",
                        DATABASE_URL="postgres://suite:pw@db.internal:5432/suite")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.postgresql", "suite"]


@pytest.mark.parametrize(("env", "expected"), [
    ({}, ["0", "False", "10"]),  # ASGI: connections are not kept (a kept one would only leak)
    ({"DATABASE_CONN_MAX_AGE_S": "30", "DATABASE_CONNECT_TIMEOUT_S": "3"}, ["30", "True", "3"]),
    ({"DATABASE_URL": "postgres://suite:pw@db.internal:5432/suite?connect_timeout=7"}, ["0", "False", "7"]),  # the URL's own wins
])
def test_postgresql_connections_follow_the_database_settings(env: dict, expected: list) -> None:
    result = run_manage("shell", "--no-imports", "-c", "from django.conf import settings; d = settings.DATABASES['default']; "
                        "print(d['CONN_MAX_AGE'], d['CONN_HEALTH_CHECKS'], d['OPTIONS']['connect_timeout'])",
                        **{"DATABASE_URL": "postgres://suite:pw@db.internal:5432/suite", **env})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == expected


@pytest.mark.parametrize("env", [{"DATABASE_CONN_MAX_AGE_S": "forever"}, {"DATABASE_CONN_MAX_AGE_S": "-1"},
                                 {"DATABASE_CONNECT_TIMEOUT_S": "0"}])
def test_bad_database_connection_settings_are_refused_by_name(env: dict) -> None:
    result = run_manage("check", **env)
    assert result.returncode != 0
    assert next(iter(env)) in result.stderr


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"DJANGO_DEBUG": "maybe"}, "DJANGO_DEBUG"),
        ({"DATABASE_URL": "nosuchdb://x/y"}, "DATABASE_URL"),
        ({"REDIS_URL": "http://localhost:6379"}, "REDIS_URL"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "localhost"}, "KAFKA_BOOTSTRAP_SERVERS"),
        ({"DJANGO_PROFILE": "production"}, "DJANGO_SECRET_KEY"),
        ({"DJANGO_PROFILE": "staging"}, "DJANGO_PROFILE"),
        ({"SUITE_BATCH_MAX": "abc"}, "SUITE_BATCH_MAX"),
        ({"SUITE_BATCH_MAX": "0"}, "SUITE_BATCH_MAX"),
        ({"SUITE_BATCH_WAIT_MS": "soon"}, "SUITE_BATCH_WAIT_MS"),
        ({"SUITE_RESOLVE_TTL_S": "-1"}, "SUITE_RESOLVE_TTL_S"),
        ({"SUITE_TORCH_THREADS": "many"}, "SUITE_TORCH_THREADS"),
        ({"NEWS_TOPIC_PARTITIONS": "0"}, "NEWS_TOPIC_PARTITIONS"),
        ({"NEWS_TOPIC_REPLICATION": "0"}, "NEWS_TOPIC_REPLICATION"),
        ({"NEWS_TOPIC_PREFIX": "news raw"}, "NEWS_TOPIC_PREFIX"),
        ({"DJANGO_LOG_LEVEL": "loud"}, "DJANGO_LOG_LEVEL"),
        ({"SUPPORT_CUSTOMER_RATE": "lots"}, "SUPPORT_CUSTOMER_RATE"),
        ({"SUITE_TRUSTED_PROXIES": "10.0.0.0/8,proxy.internal"}, "SUITE_TRUSTED_PROXIES"),
        ({"SUPPORT_CONVERSATION_RATE": "often"}, "SUPPORT_CONVERSATION_RATE"),
        ({"SUITE_MAX_JSON_BYTES": "10"}, "SUITE_MAX_JSON_BYTES"),
        ({"SUITE_LOGIN_FAILURE_LIMIT": "0"}, "SUITE_LOGIN_FAILURE_LIMIT"),
    ],
)
def test_a_bad_setting_fails_loudly_naming_the_variable(env: dict[str, str], names: str) -> None:
    result = run_manage("check", **env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert names in result.stderr


def test_the_production_profile_passes_check_deploy_without_warnings() -> None:
    result = run_manage(
        "check", "--deploy", "--fail-level", "WARNING",
        DJANGO_PROFILE="production", DJANGO_SECRET_KEY=secrets.token_urlsafe(64), DJANGO_ALLOWED_HOSTS="suite.example.com",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_serving_topic_and_thread_tunables_are_settings_read_from_the_environment() -> None:
    code = ("from django.conf import settings; print(settings.SUITE_BATCH_MAX, settings.SUITE_BATCH_WAIT_MS, "
            "settings.SUITE_RESOLVE_TTL_S, settings.NEWS_TOPIC_PARTITIONS, settings.SUITE_TORCH_THREADS)")
    result = run_manage("shell", "--no-imports", "-c", code, SUITE_BATCH_MAX="8", SUITE_BATCH_WAIT_MS="2.5", SUITE_RESOLVE_TTL_S="0",
                        NEWS_TOPIC_PARTITIONS="3", SUITE_TORCH_THREADS="2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["8", "2.5", "0.0", "3", "2"]
    unset = dict.fromkeys(("SUITE_BATCH_MAX", "SUITE_BATCH_WAIT_MS", "SUITE_RESOLVE_TTL_S", "NEWS_TOPIC_PARTITIONS", "SUITE_TORCH_THREADS"), "")
    defaults = run_manage("shell", "--no-imports", "-c", code, **unset)
    assert defaults.returncode == 0, defaults.stderr
    assert defaults.stdout.split() == ["64", "1.0", "2.0", "6", "None"]  # empty: the default (torch's own thread count)


def test_no_service_reads_the_environment_itself() -> None:
    offenders = [str(path.relative_to(ROOT)) for path in (ROOT / "services").rglob("*.py") if "os.environ" in path.read_text()]
    assert offenders == []


def test_the_readme_lists_every_variable_the_settings_read() -> None:
    source = (ROOT / "config" / "settings.py").read_text()
    read = set(re.findall(r"(?:env_\w+|_env_fraction|os\.environ\.get)\(\s*\"([A-Z][A-Z0-9_]+)\"", source))
    table = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", (ROOT / "README.md").read_text(), flags=re.M))
    assert len(read) > 30 and read - table == set()
