from __future__ import annotations

import os
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
    assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
    assert settings.REDIS_URL.startswith("redis://")
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == "channels_redis.core.RedisChannelLayer"
    assert settings.CELERY_BROKER_URL == settings.REDIS_URL
    assert ":" in settings.KAFKA_BOOTSTRAP_SERVERS


def test_database_url_switches_to_postgresql() -> None:
    result = run_manage("shell", "--no-imports", "-c", "from django.conf import settings; print(settings.DATABASES['default']['ENGINE'], settings.DATABASES['default']['NAME'])",
                        DATABASE_URL="postgres://suite:pw@db.internal:5432/suite")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.postgresql", "suite"]


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"DJANGO_DEBUG": "maybe"}, "DJANGO_DEBUG"),
        ({"DATABASE_URL": "nosuchdb://x/y"}, "DATABASE_URL"),
        ({"REDIS_URL": "http://localhost:6379"}, "REDIS_URL"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "localhost"}, "KAFKA_BOOTSTRAP_SERVERS"),
        ({"DJANGO_PROFILE": "production"}, "DJANGO_SECRET_KEY"),
        ({"DJANGO_PROFILE": "staging"}, "DJANGO_PROFILE"),
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
