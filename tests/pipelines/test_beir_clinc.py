"""pipelines.beir_clinc: CLINC150's shape in, files that retrieval_eval's own readers accept out."""
from __future__ import annotations

import json
from pathlib import Path

from pipelines.beir_clinc import beir_clinc_write
from pipelines.retrieval_eval import corpus_read, qrels_read, queries_read


def test_each_query_is_judged_relevant_to_every_training_question_of_its_intent_and_no_other(tmp_path: Path) -> None:
    source = tmp_path / "data_full.json"
    source.write_text(json.dumps({
        "train": [["what is my balance", "balance"], ["how much money do i have", "balance"], ["book a table", "restaurant"]],
        "test": [["balance please", "balance"], ["reserve a table for two", "restaurant"]],
        "oos_train": [["tell me a joke about cats", "oos"]], "oos_test": [["who won the game", "oos"]]}))
    out = beir_clinc_write(out=tmp_path / "beir", n_queries=5, seed=0, source=source)
    docs = corpus_read(path=Path(out["corpus"]))
    queries = queries_read(path=Path(out["queries"]))
    qrels = qrels_read(path=Path(out["qrels"]), queries=queries, corpus_ids={doc.id for doc in docs})
    assert out["n_docs"] == 3 and out["n_queries"] == 2  # in-scope only: out-of-scope questions have no duplicate
    by_text = {text: query_id for query_id, text in queries.items()}
    texts = {doc.id: doc.text for doc in docs}
    assert sorted(texts[d] for d in qrels[by_text["balance please"]]) == ["how much money do i have", "what is my balance"]
    assert [texts[d] for d in qrels[by_text["reserve a table for two"]]] == ["book a table"]
