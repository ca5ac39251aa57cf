"""Evaluate the support bot (the production answering path) on labelled questions.

    python manage.py support_eval --data questions.csv [--kb default]

The last line printed is one JSON object: {"recall_at_1", "recall_at_3", "mrr", "intent_accuracy", "in_scope_accuracy",
"oos_recall", "handoff_rate", "n"} (null for a metric the data has no gold for; gold intent `oos` marks an
out-of-scope question, caught when handed off). Unusable rows are listed on stderr with their line numbers.
"""
from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from pipelines.support_eval import support_evaluate
from services.errors import SuiteError
from services.output import json_line


class Command(BaseCommand):
    help = "Recall@1/@3, MRR, intent accuracy and handoff rate of the support bot on a CSV/JSONL of questions."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--data", required=True, help="CSV/JSONL with question and a gold answer and/or intent")
        parser.add_argument("--kb", default="default", help="knowledge base name")

    def handle(self, *args, **opts) -> None:  # noqa: ANN002, ANN003
        try:
            result = support_evaluate(data=Path(opts["data"]), kb_name=opts["kb"])
        except SuiteError as exc:
            raise CommandError(exc.message) from None
        for error in result.pop("errors"):
            self.stderr.write(error)
        self.stdout.write(json_line(result))
