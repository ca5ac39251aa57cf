"""Fixtures shared by the whole suite: people per role, a real Celery worker, the real broker."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import WebhookServer, database_url, process_stop, wait_until, webhook_serve

ROOT = Path(__file__).resolve().parent.parent

ROLE_USERS = {"support_agent": "agent", "risk_analyst": "analyst", "admin": "boss", "api_client": "shop"}


@pytest.fixture(autouse=True)
def _vectors_embedded_in_process(settings) -> None:  # noqa: ANN001
    """Changed rows are embedded in the test's own process (SUITE_VECTORS_EMBED=process): a test of the worker path
    sets "worker" itself (services/vectors/store.py)."""
    settings.SUITE_VECTORS_EMBED = "process"


@pytest.fixture
def role_users(db) -> dict[str, object]:  # noqa: ANN001
    """One user per role (plus 'nobody' without a role), created through the real command."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    out = {}
    for role, username in ROLE_USERS.items():
        call_command("user_create", username=username, role=role, password="pw-" + username, skip_validation=True, stdout=open(os.devnull, "w"))
        out[role] = get_user_model().objects.get(username=username)
    out["nobody"] = get_user_model().objects.create_user("nobody", password="pw-nobody")
    return out


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker) -> Iterator[subprocess.Popen]:  # noqa: ANN001
    """A real `celery worker` process (threads pool) on the test Redis and the test database, serving all three queues.

    Tests that let it read rows must commit them (transactional_db).
    """
    from config.celery import app

    with django_db_blocker.unblock():
        test_db_url = database_url()
    # The worker may call the tests' local HTTP servers (webhook receivers): outbound requests to 127.0.0.1 are
    # refused unless allow-listed.
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DATABASE_URL": test_db_url,
           "SUITE_OUTBOUND_ALLOW": "127.0.0.1"}
    log = open(Path(os.environ.get("SUITE_VAR_DIR", ROOT / "var")) / "test-worker.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "inference,training,default",
         "--concurrency=8", "--pool=threads", "-n", f"test-worker-{os.getpid()}@%h", "-l", "INFO"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: app.control.ping(timeout=1.0), timeout=60, proc=proc, interval=0,  # ping itself waits 1 s
                   message=f"the celery worker did not answer a ping; see {log.name}")
    except AssertionError:
        proc.kill()
        raise
    yield proc
    process_stop(proc, timeout=30)
    log.close()


@pytest.fixture
def webhook_server(monkeypatch: pytest.MonkeyPatch, settings) -> Iterator[WebhookServer]:  # noqa: ANN001
    """A local webhook receiver, allow-listed (127.0.0.1 is refused by default), with retries taking milliseconds."""
    from services.sentiment.channels import WebhookChannel

    settings.SUITE_OUTBOUND_ALLOW = ["127.0.0.1"]
    monkeypatch.setattr(WebhookChannel, "backoff_s", 0.05)  # the real backoff doubles from 0.5 s
    with webhook_serve() as server:
        yield server
