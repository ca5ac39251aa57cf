"""A BEIR-format duplicate-question set from CLINC150 (devdata), for `retrieval_eval` where no BEIR set is at hand.

    python -m pipelines.beir_clinc --out var/beir-clinc [--queries 1000] [--seed 0]

Like BEIR's Quora set: the corpus is the in-scope training questions (one document each, no title), the queries a
sample of the in-scope test questions, and a query's relevant documents every training question of its intent
(score 1). It measures finding questions that ask the same thing in other words, the support desk's FAQ case; it
says nothing of long passages. CLINC150: Larson et al. 2019, CC BY 3.0; read from ../shared/devdata/clinc150 and
never committed. Last line: {"corpus", "queries", "qrels", "n_docs", "n_queries"}.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from services.output import json_line

ROOT = Path(__file__).resolve().parent.parent
CLINC = ROOT.parent / "shared" / "devdata" / "clinc150" / "data_full.json"


def beir_clinc_write(*, out: Path, n_queries: int, seed: int, source: Path = CLINC) -> dict[str, object]:
    """Write corpus.jsonl, queries.jsonl and qrels.tsv under `out`; the file paths and counts."""
    if not source.is_file():
        raise SystemExit(f"{source} is absent: CLINC150 lives in ../shared/devdata (read its README).")
    data = json.loads(source.read_text(encoding="utf-8"))
    docs = [(f"d{i}", text, intent) for i, (text, intent) in enumerate(data["train"])]
    tests = [(f"q{i}", text, intent) for i, (text, intent) in enumerate(data["test"])]
    chosen = random.Random(seed).sample(tests, min(n_queries, len(tests)))
    by_intent: dict[str, list[str]] = {}
    for doc_id, _, intent in docs:
        by_intent.setdefault(intent, []).append(doc_id)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"corpus": out / "corpus.jsonl", "queries": out / "queries.jsonl", "qrels": out / "qrels.tsv"}
    with paths["corpus"].open("w", encoding="utf-8") as f:
        for doc_id, text, _ in docs:
            f.write(json.dumps({"_id": doc_id, "title": "", "text": text}) + "\n")
    with paths["queries"].open("w", encoding="utf-8") as f:
        for query_id, text, _ in chosen:
            f.write(json.dumps({"_id": query_id, "text": text}) + "\n")
    with paths["qrels"].open("w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for query_id, _, intent in chosen:
            f.writelines(f"{query_id}\t{doc_id}\t1\n" for doc_id in by_intent[intent])
    return {**{name: str(path) for name, path in paths.items()}, "n_docs": len(docs), "n_queries": len(chosen)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "beir-clinc")
    parser.add_argument("--queries", type=int, default=1000, help="test questions sampled as queries (of 4,500)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(json_line(beir_clinc_write(out=args.out, n_queries=args.queries, seed=args.seed)), file=sys.stdout)


if __name__ == "__main__":
    main()
