"""Topics of headlines: the topic model's names (keyword lists without it), topic buckets, the breakdown and topic
rules reading them, the topic files and the topic task's retraining data."""
from __future__ import annotations

import csv
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from apps.sentiment.models import Bucket, Relabel, ScoredNews
from services.errors import NotFound, ServiceUnavailable
from services.ml.runtime import ClassifyOutput
from services.sentiment.messages import NewsItem
from services.sentiment.store import news_store
from services.sentiment.topics import TOPIC_LABELS, texts_topics, topic_files_write, topic_name
from tests.services.sentiment.helpers import scored

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=timezone.utc)


def ids_classify(texts: list[str]) -> ClassifyOutput:
    """A topic model trained on the public data's ids: 'dividend' → 4, 'merger' → 13, else 5 (Earnings)."""
    cols = ["4", "5", "13"]
    probs = np.array([[0.8, 0.1, 0.1] if "dividend" in t else [0.1, 0.1, 0.8] if "merger" in t else [0.1, 0.8, 0.1]
                      for t in texts], dtype=np.float32)
    return ClassifyOutput([cols[i] for i in probs.argmax(axis=1)], probs, cols, 3)


def test_topic_ids_and_names_read_as_the_default_topic_names() -> None:
    assert len(TOPIC_LABELS) == 20
    assert topic_name("5") == "Earnings" and topic_name(13) == "M&A | Investments" and topic_name("earnings") == "Earnings"
    assert topic_name("deals") == "deals"  # a name outside the default set (a custom task's) is kept


def test_the_topic_model_tags_each_text_with_one_call_and_leaves_the_rest_to_the_keyword_lists() -> None:
    calls = []

    def counted(texts: list[str]) -> ClassifyOutput:
        calls.append(len(texts))
        return ids_classify(texts)

    tags = texts_topics(texts=["acme dividend", "acme merger", "acme quarter"], classify=counted)
    assert calls == [3]  # one call for the batch
    assert tags.topics == [["Dividend"], ["M&A | Investments"], ["Earnings"]] and tags.versions == [3, 3, 3]

    def no_champion(texts: list[str]) -> ClassifyOutput:
        raise NotFound("Task 'topic' has no champion.")

    assert texts_topics(texts=["a", "b"], classify=no_champion).topics == [None, None]
    assert texts_topics(texts=["a"], classify=None).versions == [None]

    def nan_row(texts: list[str]) -> ClassifyOutput:
        out = ids_classify(texts)
        out.probs[1] = np.nan
        return out

    assert texts_topics(texts=["x dividend", "y"], classify=nan_row).topics == [["Dividend"], None]

    def broken(texts: list[str]) -> ClassifyOutput:
        raise RuntimeError("CUDA error")

    assert texts_topics(texts=["x"], classify=broken).topics == [None]  # sentiment goes on; keyword lists tag it

    def away(texts: list[str]) -> ClassifyOutput:
        raise ServiceUnavailable("the inference worker is down")

    with pytest.raises(ServiceUnavailable):  # the consumer retries the batch, as for the sentiment model
        texts_topics(texts=["x"], classify=away)


def store(rows: list[tuple[str, str, float, list[str] | None]], *, at: datetime = T0) -> None:
    """(id, headline, score, topics or None for the keyword lists) at `at`."""
    news_store(items=[NewsItem(id=i, source="wire", published_at=at, headline=h) for i, h, _, _ in rows],
               scores=[scored(s) for _, _, s, _ in rows], model_version=1,
               topics=[t for *_, t in rows], topic_versions=[4 if t is not None else None for *_, t in rows])


def bucket(scope: str, granularity: str = Bucket.HOUR) -> Bucket:
    return Bucket.objects.get(scope=scope, granularity=granularity)


@pytest.mark.django_db
def test_a_headline_counts_in_its_topic_and_in_each_ticker_within_the_topic() -> None:
    store([("a", "$ACME $BETA results", -0.6, ["Earnings"]), ("b", "$ACME results", 0.4, ["Earnings"]),
           ("c", "$ACME files", 0.0, []), ("d", "$BETA dividend raised", 0.2, None)])

    rows = {r.message_id: r for r in ScoredNews.objects.all()}
    assert rows["a"].topics == ["Earnings"] and rows["a"].topic_version == 4
    assert rows["d"].topics == ["dividends"] and rows["d"].topic_version is None  # the keyword lists (fallback)
    earnings = bucket("#Earnings")
    assert (earnings.count, earnings.negative_count) == (2, 1) and earnings.mean_score == pytest.approx(-0.1)
    assert bucket("ACME#Earnings").count == 2 and bucket("BETA#Earnings").count == 1
    assert bucket("#(none)").count == 1 and bucket("ACME#(none)").count == 1
    assert bucket("#dividends").count == 1 and bucket("BETA#dividends").count == 1
    for granularity in (Bucket.MINUTE, Bucket.HOUR, Bucket.DAY):
        assert bucket("#Earnings", granularity).count == 2


