"""No message stops ingestion: poison messages go to the DLQ with a reason, the rest of their batch is stored."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from apps.sentiment.models import ScoredNews
from pipelines.news_consumer import ConsumeStats, batch_process, news_consume
from services.errors import ServiceUnavailable
from services.sentiment.bus import Topics, lag_get
from tests.pipelines.conftest import (ProducerCapture, messages_produce, news_message, record_make, topic_read,
                                      words_classify)

pytestmark = pytest.mark.django_db(transaction=True)

POISON: list[tuple[str, bytes | None]] = [  # (what the DLQ reason must say, the message)
    ("published_at", json.dumps(news_message(90, published_at=1e20)).encode()),
    ("NaN", json.dumps(news_message(91, published_at=float("nan"))).encode()),  # json.dumps writes NaN
    ("Infinity", json.dumps(news_message(92, score=float("inf"))).encode()),
    ("too long", b'{"id": ' + b"9" * 5000 + b', "source": "wire", "published_at": 1, "headline": "x"}'),
    ("nested too deeply", b'{"id": "deep", "tickers": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    ("not UTF-8", b'{"id": "\xc3\x28"}'),
    ("not a JSON object", b'["a", "list"]'),
    ("longer than 20", json.dumps(news_message(93, tickers=["TOOLONGSYMBOL" * 3])).encode()),
    ("NUL", json.dumps(news_message(94, headline="nul \u0000 inside")).encode()),
    ("surrogate", b'{"id": "s", "source": "w", "published_at": 1, "headline": "\\ud800"}'),
    ("before 1970", json.dumps(news_message(95, published_at="1969-12-31T23:59:59Z")).encode()),
    ("out of range", json.dumps(news_message(96)).encode().replace(b'"source"', b'"x": 1e999, "source"')),
    ("`id` is longer than 200", json.dumps(news_message(97, id="i" * 201)).encode()),
    ("`source` is longer than 100", json.dumps(news_message(98, source="s" * 101)).encode()),
    ("`url` is longer than 1000", json.dumps(news_message(99, url="https://e.com/" + "u" * 1000)).encode()),
]


def test_every_poison_message_is_dead_lettered_with_its_reason_and_the_good_ones_are_stored(news_topics: Topics) -> None:
    good = [news_message(i) for i in range(6)]
    values: list[dict | bytes] = [good[0], *[v for _, v in POISON[:8]], good[1], good[2], *[v for _, v in POISON[8:]],
                                  *good[3:]]
    messages_produce(news_topics.raw, values, partitions=1)  # one partition: offsets follow the list
    stats = news_consume(group="g-poison", topics=news_topics, batch_size=8, max_messages=len(values),
                         idle_exit_seconds=20, classify=words_classify, after_store=None)

    assert stats.consumed == len(values) and stats.malformed == len(POISON) and stats.stored == len(good)
    assert set(ScoredNews.objects.values_list("message_id", flat=True)) == {m["id"] for m in good}
    dead = {m["offset"]: m for m in topic_read(news_topics.dlq, count=len(POISON))}
    offsets = [i for i, v in enumerate(values) if isinstance(v, bytes)]
    assert sorted(dead) == offsets
    for (expected, _), offset in zip(POISON[:8] + POISON[8:], offsets):
        assert expected.lower() in dead[offset]["reason"].lower(), (expected, dead[offset]["reason"])
    assert dead[offsets[4]]["truncated"] is True  # the 200 kB nested value is cut in the dead letter
    assert lag_get(group="g-poison", topic=news_topics.raw)["total"] == 0


def test_a_headline_the_model_fails_on_is_retried_then_dead_lettered_and_its_batch_stored(news_topics: Topics, settings) -> None:  # noqa: ANN001
    settings.NEWS_MODEL_RETRIES = 2
    settings.NEWS_MODEL_RETRY_BACKOFF_S = 0.0
    alone: list[int] = []

    def classify(texts: list[str]):  # noqa: ANN202
        if any("explodes" in t for t in texts):
            if len(texts) == 1:
                alone.append(1)
            raise RuntimeError("CUDA error: device-side assert triggered")
        return words_classify(texts)

    values = [news_message(i) for i in range(4)] + [news_message(4, headline="$ACME explodes the model")]
    values += [news_message(i) for i in range(5, 8)]
    messages_produce(news_topics.raw, values, partitions=1)
    stats = news_consume(group="g-model", topics=news_topics, batch_size=8, max_messages=8, idle_exit_seconds=20,
                         classify=classify, after_store=None)

    assert stats.stored == 7 and stats.malformed == 1 and stats.model_failed == 1
    assert not ScoredNews.objects.filter(message_id="n4").exists()
    assert len(alone) == 3  # alone once, then NEWS_MODEL_RETRIES more times
    [dead] = topic_read(news_topics.dlq, count=1)
    assert dead["offset"] == 4 and "model failed on this headline 3 times" in dead["reason"]
    assert "CUDA error" in dead["reason"]
    assert lag_get(group="g-model", topic=news_topics.raw)["total"] == 0


def test_an_outage_of_the_model_worker_is_retried_and_blames_no_message(news_topics: Topics) -> None:
    calls: list[int] = []

    def classify(texts: list[str]):  # noqa: ANN202
        calls.append(len(texts))
        if len(calls) == 1:
            raise ServiceUnavailable("the inference worker is not answering")
        return words_classify(texts)

    messages_produce(news_topics.raw, [news_message(i) for i in range(5)], partitions=1)
    stats = news_consume(group="g-outage", topics=news_topics, batch_size=8, max_messages=5, idle_exit_seconds=20,
                         classify=classify, after_store=None)
    assert stats.retried_batches == 1 and stats.malformed == 0
    assert ScoredNews.objects.count() == 5


def test_a_message_the_database_refuses_is_dead_lettered_and_the_rest_of_its_batch_stored(monkeypatch) -> None:  # noqa: ANN001
    import services.sentiment.store as store

    real = store.topics_find

    def topics_find(text: str) -> list[str]:  # a value the driver refuses, reached only in storage
        if "unstorable" in text:
            raise ValueError("A string literal cannot contain NUL (0x00) characters.")
        return real(text)

    monkeypatch.setattr(store, "topics_find", topics_find)
    producer, stats = ProducerCapture(), ConsumeStats()
    values = [news_message(0), news_message(1, headline="$ACME unstorable"), news_message(2)]
    records = [record_make(json.dumps(v).encode(), offset=i) for i, v in enumerate(values)]
    batch_process(records=records, producer=producer, topics=Topics.named("t"), classify=words_classify, stats=stats)

    assert set(ScoredNews.objects.values_list("message_id", flat=True)) == {"n0", "n2"}
    [dead] = producer.sent["t.dlq"]
    assert dead["offset"] == 1 and "could not be stored" in dead["reason"] and "NUL" in dead["reason"]
    assert stats.store_failed == 1 and sorted(v["id"] for v in producer.sent["t.scored"]) == ["n0", "n2"]


def test_a_far_future_headline_is_clamped_to_its_arrival_and_its_ticker_still_alerts() -> None:
    from django.db.models import Max

    from services.sentiment.alerts import rule_evaluate
    from services.sentiment.watchlist import rule_save, ticker_save

    ticker_save(symbol="ACME")
    rule = rule_save(symbol="ACME", kind="volume", threshold=3.0, channels=[])
    now = datetime.now(timezone.utc)
    values = [news_message(i, published_at=(now - timedelta(minutes=i)).isoformat()) for i in range(5)]
    values.append(news_message(5, published_at="2100-01-01T00:00:00Z"))
    producer = ProducerCapture()
    batch_process(records=[record_make(json.dumps(v).encode(), offset=i) for i, v in enumerate(values)],
                  producer=producer, topics=Topics.named("t"), classify=words_classify, stats=ConsumeStats())

    future = ScoredNews.objects.get(message_id="n5")
    assert now - timedelta(seconds=5) <= future.published_at <= datetime.now(timezone.utc)
    [scored] = [v for v in producer.sent["t.scored"] if v["id"] == "n5"]
    assert scored["published_at_given"].startswith("2100-01-01")
    # alerts_check judges a ticker at its newest headline's time: 2100 would leave the window empty.
    newest = ScoredNews.objects.filter(ticker_links__symbol="ACME").aggregate(t=Max("published_at"))["t"]
    assert newest < now + timedelta(minutes=1)
    assert rule_evaluate(rule=rule, now=newest).fired


def test_a_headline_a_little_ahead_keeps_its_own_time(settings) -> None:  # noqa: ANN001
    settings.NEWS_FUTURE_TOLERANCE_S = 300
    ahead = (datetime.now(timezone.utc) + timedelta(seconds=120)).replace(microsecond=0)
    batch_process(records=[record_make(json.dumps(news_message(0, published_at=ahead.isoformat())).encode(), offset=0)],
                  producer=ProducerCapture(), topics=Topics.named("t"), classify=words_classify, stats=ConsumeStats())
    assert ScoredNews.objects.get(message_id="n0").published_at == ahead
