"""Fixtures for the sentiment app: private topics, a tiny trained `sentiment` model in a private registry."""
from __future__ import annotations

import csv
import uuid
from pathlib import Path

import pytest

from services.sentiment.bus import Topics, topics_ensure
from tests.helpers import run_json
from tests.services.conftest import sentiment_rows, tiny_base_write


@pytest.fixture
def app_topics(settings) -> Topics:  # noqa: ANN001
    """The default topics of this test (settings.NEWS_TOPIC_PREFIX), created with 3 partitions."""
    settings.NEWS_TOPIC_PREFIX = f"test-{uuid.uuid4().hex[:10]}.news"
    topics = Topics.named(settings.NEWS_TOPIC_PREFIX)
    topics_ensure(topics=topics, partitions=3)
    return topics


@pytest.fixture
def tiny_sentiment_model(settings, tmp_path: Path) -> Path:  # noqa: ANN001
    """A tiny BERT registered as default base and a `sentiment` champion trained on bullish/bearish/neutral rows."""
    from services.registry.serving import serving_reset

    settings.REGISTRY_DIR = tmp_path / "registry"
    base = tiny_base_write(tmp_path / "tiny-base")
    run_json("registry_add_base", name="tiny-bert", path=str(base), default=True)
    data = tmp_path / "train.csv"
    with data.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["headline", "sentiment"])
        writer.writerows(zip(*sentiment_rows(150, seed=1)))
    run_json("train_adapter", task="sentiment", data=str(data), text_col="headline", label_col="sentiment", epochs=4)
    serving_reset()
    yield settings.REGISTRY_DIR
    serving_reset()