@pytest.mark.django_db
def test_the_topic_breakdown_and_topic_rules_read_the_topic_buckets_not_the_rows() -> None:
    from apps.sentiment.models import AlertRule
    from services.sentiment.alerts import rule_windows
    from services.sentiment.dashboard import topics_breakdown
    from services.sentiment.watchlist import rule_save, ticker_save

    ticker_save(symbol="ACME")
    store([(f"e{i}", "$ACME results", -0.5, ["Earnings"]) for i in range(3)] + [("m", "$ACME deal", 0.5, ["M&A | Investments"])])
    ScoredNews.objects.all().delete()  # the buckets stay: what follows can only come from them

    whole = topics_breakdown(since=T0 - timedelta(hours=1), granularity=Bucket.HOUR)
    assert whole["headlines"] == 4 and whole["limited"] is False
    assert whole["topics"][0] == {"topic": "Earnings", "count": 3, "mean_score": -0.5, "negative_share": 1.0}
    assert whole["topics"][1]["topic"] == "M&A | Investments"
    assert whole["tagger"]["source"] == "keywords" and "no topic model registered" in whole["tagger"]["text"]
    acme = topics_breakdown(ticker="acme", since=None, granularity=Bucket.DAY)
    assert [t["topic"] for t in acme["topics"]] == ["Earnings", "M&A | Investments"] and acme["headlines"] == 4
    assert topics_breakdown(ticker="ZZZ", granularity=Bucket.DAY)["topics"] == []

    topic_rule = rule_save(symbol=None, kind=AlertRule.NEGATIVE_SHARE, topic="Earnings", min_count=1)
    both_rule = rule_save(symbol="ACME", kind=AlertRule.NEGATIVE_SHARE, topic="M&A | Investments", min_count=1)
    recent, _ = rule_windows(rule=topic_rule, now=T0)
    assert (recent.count, recent.negative_share) == (3, 1.0)
    recent, _ = rule_windows(rule=both_rule, now=T0)
    assert (recent.count, recent.negative_share) == (1, 0.0)


def test_topic_files_get_topic_names_and_hold_back_part_of_every_label(tmp_path) -> None:  # noqa: ANN001
    source = tmp_path / "topics.csv"
    with source.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("text", "label"), *[(f"text {i}", str(i % 3)) for i in range(30)]])
    done = topic_files_write(source=source, out_dir=tmp_path / "out", held_back=0.2)
    assert (done["train_rows"], done["held_back_rows"], done["labels"]) == (24, 6, 3)
    with open(done["held_back"], encoding="utf-8") as f:
        held = list(csv.DictReader(f))
    assert sorted({r["label"] for r in held}) == ["Analyst Update", "Company | Product News", "Fed | Central Banks"]
    with open(done["train"], encoding="utf-8") as f:
        train_texts = {r["text"] for r in csv.DictReader(f)}
    assert not train_texts & {r["text"] for r in held}


@pytest.mark.django_db
def test_topic_relabels_are_the_topic_tasks_feedback_and_join_its_data_as_names(tmp_path, settings) -> None:  # noqa: ANN001
    from services.registry.retraining import retrainer_get
    from services.registry.versions import task_ensure
    from services.sentiment.retraining import TopicRetrainer
    from services.sentiment.watchlist import topic_relabel_create

    settings.REGISTRY_DIR = tmp_path / "registry"
    store([("r", "$ACME merger talks", 0.1, ["Earnings"])])
    news = ScoredNews.objects.get(message_id="r")
    relabel = topic_relabel_create(news_id=news.id, topic="13", source="analyst:ann")  # an id is stored as its name
    assert (relabel.task, relabel.label, relabel.previous_label) == ("topic", "M&A | Investments", "Earnings")
    Relabel.objects.create(news=news, text=news.headline, label="negative", source="analyst:ann")  # a sentiment one
    with pytest.raises(Exception, match="topic must be one of"):
        topic_relabel_create(news_id=news.id, topic="Weather", source="analyst:ann")

    plugin = retrainer_get("topic")
    assert isinstance(plugin, TopicRetrainer)
    assert [(e.text, e.label) for e in plugin.feedback()] == [("$ACME merger talks", "M&A | Investments")]
    assert plugin.incoming(None) == ["$ACME merger talks"]

    from services.registry.retrain import task_data_set

    base = tmp_path / "base.csv"
    with base.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("text", "label"), ("acme beats", "5"), ("acme pays", "4"), ("$ACME merger talks", "5"),
                                 ("beta pays", "4")])
    task_ensure(name="topic")
    task_row = task_data_set(task="topic", base_data=str(base), held_back=str(base))
    data = plugin.data(task_row=task_row, feedback=plugin.feedback(), until=datetime.now(timezone.utc))
    assert data.train_labels == ["Earnings", "Dividend", "Earnings", "Dividend"] and data.held_back.labels[1] == "Dividend"
    path, n, _ = data.train_file(folder=tmp_path)
    with path.open(encoding="utf-8") as f:
        written = {r["text"]: r["label"] for r in csv.DictReader(f)}
    assert n == 4 and written == {"acme beats": "Earnings", "acme pays": "Dividend", "beta pays": "Dividend",
                                  "$ACME merger talks": "M&A | Investments"}  # the analyst's label wins
