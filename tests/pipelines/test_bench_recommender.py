"""The recommender benchmark, small: the real daphne server answers every request and the JSON has its keys."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pipelines.bench_recommender import server_figures, server_timing

ROOT = Path(__file__).resolve().parents[2]


def test_the_benchmark_serves_recommendations_over_http_and_reports_its_figures(tmp_path: Path) -> None:
    env = {**os.environ, "SUITE_VAR_DIR": str(tmp_path / "var"), "DJANGO_SETTINGS_MODULE": "config.settings"}
    env.pop("DATABASE_URL", None)
    done = subprocess.run([sys.executable, "-m", "pipelines.bench", "recommender", "--json", "--items", "300", "--users", "30",
                           "--requests", "40", "--concurrency", "2"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"items", "users", "p50_ms", "p95_ms", "p99_ms", "rps", "raw_faiss_p99_ms"} <= set(result)
    assert result["items"] == 300 and result["users"] == 30 and result["errors"] == 0
    assert 0 < result["p50_ms"] <= result["p95_ms"] <= result["p99_ms"] and result["rps"] > 0
    assert {"ranker_share", "ranker_share_server", "ranker_share_latency", "server_app_p50_ms", "impressions"} <= set(result)
    assert "app" in result["server_sections_ms"] and 0 < result["server_app_p50_ms"] <= result["p50_ms"]
    assert 0 <= result["ranker_share_server"] <= 1 and result["ranker_share_latency"] <= result["ranker_share_server"]


def test_the_benchmark_sums_the_sections_into_the_rankers_share() -> None:
    assert server_timing("ranker;dur=1.5, app;dur=6, cards;desc=x;dur=0.5, junk, bad;dur=x") == \
        {"ranker": 1.5, "app": 6.0, "cards": 0.5}
    assert server_timing(None) == {}
    figures = server_figures([{"ranker": 1.0, "app": 4.0}, {"app": 4.0}], [10.0, 10.0])
    assert figures["ranker_share_server"] == 0.125 and figures["ranker_share_latency"] == 0.05
    assert figures["server_sections_ms"] == {"app": 4.0, "ranker": 0.5}


def test_the_benchmark_refuses_an_unknown_server_before_any_work() -> None:
    import pytest

    from pipelines.bench_recommender import server_command

    assert server_command("daphne", 7)[-1] == "config.asgi:application" and "7" in server_command("daphne", 7)
    with pytest.raises(ValueError, match="unknown ASGI server 'nginx'"):
        server_command("nginx", 7)
