"""The `topic` task end to end with a tiny model: trained, gated and served; the consumer's batch tags headlines with
it (one call), the topic buckets and the dashboard API show it; without a champion the keyword lists tag them;
analysts' topic relabels are stored and retrain the task."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from apps.registry.models import Alias
from apps.sentiment.models import Bucket, Relabel, ScoredNews
from pipelines.news_consumer import ConsumeStats, batch_process
from services.sentiment.bus import Topics
from services.sentiment.topics import classify_topic_champion, topic_name
from tests.helpers import csv_write, run_json
from tests.pipelines.conftest import ProducerCapture, record_make, words_classify
from tests.services.conftest import sentiment_rows, tiny_base_write

pytestmark = pytest.mark.django_db(transaction=True)

TOPIC_IDS = {"bullish": "5", "bearish": "12", "neutral": "17"}  # Earnings, Legal | Regulation, Personnel Change


def topic_rows(n: int, *, seed: int) -> tuple[list[str], list[str]]:
    """The tiny vocabulary's three word classes as three topics, labelled by the public data's ids."""
    texts, labels = sentiment_rows(n, seed=seed)
    return texts, [TOPIC_IDS[label] for label in labels]


@pytest.fixture
def tiny_base(settings, tmp_path: Path) -> Path:  # noqa: ANN001
    from services.registry.serving import serving_reset

    settings.REGISTRY_DIR = tmp_path / "registry"
    run_json("registry_add_base", name="tiny-bert", path=str(tiny_base_write(tmp_path / "tiny-base")), default=True)
    serving_reset()
    yield tmp_path
    serving_reset()


def consume_batch(headlines: list[str], *, classify_topic=classify_topic_champion) -> ConsumeStats:  # noqa: ANN001
    records = [record_make(json.dumps({"id": f"h{i}", "source": "wire", "published_at": "2026-01-05T10:%02d:00Z" % i,
                                       "headline": h}).encode(), offset=i) for i, h in enumerate(headlines)]
    stats = ConsumeStats()
    batch_process(records=records, producer=ProducerCapture(), topics=Topics.named("t"), classify=words_classify,
                  stats=stats, classify_topic=classify_topic)
    return stats


def test_headlines_get_the_topic_champions_topic_in_the_rows_buckets_and_dashboard(tiny_base: Path, client,
                                                                                    role_users) -> None:  # noqa: ANN001
    from services.registry.serving import serving_reset, texts_classify

    client.force_login(role_users["risk_analyst"])
    # No topic champion: the keyword lists tag, and the page says so.
    consume_batch(["$ACME profit record dividend"])
    row = ScoredNews.objects.get(message_id="h0")
    assert row.topics == ["dividends", "earnings"] and row.topic_version is None
    tagger = client.get("/api/sentiment/topics?range=all").json()["tagger"]
    assert tagger == {"source": "keywords", "version": None, "text": "topics: keyword lists (no topic model registered)"}
    ScoredNews.objects.all().delete()
    Bucket.objects.all().delete()

    # The topic task trains like any classifier (ids of the public data), and passes the gate to champion.
    trained = run_json("train_adapter", task="topic", data=str(csv_write(tiny_base / "topic.csv", *topic_rows(150, seed=1))),
                       epochs=4)
    assert trained["version"] == 1 and Alias.objects.filter(task__name="topic", name="champion").exists()
    serving_reset()
    evaluated = run_json("evaluate_adapter", task="topic", data=str(csv_write(tiny_base / "held.csv", *topic_rows(60, seed=2))),
                         alias="champion")
    assert evaluated["accuracy"] > 0.6, evaluated

    calls = []

    def counted(texts: list[str]):  # noqa: ANN202
        calls.append(len(texts))
        return classify_topic_champion(texts)

    headlines = ["$ACME shares soars record today", "$ACME stock plunges loss", "$ACME board names ceo"]
    stats = consume_batch(headlines, classify_topic=counted)
    assert stats.stored == 3 and calls == [3]  # one topic call for the whole batch, beside the sentiment call
    served = texts_classify(task="topic", texts=headlines)
    expected = {"5": "Earnings", "12": "Legal | Regulation", "17": "Personnel Change"}
    rows = {r.headline: r for r in ScoredNews.objects.all()}
    for headline, label in zip(headlines, served.labels):
        assert rows[headline].topics == [expected[label]] and rows[headline].topic_version == 1
    first = expected[served.labels[0]]
    assert Bucket.objects.get(scope=f"#{first}", granularity=Bucket.DAY).count == sum(
        1 for r in rows.values() if r.topics == [first])
    assert Bucket.objects.filter(scope=f"ACME#{first}", granularity=Bucket.MINUTE).exists()

    body = client.get("/api/sentiment/topics?range=all&ticker=ACME").json()
    assert body["tagger"] == {"source": "model", "version": 1, "text": "topics: model v1"}
    assert {t["topic"] for t in body["topics"]} == {expected[label] for label in served.labels}
    assert body["headlines"] == 3
    series = client.get("/api/sentiment/series", {"range": "all", "topic": first}).json()
    assert series["scope"] == f"#{first}"
    assert sum(p["count"] for p in series["points"]) == sum(1 for r in rows.values() if r.topics == [first])
    page = client.get("/api/sentiment/headlines/page", {"range": "all", "topic": first}).json()
    assert page["total"] == sum(1 for r in rows.values() if r.topics == [first])
    names = client.get("/api/sentiment/topics/names").json()["names"]
    assert sorted(names) == sorted(expected.values())


def test_topic_relabels_are_stored_and_feed_the_topic_tasks_retraining(tiny_base: Path, client, role_users,
                                                                        settings) -> None:  # noqa: ANN001
    settings.RETRAIN_MIN_EXAMPLES = 3
    settings.RETRAIN_EPOCHS = 2
    # The champion is trained on names (what `topic_data` writes), the label set relabels and retraining use.
    texts, ids = topic_rows(60, seed=1)
    run_json("train_adapter", task="topic", data=str(csv_write(tiny_base / "topic.csv", texts, [topic_name(i) for i in ids])),
             epochs=1)
    consume_batch(["$ACME shares soars record", "$ACME stock plunges loss", "$ACME board names ceo"])
    client.force_login(role_users["risk_analyst"])
    news = list(ScoredNews.objects.order_by("id"))

    refused = client.post(f"/api/sentiment/headlines/{news[0].id}/topic", {"topic": "Weather"}, content_type="application/json")
    assert refused.status_code == 400 and refused.json()["field"] == "topic"
    assert client.post("/api/sentiment/headlines/999999/topic", {"topic": "Earnings"},
                       content_type="application/json").status_code == 404
    for row, topic in zip(news, ["Personnel Change", "Earnings", "Legal | Regulation"]):  # deliberately swapped
        made = client.post(f"/api/sentiment/headlines/{row.id}/topic", {"topic": topic}, content_type="application/json")
        assert made.status_code == 201, made.json()
        assert made.json()["topic"] == topic and made.json()["previous_topic"] == row.topics[0]
    stored = Relabel.objects.filter(task="topic")
    assert stored.count() == 3 and {r.source for r in stored} == {"analyst:analyst"}
    assert Relabel.objects.filter(task="sentiment").count() == 0  # sentiment's feedback is untouched

    base = csv_write(tiny_base / "base.csv", *topic_rows(60, seed=3))
    held = csv_write(tiny_base / "held.csv", *topic_rows(30, seed=4))
    result = run_json("retrain", task="topic", base_data=str(base), held_back=str(held))
    assert result["task"] == "topic" and result["ran"] is True and result["version"] == 2, result
    assert result["metrics"]["n"] == result["champion_metrics"]["n"] == 30  # both judged on the same held-back set
    from apps.registry.models import AdapterVersion, RetrainRun

    run = RetrainRun.objects.filter(task__name="topic").latest("id")
    assert run.n_new_examples == 3 and run.n_examples == 63  # the base rows and the three relabels
    v2 = AdapterVersion.objects.get(task__name="topic", version=2)
    assert sorted(v2.label_map) == ["Earnings", "Legal | Regulation", "Personnel Change"]  # names: ids and relabels joined
