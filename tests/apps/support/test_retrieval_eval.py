"""retrieval_eval: BEIR files in, the production retrieval path, the last-line JSON contract, bad files named."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management.base import CommandError

from apps.support.models import Document, KnowledgeBase
from pipelines.retrieval_eval import mrr_at, ndcg_at, recall_at
from tests.helpers import run_json

pytestmark = pytest.mark.django_db

CORPUS = [
    {"_id": "d1", "title": "XR-200 warranty", "text": "The XR-200 speaker is covered for two years against defects."},
    {"_id": "d2", "title": "Backpack warranty", "text": "Our backpacks carry a lifetime warranty against seam failure."},
    {"_id": "d3", "title": "Returns", "text": "Send an item back within 30 days with the prepaid return label."},
    {"_id": "d4", "title": "QZ-77 reset", "text": "Hold the reset button of the QZ-77 router for 12 seconds."},
    {"_id": "d5", "title": "Shipping", "text": "We ship to 40 countries; parcels arrive in 3 to 5 days."},
]
QUERIES = [{"_id": "q1", "text": "What is the warranty on the XR-200?"}, {"_id": "q2", "text": "how do I reset the QZ-77"},
           {"_id": "q3", "text": "return an item"}, {"_id": "q4", "text": "unjudged query"}]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td4\t2\nq3\td3\t1\nq3\td5\t0\n"
KEYS = {"ndcg_at_10", "recall_at_10", "recall_at_100", "mrr_at_10", "n_queries", "n_docs", "seconds"}


@pytest.fixture
def beir(tmp_path: Path) -> dict[str, Path]:
    files = {"corpus": tmp_path / "corpus.jsonl", "queries": tmp_path / "queries.jsonl", "qrels": tmp_path / "qrels.tsv"}
    files["corpus"].write_text("\n".join(json.dumps(r) for r in CORPUS) + "\n", encoding="utf-8")
    files["queries"].write_text("\n".join(json.dumps(r) for r in QUERIES) + "\n", encoding="utf-8")
    files["qrels"].write_text(QRELS, encoding="utf-8")
    return files


def _run(files: dict[str, Path], **options: object) -> dict:
    return run_json("retrieval_eval", corpus=str(files["corpus"]), queries=str(files["queries"]),
                    qrels=str(files["qrels"]), no_progress=True, **options)


def test_the_corpus_is_imported_and_every_judged_query_is_scored(bow_encoder, beir) -> None:  # noqa: ANN001
    result = _run(beir)
    assert set(result) == KEYS
    assert result["n_queries"] == 3 and result["n_docs"] == 5  # q4 has no judgement
    assert result["ndcg_at_10"] == result["mrr_at_10"] == result["recall_at_10"] == result["recall_at_100"] == 1.0
    kb = KnowledgeBase.objects.get(name="retrieval-eval")
    assert sorted(Document.objects.filter(kb=kb).values_list("source", flat=True)) == [f"beir:d{i}" for i in range(1, 6)]
    baseline = _run(beir, rerank=False, retriever="lexical")  # the same KB reused: nothing imported twice
    assert set(baseline) == KEYS and Document.objects.filter(kb=kb).count() == 5 and baseline["recall_at_100"] == 1.0
    assert set(_run(beir, retriever="dense")) == KEYS


def test_another_corpus_replaces_an_evaluation_kb_but_never_a_real_one(bow_encoder, beir, tmp_path: Path) -> None:  # noqa: ANN001
    _run(beir)
    beir["corpus"].write_text("\n".join(json.dumps(r) for r in CORPUS[:4]) + "\n", encoding="utf-8")
    beir["qrels"].write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n", encoding="utf-8")
    assert _run(beir)["n_docs"] == 4
    assert Document.objects.filter(kb__name="retrieval-eval").count() == 4
    faq = tmp_path / "faq.csv"
    faq.write_text("question,answer\nHi?,Hello.\n", encoding="utf-8")
    run_json("support_import", faq=str(faq), kb="shop", no_progress=True)
    with pytest.raises(CommandError, match="'shop' holds other content"):
        _run(beir, kb="shop")


@pytest.mark.parametrize(("name", "content", "message"), [
    ("corpus", '{"_id": "d1", "text": "ok"}\nnot json\n', "corpus.jsonl:2: not JSON"),
    ("corpus", '{"_id": "d1", "text": "ok"}\n{"_id": "d1", "text": "again"}\n', "corpus.jsonl:2: `_id` 'd1' appears twice"),
    ("corpus", '{"_id": "d1", "title": "no text"}\n', "corpus.jsonl:1: `text` is missing or empty"),
    ("queries", '[1, 2]\n', "queries.jsonl:1: not a JSON object"),
    ("qrels", "q1\td1\t1\n", "qrels.tsv:1: the header must be"),
    ("qrels", "query-id\tcorpus-id\tscore\nq1\td1\tyes\n", "qrels.tsv:2: score 'yes' is not a whole number"),
    ("qrels", "query-id\tcorpus-id\tscore\nq1\td9\t1\n", "qrels.tsv:2: document 'd9' is not in the corpus"),
    ("qrels", "query-id\tcorpus-id\tscore\nq9\td1\t1\n", "qrels.tsv:2: query 'q9' is not in the queries file"),
    ("qrels", "query-id\tcorpus-id\tscore\nq1 d1 1\n", "qrels.tsv:2: 1 tab-separated fields, expected 3"),
])
def test_bad_files_are_refused_naming_file_and_line(bow_encoder, beir, name, content, message) -> None:  # noqa: ANN001
    beir[name].write_text(content, encoding="utf-8")
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace("[", r"\[")):
        _run(beir)
    assert not KnowledgeBase.objects.filter(name="retrieval-eval").exists()


def test_the_metrics_match_hand_computed_figures() -> None:
    judged = {"a": 2, "b": 1, "c": 0}
    # ranks: x, a, b → DCG = 2/log2(3) + 1/log2(4); ideal = 2/1 + 1/log2(3)
    expected = (2 / 1.5849625 + 1 / 2) / (2 + 1 / 1.5849625)
    assert ndcg_at(ranked=["x", "a", "b"], judged=judged, k=10) == pytest.approx(expected, rel=1e-6)
    assert recall_at(ranked=["x", "a"], judged=judged, k=10) == 0.5
    assert mrr_at(ranked=["x", "c", "b"], judged=judged, k=10) == pytest.approx(1 / 3)
    assert mrr_at(ranked=["x"] * 10 + ["a"], judged=judged, k=10) == 0.0


def test_the_clinc_built_set_imports_and_its_rerank_pairs_come_from_training_questions_only(bow_encoder, tmp_path: Path) -> None:  # noqa: ANN001
    import csv

    from pipelines.beir_clinc import beir_clinc_write, rerank_pairs_write
    from services.support.rerank import IRRELEVANT, RELEVANT, SEP

    train = [[f"{verb} my {thing} please", thing] for thing in ("card", "luggage", "order") for verb in ("find", "lock", "track")]
    test = [["where is my card", "card"], ["my luggage is lost", "luggage"]]
    source = tmp_path / "data_full.json"
    source.write_text(json.dumps({"train": train, "test": test}), encoding="utf-8")
    files = beir_clinc_write(out=tmp_path / "beir", n_queries=10, seed=0, source=source)
    result = run_json("retrieval_eval", corpus=files["corpus"], queries=files["queries"], qrels=files["qrels"], no_progress=True)
    assert result["n_docs"] == 9 and result["n_queries"] == 2
    counts = rerank_pairs_write(out=tmp_path / "pairs.csv", kb_name="retrieval-eval", n_queries=9, source=source)
    with (tmp_path / "pairs.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert counts == {"pairs": len(rows), "relevant": 9} and {row["label"] for row in rows} == {RELEVANT, IRRELEVANT}
    intent = {text: label for text, label in train}
    for row in rows:
        question, candidate = (part.strip() for part in row["text"].split(SEP))
        assert question in intent and candidate in intent and question != candidate  # nothing from the test questions
        assert (intent[question] == intent[candidate]) == (row["label"] == RELEVANT)
