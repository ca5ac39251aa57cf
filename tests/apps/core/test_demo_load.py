"""`demo_load` fills every app (support, sentiment, recommender) with the demo's data, on a tiny encoder, and a second run adds nothing."""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.helpers import run_json
from tests.services.conftest import tiny_base_write

pytestmark = pytest.mark.django_db(transaction=True)


def _topic_count(topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    from services.sentiment.bus import servers

    consumer = KafkaConsumer(bootstrap_servers=servers(), enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        ends, starts = consumer.end_offsets(parts), consumer.beginning_offsets(parts)
        return sum(ends[tp] - starts[tp] for tp in parts)
    finally:
        consumer.close()


def test_demo_load_fills_the_knowledge_base_watchlist_and_news_topic_and_is_idempotent(settings, tmp_path: Path) -> None:  # noqa: ANN001
    from apps.support.models import FaqEntry, Passage
    from apps.sentiment.models import AlertRule, Ticker
    from pipelines.demo_data import news_messages
    from services.registry.serving import serving_reset
    from services.support.retrieval import searches_reset

    settings.REGISTRY_DIR = tmp_path / "registry"
    settings.VAR_DIR = tmp_path / "var"
    settings.NEWS_TOPIC_PREFIX = f"test-{uuid.uuid4().hex[:10]}.news"
    searches_reset()
    serving_reset()
    run_json("registry_add_base", name="tiny-bert", path=str(tiny_base_write(tmp_path / "tiny-base")), default=True)
    try:
        first = run_json("demo_load")
        assert first["support"] == "kb default" and first["sentiment_model"] == "trained"
        assert FaqEntry.objects.filter(kb__name="default").count() == 20
        assert Passage.objects.filter(kb__name="default", title__icontains="XR-200").exists()
        assert set(Ticker.objects.values_list("symbol", flat=True)) == {"AAPL", "MSFT", "TSLA", "NVDA", "AMZN"}
        assert AlertRule.objects.filter(ticker__symbol="TSLA", kind="negative_share").count() == 1
        from apps.recommender.models import Event, Item

        assert first["recommender"].endswith("recommender") and Item.objects.count() == 30
        events = Event.objects.count()
        assert events == 229
        sent = len(news_messages())
        assert _topic_count(f"{settings.NEWS_TOPIC_PREFIX}.raw") == sent

        second = run_json("demo_load")
        assert second["sentiment_model"] == "champion present"
        assert FaqEntry.objects.filter(kb__name="default").count() == 20
        assert AlertRule.objects.filter(ticker__symbol="TSLA", kind="negative_share").count() == 1
        assert Item.objects.count() == 30 and Event.objects.count() == events  # event ids make events idempotent
        # replaying again re-sends the same ids: the consumer stores each id once (tested in the sentiment app)
        assert _topic_count(f"{settings.NEWS_TOPIC_PREFIX}.raw") == 2 * sent

        # Retraining is set up: the demo's imported events are the recommender's new feedback, and a run learns from them.
        assert first["retrain"] == second["retrain"] == ["sentiment", "recommender"]
        settings.RETRAIN_EPOCHS = 1
        summary = run_json("retrain", task="recommender")
        assert summary["ran"] is True and summary["promoted"] is True and 0 < summary["metrics"]["n"] <= 10, summary  # held-back shoppers with a new last item
        assert run_json("retrain", task="sentiment")["reason"].startswith("too few new examples: 0")
    finally:
        serving_reset()
        searches_reset()
