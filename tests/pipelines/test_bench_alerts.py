"""The alert-quality benchmark on a tiny synthetic stream: both semantics find the injected surges, on the direct path
and through the test broker and the consumer's batch_process; no devdata; `--scores model` with a tiny champion."""
from __future__ import annotations

import random

import pytest

from pipelines import bench_alerts
from tests.apps.sentiment.conftest import tiny_sentiment_model  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db

KEYS = {"surges", "detected", "recall", "false_alerts_per_day", "median_delay_minutes", "notifications_sent"}


def synthetic_rows(n: int = 300, seed: int = 3) -> list[tuple[str, str]]:
    """Headlines with the dataset's labels: mostly neutral ("2"), some bullish ("1"), a few bearish ("0")."""
    rng = random.Random(seed)
    return [(f"company update number {i}", rng.choices(["2", "1", "0"], [0.7, 0.2, 0.1])[0]) for i in range(n)]


@pytest.mark.parametrize("semantics", ["new", "cooldown"])
def test_both_semantics_detect_the_injected_surges_on_a_small_stream(semantics: str) -> None:
    result = bench_alerts.alerts_bench(rows=synthetic_rows(), semantics=semantics, days=2, warmup_days=1, surges=2,
                                       tickers=3, step_minutes=10, kafka=False, quiet=True)
    assert KEYS <= set(result) and result["surges"] == 2 and result["through"] == "direct" and "kafka" not in result
    assert result["detected"] == 2 and result["recall"] == 1.0
    assert 0 <= result["median_delay_minutes"] <= 120
    assert result["notifications_sent"] >= result["detected"]


def test_the_stream_holds_each_surge_at_its_start_on_its_ticker() -> None:
    events, surges, symbols = bench_alerts.stream_make(rows=synthetic_rows(50), days=3, warmup_days=1, surges=3,
                                                       tickers=4, seed=1)
    assert symbols == ["T00", "T01", "T02", "T03"] and len(surges) == 3
    assert [e.at for e in events] == sorted(e.at for e in events)
    for i, surge in enumerate(surges):
        mine = [e for e in events if e.surge == i]
        assert len(mine) == surge.size and {e.ticker for e in mine} == {surge.ticker} and {e.label for e in mine} == {"0"}
        assert all(surge.start <= e.at <= surge.start + bench_alerts.SURGE_SPAN for e in mine)
        assert surge.start >= bench_alerts.START + bench_alerts.timedelta(days=1)


def test_without_devdata_it_says_so_and_returns_a_skip(monkeypatch, tmp_path) -> None:  # noqa: ANN001
    monkeypatch.setattr(bench_alerts, "DEVDATA", tmp_path / "absent")
    result = bench_alerts.alerts_bench(quiet=True)
    assert "no devdata" in result["skipped"]


@pytest.mark.parametrize("semantics", ["new", "cooldown"])
def test_through_kafka_every_headline_passes_the_topic_and_the_consumer_and_the_surges_are_found(semantics: str) -> None:
    from kafka import KafkaConsumer, TopicPartition

    from apps.sentiment.models import ScoredNews
    from services.kafka_config import kafka_client_options

    result = bench_alerts.alerts_bench(rows=synthetic_rows(), semantics=semantics, days=2, warmup_days=1, surges=2,
                                       tickers=3, step_minutes=10, keep_topics=True, quiet=True)
    assert KEYS <= set(result) and result["through"] == "kafka"
    assert result["surges"] == 2 and result["detected"] == 2 and result["recall"] == 1.0
    assert result["notifications_sent"] >= result["detected"]
    kafka = result["kafka"]
    produced = result["headlines"]  # the 300 rows and the surges' headlines
    assert produced > 300 and kafka["produced"] == kafka["end_offset"] == kafka["consumed"] == produced
    assert kafka["dead_lettered"] == 0 and kafka["unlabelled"] == 0 and kafka["stored"] == produced
    assert kafka["topic"].startswith("bench-alerts-") and kafka["steps"] > 100  # one batch per 10 event minutes
    # Every stored row came through the run's topic (its ids are the replay's), and the group committed them all.
    assert ScoredNews.objects.filter(message_id__startswith=kafka["group"].replace("bench-alerts-", "bench-") + "-").count() == produced
    reader = KafkaConsumer(**kafka_client_options(), group_id=kafka["group"], enable_auto_commit=False)
    try:
        assert reader.committed(TopicPartition(kafka["topic"], 0)) == produced
    finally:
        reader.close()


