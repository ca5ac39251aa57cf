"""Retrieval quality (BEIR format) of the support desk's production retrieval path.

    python manage.py retrieval_eval --corpus corpus.jsonl --queries queries.jsonl --qrels qrels.tsv \
        [--kb NAME] [--rerank/--no-rerank] [--retriever hybrid|dense|lexical] [--no-progress]

The corpus is imported as documents into a knowledge base of its own (reused when it already holds exactly this
corpus) and embedded here. The last line printed is one JSON object: {"ndcg_at_10", "recall_at_10", "recall_at_100",
"mrr_at_10", "n_queries", "n_docs", "seconds"}; the line before it (stderr) says which path ran and the per-query
p50/p95 in milliseconds. A bad file is refused with its name and line numbers.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from pipelines.retrieval_eval import retrieval_evaluate
from services.errors import SuiteError
from services.output import json_line


class Command(BaseCommand):
    help = "nDCG@10, recall@10/@100 and MRR@10 of the support retrieval path on a BEIR-format data set."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--corpus", required=True, help="JSON Lines: {_id, title, text}")
        parser.add_argument("--queries", required=True, help="JSON Lines: {_id, text}")
        parser.add_argument("--qrels", required=True, help="TSV with a header: query-id, corpus-id, score")
        parser.add_argument("--kb", default="retrieval-eval", help="knowledge base to import the corpus into")
        parser.add_argument("--rerank", action=argparse.BooleanOptionalAction, default=True,
                            help="order the fused candidates with the ranking stage (default) or keep the fused order")
        parser.add_argument("--retriever", default="hybrid", choices=("hybrid", "dense", "lexical"),
                            help="hybrid (production: dense + BM25 fused), or one ranking alone (baselines)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bars")

    def handle(self, *args, **opts) -> None:  # noqa: ANN002, ANN003
        bars: dict[str, tqdm] = {}

        def bar(name: str):  # noqa: ANN202
            def update(done: int, total: int) -> None:
                if opts["no_progress"]:
                    return
                found = bars.get(name) or bars.setdefault(name, tqdm(total=total, desc=name, file=sys.stderr, leave=False))
                found.total, found.n = total, done
                found.refresh()
            return update

        try:
            result = retrieval_evaluate(corpus=Path(opts["corpus"]), queries=Path(opts["queries"]),
                                        qrels=Path(opts["qrels"]), kb_name=opts["kb"], rerank=opts["rerank"],
                                        retriever=opts["retriever"], progress=bar("queries"),
                                        embed_progress=bar("embedding"))
        except SuiteError as exc:
            raise CommandError(exc.message) from None
        finally:
            for found in bars.values():
                found.close()
        self.stderr.write(json_line(result.pop("_detail")))
        self.stdout.write(json_line(result))
