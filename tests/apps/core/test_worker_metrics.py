"""A real Celery worker with SUITE_WORKER_METRICS_PORT serves its own series: tasks by outcome, its inference."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.helpers import database_url, process_stop, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return response.read().decode()
    except OSError:
        return ""


def _sample(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{"):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return None


def test_a_worker_with_a_metrics_port_serves_its_tasks_by_outcome_and_not_the_cluster_series() -> None:
    from config.celery import app

    port, queue = _free_port(), f"metrics-test-{uuid.uuid4().hex[:8]}"  # its own queue: no other worker takes these
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DATABASE_URL": database_url(),
           "SUITE_WORKER_METRICS_PORT": str(port), "SUITE_WORKER_METRICS_ADDR": "127.0.0.1"}
    log_path = Path(os.environ.get("SUITE_VAR_DIR", ROOT / "var")) / "test-worker-metrics.log"
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queue, "--pool=threads",
                             "--concurrency=2", "-n", f"{queue}@%h", "-l", "INFO"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        text = wait_until(lambda: _scrape(port), timeout=90, proc=proc, interval=0.5,
                          message=lambda: f"the worker's exporter never answered; see {log_path}")
        assert "# TYPE suite_inference_seconds histogram" in text  # the inference it runs is exported here
        assert "suite_kafka_consumer_lag" not in text and "suite_sentiment_alerts" not in text  # /metrics serves those
        ok = app.send_task("core.ping", args=[{"probe": 1}], queue=queue)
        assert ok.get(timeout=60)
        bad = app.send_task("core.ping", args=[], queue=queue)  # a missing argument: the task fails in the worker
        with pytest.raises(TypeError):
            bad.get(timeout=60)

        def counted() -> str:
            text = _scrape(port)
            return text if _sample(text, "suite_celery_tasks_total", task="core.ping", outcome="failure") else ""

        text = wait_until(counted, timeout=30, message=lambda: f"the failure was not counted:\n{_scrape(port)[-2000:]}")
        assert _sample(text, "suite_celery_tasks_total", task="core.ping", outcome="success") == 1.0
        assert _sample(text, "suite_celery_tasks_total", task="core.ping", outcome="failure") == 1.0
        assert _sample(text, "suite_celery_task_seconds_count", task="core.ping") == 2.0
    finally:
        process_stop(proc, timeout=30)
        log.close()


def test_a_bad_worker_metrics_address_or_port_stops_the_process_naming_it() -> None:
    for name, value in (("SUITE_WORKER_METRICS_ADDR", "metrics.example"), ("SUITE_WORKER_METRICS_PORT", "70000"),
                        ("SUITE_WORKER_METRICS_PORT", "-1")):
        result = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, capture_output=True,
                                text=True, env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", name: value})
        assert result.returncode != 0 and name in result.stderr, (name, value, result.stderr[-500:])