def test_without_a_broker_it_names_the_address_how_to_start_one_and_the_fast_path(settings) -> None:  # noqa: ANN001
    from services.errors import ServiceUnavailable

    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:9"  # nothing listens on the discard port
    with pytest.raises(ServiceUnavailable) as caught:
        bench_alerts.alerts_bench(rows=synthetic_rows(50), days=2, warmup_days=1, surges=1, tickers=2, quiet=True)
    message = caught.value.message
    assert "127.0.0.1:9" in message and "deploy/kafka.sh start" in message and "--no-kafka" in message


def model_rows(n: int = 240) -> list[tuple[str, str]]:
    """Texts the tiny `sentiment` champion was trained on the kind of, with the dataset's label ids."""
    from tests.services.conftest import sentiment_rows

    ids = {"bearish": "0", "bullish": "1", "neutral": "2"}
    texts, labels = sentiment_rows(n, seed=4)
    return [(text, ids[label]) for text, label in zip(texts, labels)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kafka", [False, True])
def test_with_model_scores_the_sentiment_champion_scores_every_replayed_headline(kafka: bool, tiny_sentiment_model) -> None:  # noqa: ANN001, F811
    from apps.sentiment.models import ScoredNews
    from services.registry.serving import texts_classify
    from services.sentiment.scoring import probs_score

    result = bench_alerts.alerts_bench(rows=model_rows(), semantics="new", days=2, warmup_days=1, surges=2, tickers=3,
                                       step_minutes=10, kafka=kafka, scores="model", quiet=True)
    assert KEYS <= set(result) and result["scores"] == "model"
    assert result["models"]["sentiment"] == "sentiment v1" and "keyword lists" in result["models"]["topic"]
    assert ScoredNews.objects.count() == result["headlines"]
    assert set(ScoredNews.objects.values_list("model_task", "model_version")) == {("sentiment", 1)}
    # The stored scores are the champion's, not the labels' (which are ±0.75 or 0 with a jitter of 0.1 at most).
    rows = list(ScoredNews.objects.order_by("id")[:20])
    output = texts_classify(task="sentiment", texts=[r.headline for r in rows])
    expected = [scored.score for scored in probs_score(probs=output.probs, label_names=output.label_names)]
    assert [r.score for r in rows] == pytest.approx(expected, abs=1e-4)
    if kafka:
        assert "unlabelled" not in result["kafka"] and result["kafka"]["stored"] == result["headlines"]
    else:
        assert result["model_failed"] == 0


def test_with_model_scores_and_no_champion_it_says_how_to_register_one_and_writes_nothing() -> None:
    from apps.sentiment.models import Ticker
    from services.errors import NotFound

    Ticker.objects.create(symbol="KEEP")
    with pytest.raises(NotFound) as caught:
        bench_alerts.alerts_bench(rows=synthetic_rows(50), days=2, warmup_days=1, surges=1, tickers=2, kafka=False,
                                  scores="model", quiet=True)
    message = caught.value.message
    assert "no `sentiment` champion" in message and "train_adapter --task sentiment" in message
    assert "--scores labels" in message
    assert list(Ticker.objects.values_list("symbol", flat=True)) == ["KEEP"]  # the run stopped before its reset


def test_the_result_says_which_scores_were_used() -> None:
    result = bench_alerts.alerts_bench(rows=synthetic_rows(), days=2, warmup_days=1, surges=1, tickers=2, step_minutes=10,
                                       kafka=False, quiet=True)
    assert result["scores"] == "labels" and result["models"]["sentiment"] == "human labels"
    assert result["rule"]["for_evaluations"] == 3 and result["rule"]["clear_threshold"] == 1.5  # a new rule's defaults
