"""The sentiment benchmark runs end to end on the real broker (tiny model, few messages) and reports its contract."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_json
from tests.services.conftest import tiny_base_write


@pytest.mark.django_db(transaction=True)
def test_the_benchmark_replays_through_the_broker_and_reports_throughput_and_latency(settings, tmp_path: Path) -> None:  # noqa: ANN001
    from pipelines.bench_sentiment import sentiment_bench
    from services.registry.serving import serving_reset

    settings.REGISTRY_DIR = tmp_path / "registry"
    run_json("registry_add_base", name="tiny-bert", path=str(tiny_base_write(tmp_path / "tiny-base")), default=True)
    try:
        result = sentiment_bench(n=40, batch_size=16, quiet=True)
    finally:
        serving_reset()
    assert {"n", "e2e_per_s", "raw_per_s", "ratio", "p95_latency_ms"} <= set(result)
    assert result["n"] == 40 and result["consumer"]["stored"] == 41 and result["consumer"]["malformed"] == 0
    assert result["e2e_per_s"] > 0 and result["raw_per_s"] > 0 and result["p95_latency_ms"] >= result["p50_latency_ms"] >= 0
    assert result["ratio"] == pytest.approx(result["e2e_per_s"] / result["raw_per_s"], rel=0.01, abs=2e-3)  # rounded to 3 places
    # two models on each side: the consumer tagged every headline with the topic adapter, the raw path ran both
    assert [m.split(" v")[0] for m in result["models"]] == ["bench-sentiment", "bench-topic"]
    assert result["topic_model_rows"] == 40
    assert result["raw_sentiment_per_s"] > result["raw_per_s"] and result["raw_topic_per_s"] > result["raw_per_s"]
    # where the consumer's time went: every phase measured, the model calls a part of the wall time
    assert set(result["consumer_seconds"]) == {"poll", "decode", "sentiment", "topic", "store", "publish", "commit", "after_store"}
    assert result["consumer_seconds"]["sentiment"] > 0 and result["consumer_seconds"]["topic"] > 0
    assert 0 < result["consumer_model_share"] < 1
