"""A BEIR-format duplicate-question set from CLINC150 (devdata), for `retrieval_eval` where no BEIR set is at hand.

    python -m pipelines.beir_clinc --out var/beir-clinc [--queries 1000] [--seed 0]
    python -m pipelines.beir_clinc --rerank-pairs pairs.csv [--kb retrieval-eval] [--pair-queries 2500]

Like BEIR's Quora set: the corpus is the in-scope training questions (one document each, no title), the queries a
sample of the in-scope test questions, and a query's relevant documents every training question of its intent
(score 1). It measures finding questions that ask the same thing in other words, the support desk's FAQ case; it
says nothing of long passages. CLINC150: Larson et al. 2019, CC BY 3.0; read from ../shared/devdata/clinc150 and
never committed. Last line: {"corpus", "queries", "qrels", "n_docs", "n_queries"}.

`--rerank-pairs` (after `retrieval_eval` imported the corpus into `--kb`): a `text,label` CSV for `train_adapter --task
rerank`, from the TRAINING questions only, as `services.support.rerank.kb_pairs` builds pairs: each sampled question
with another training question of its intent (relevant), the first 3 production candidates of another intent and
one random question (irrelevant), written with `pair_text`. A stand-in for the paraphrases agents accept, since this
corpus has no titles, headings or answers for the `rerank` retraining to read. Last line: {"pairs", "relevant"}.
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


def rerank_pairs_write(*, out: Path, kb_name: str, n_queries: int, seed: int = 13, source: Path = CLINC) -> dict[str, int]:
    """The rerank training CSV described in the module docstring; needs Django (the knowledge base's search)."""
    import csv

    from apps.support.models import KnowledgeBase
    from services.support.rerank import IRRELEVANT, RELEVANT, pair_text
    from services.support.retrieval import kb_search

    train = json.loads(source.read_text(encoding="utf-8"))["train"]
    intent_of_text = {" ".join(text.split()): intent for text, intent in train}
    search = kb_search(kb=KnowledgeBase.objects.get(name=kb_name))
    items = list(search.items.values())
    intent_of = {item.id: intent_of_text.get(" ".join(item.text.split())) for item in items}
    by_intent: dict[str, list] = {}
    for item in items:
        by_intent.setdefault(intent_of[item.id], []).append(item)
    rng = random.Random(seed)
    rows: list[tuple[str, str]] = []
    for text, intent in rng.sample(train, min(n_queries, len(train))):
        question = " ".join(text.split())
        others = [item for item in by_intent.get(intent, []) if " ".join(item.text.split()) != question]
        if not others:
            continue
        rows.append((pair_text(question=question, item=rng.choice(others)), RELEVANT))
        negatives = [hit.item for hit in search.candidates(text=question, n=12) if intent_of[hit.item.id] != intent][:3]
        for _ in range(10):
            drawn = rng.choice(items)
            if intent_of[drawn.id] != intent:
                negatives.append(drawn)
                break
        rows += [(pair_text(question=question, item=item), IRRELEVANT) for item in negatives]
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return {"pairs": len(rows), "relevant": sum(label == RELEVANT for _, label in rows)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "beir-clinc")
    parser.add_argument("--queries", type=int, default=1000, help="test questions sampled as queries (of 4,500)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rerank-pairs", type=Path, help="write rerank training pairs here instead (see above)")
    parser.add_argument("--kb", default="retrieval-eval", help="the knowledge base retrieval_eval imported the corpus into")
    parser.add_argument("--pair-queries", type=int, default=2500, help="training questions sampled for --rerank-pairs")
    args = parser.parse_args(argv)
    if args.rerank_pairs is not None:
        import os

        import django

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        django.setup()
        print(json_line(rerank_pairs_write(out=args.rerank_pairs, kb_name=args.kb, n_queries=args.pair_queries)))
        return
    print(json_line(beir_clinc_write(out=args.out, n_queries=args.queries, seed=args.seed)), file=sys.stdout)


if __name__ == "__main__":
    main()
