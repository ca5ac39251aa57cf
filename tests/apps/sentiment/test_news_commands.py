"""news_replay and news_consume as an operator runs them, on the real broker and a tiny trained model."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.sentiment.models import OVERALL, Bucket, ScoredNews
from tests.conftest import ROOT
from tests.helpers import database_url, run_json, wait_until
from tests.pipelines.conftest import topic_read

pytestmark = pytest.mark.django_db(transaction=True)


def headlines_csv(path: Path, n: int) -> Path:
    lines = ["id,source,published_at,headline,tickers"]
    words = ["shares soars record rally", "stock plunges loss slump", "company holds board meeting"]
    for i in range(n):
        lines.append(f"h{i},{'wire' if i % 2 else 'blog'},2026-01-05T10:{i % 60:02d}:00Z,$ACME {words[i % 3]},")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_replay_refuses_a_file_with_bad_lines_naming_each_line_and_sends_nothing(app_topics, tmp_path: Path) -> None:  # noqa: ANN001
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "headline": "fine", "published_at": "2026-01-01T00:00:00Z"}\n{oops\n'
                   '{"id": "c", "headline": "", "published_at": "2026-01-01T00:00:00Z"}\n', encoding="utf-8")
    with pytest.raises(CommandError) as caught:
        call_command("news_replay", file=str(bad), stdout=StringIO())
    message = str(caught.value)
    assert "bad.jsonl:2: not valid JSON" in message and "bad.jsonl:3: `headline`" in message
    assert "nothing sent" in message
    with pytest.raises(CommandError, match="no such file"):
        call_command("news_replay", file=str(tmp_path / "missing.csv"), stdout=StringIO())


def test_replayed_headlines_are_consumed_scored_by_the_champion_and_sigterm_exits_cleanly(
        app_topics, tiny_sentiment_model: Path, tmp_path: Path) -> None:  # noqa: ANN001
    data = headlines_csv(tmp_path / "headlines.csv", 18)
    summary = run_json("news_replay", file=str(data), rate=200)
    assert summary["sent"] == 18 and summary["invalid"] == 0 and summary["topic"] == app_topics.raw

    env = {**os.environ, "DATABASE_URL": database_url(),
           "SUITE_REGISTRY_DIR": str(tiny_sentiment_model), "NEWS_TOPIC_PREFIX": app_topics.raw.removesuffix(".raw")}
    proc = subprocess.Popen([sys.executable, "manage.py", "news_consume", "--group", "g-cmd", "--batch-size", "8"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: ScoredNews.objects.count() >= 18, timeout=120, interval=0.5, proc=proc,
                   message=lambda: proc.stderr.read()[-2000:] if proc.poll() is not None else "18 headlines not stored")
        assert ScoredNews.objects.count() == 18
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-2000:]
    stats = json.loads(stdout.strip().splitlines()[-1])
    assert stats["stored"] == 18 and stats["malformed"] == 0 and stats["model_versions"] == [1]
    rows = ScoredNews.objects.all()
    assert {row.model_version for row in rows} == {1} and {row.label for row in rows} <= {"positive", "neutral", "negative"}
    assert all(abs(row.score - (row.p_positive - row.p_negative)) < 1e-6 for row in rows)
    assert Bucket.objects.get(scope="ACME", granularity=Bucket.DAY).count == 18
    assert Bucket.objects.get(scope=OVERALL, granularity=Bucket.HOUR).count == 18
    assert len(topic_read(app_topics.scored, count=18)) == 18
    from services.sentiment.bus import lag_get

    assert lag_get(group="g-cmd", topic=app_topics.raw)["total"] == 0  # committed before it exited


def test_the_consumer_refuses_to_start_without_a_sentiment_model(app_topics) -> None:  # noqa: ANN001
    with pytest.raises(CommandError, match="train_adapter --task sentiment"):
        call_command("news_consume", max_messages=1, stdout=StringIO())
