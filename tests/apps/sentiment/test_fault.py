"""The fault test: 10,000 messages, two SIGKILLed consumers and a broker restart; each message stored exactly once."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from apps.sentiment.models import OVERALL, Bucket, ScoredNews
from services.sentiment.bus import producer_make
from tests.conftest import ROOT
from tests.helpers import database_url, wait_until
from tests.pipelines.conftest import topic_read

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

N = int(os.environ.get("SENTIMENT_FAULT_N", "10000"))
WORDS = ["shares soars record", "stock plunges loss", "company holds board meeting"]


def consumer_start(env: dict[str, str], log: Path, idle_exit: bool) -> subprocess.Popen:
    args = [sys.executable, "manage.py", "news_consume", "--group", "g-fault", "--batch-size", "256"]
    if idle_exit:
        args += ["--idle-exit-seconds", "10"]
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=open(log, "a"), stderr=subprocess.STDOUT)


T0 = time.monotonic()


def phase(text: str) -> None:
    print(f"[fault {time.monotonic() - T0:6.1f}s] {text}: {ScoredNews.objects.count()} stored", file=sys.stderr, flush=True)


def stored() -> int:
    return ScoredNews.objects.count()


def broker(action: str) -> None:
    port = settings.KAFKA_BOOTSTRAP_SERVERS.split(",")[0].rsplit(":", 1)[1]
    env = {**os.environ, "KAFKA_PORT": port, "KAFKA_CONTROLLER_PORT": str(int(port) + 1)}
    env.pop("KAFKA_FRESH", None)  # keep the data: the restart must not lose the topic
    subprocess.run([str(ROOT / "deploy" / "kafka.sh"), action], env=env, check=True, stdout=subprocess.DEVNULL, timeout=180)


def test_sigkilled_consumers_and_a_broker_restart_lose_and_duplicate_nothing(app_topics, tiny_sentiment_model: Path,
                                                                              tmp_path: Path) -> None:  # noqa: ANN001
    malformed = {i for i in range(N) if i % 97 == 13}
    producer = producer_make(linger_ms=20, batch_size=65536)
    for i in range(N):
        if i in malformed:
            producer.send(app_topics.raw, key="fault", value=f"{{broken {i}".encode())
        else:
            producer.send(app_topics.raw, key=f"s{i % 7}", value={"id": f"f{i}", "source": f"s{i % 7}", "headline": f"$ACME {WORDS[i % 3]}",
                                                                  "published_at": f"2026-01-05T10:{i % 60:02d}:00Z"})
    producer.flush(timeout=120)
    producer.close()
    well_formed = N - len(malformed)

    env = {**os.environ, "DATABASE_URL": database_url(),
           "SUITE_REGISTRY_DIR": str(tiny_sentiment_model), "NEWS_TOPIC_PREFIX": app_topics.raw.removesuffix(".raw")}
    log = tmp_path / "consumers.log"
    first = consumer_start(env, log, idle_exit=False)
    phase('first = consumer_start(env, log, idle_exit=False)')
    wait_until(lambda: stored() >= well_formed // 5, timeout=240, proc=first, message="the first consumer stalled")
    first.send_signal(signal.SIGKILL)  # mid-stream, no chance to finish its batch or commit
    first.wait(timeout=30)
    phase('first.wait(timeout=30)')
    killed_at = stored()
    assert killed_at < well_formed, "the first consumer finished before it could be killed; raise SENTIMENT_FAULT_N"

    second = consumer_start(env, log, idle_exit=False)
    wait_until(lambda: stored() >= killed_at + well_formed // 5, timeout=240, proc=second,
               message="the second consumer stalled")
    broker("stop")
    phase('broker("stop")')
    broker("start")
    phase('broker("start")')
    wait_until(lambda: stored() >= killed_at + 2 * well_formed // 5, timeout=240, proc=second,
               message="the second consumer stalled after the broker restart")
    second.send_signal(signal.SIGKILL)
    second.wait(timeout=30)
    phase('second.wait(timeout=30)')

    deadline = time.monotonic() + 600
    while stored() < well_formed and time.monotonic() < deadline:  # restart until done, as a supervisor would
        last = consumer_start(env, log, idle_exit=True)
        last.wait(timeout=600)
        phase('last.wait(timeout=600)')
    assert stored() == well_formed, log.read_text()[-3000:]
    ids = set(ScoredNews.objects.values_list("message_id", flat=True))
    assert ids == {f"f{i}" for i in range(N) if i not in malformed}
    assert Bucket.objects.get(scope=OVERALL, granularity=Bucket.DAY).count == well_formed  # aggregates counted once

    # The DLQ is at least once: a killed consumer's batch may have sent its malformed messages twice.
    dead = topic_read(app_topics.dlq, count=len(malformed), timeout_s=120,
                      until=lambda read: {int(m["value"].split()[-1]) for m in read} >= malformed)
    assert {int(m["value"].split()[-1]) for m in dead} == malformed
    assert all("not JSON" in m["reason"] for m in dead)
