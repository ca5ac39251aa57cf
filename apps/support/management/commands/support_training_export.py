"""Write the support desk's labelled feedback as training data for the `intent` task.

    python manage.py support_training_export --out intent-feedback.csv
    python manage.py train_adapter --task intent --data intent-feedback.csv

CSV columns: text,label,source,created_at (labelled examples only: thumbs up, knowledge gaps added with an intent).
The last line printed is one JSON object: {"out", "rows", "rejected"}.

    python manage.py support_training_export --task retrieval --out retrieval-pairs.csv
    python manage.py train_adapter --task retrieval --data retrieval-pairs.csv --text-col query --label-col item

With `--task retrieval`: the `retrieval` task's training pairs (the knowledge bases' material and relevant feedback,
less the held-back queries its retraining judges on; services/support/retrieval_task.py), columns query,item;
"rejected" is the number of held-back pairs left out.
"""
from __future__ import annotations

import csv
from pathlib import Path

from django.core.management.base import BaseCommand

from apps.support.models import TrainingExample
from services.output import json_line


class Command(BaseCommand):
    help = "Export support feedback as a CSV for train_adapter --task intent."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--out", required=True)
        parser.add_argument("--task", default="intent")

    def handle(self, *args, **opts) -> None:  # noqa: ANN002, ANN003
        if opts["task"] == "retrieval":
            self._retrieval_pairs(opts["out"])
            return
        examples = TrainingExample.objects.filter(task=opts["task"]).order_by("created_at", "id")
        labelled = examples.exclude(label="")
        with Path(opts["out"]).open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label", "source", "created_at"])
            for example in labelled:
                writer.writerow([example.text, example.label, example.source, example.created_at.isoformat()])
        self.stdout.write(json_line({"out": opts["out"], "rows": labelled.count(), "rejected": examples.filter(label="").count()}))

    def _retrieval_pairs(self, out: str) -> None:
        from services.support.retraining import RetrievalData

        data = RetrievalData()
        with Path(out).open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["query", "item"])
            writer.writerows((pair.query, pair.text) for pair in data.train)
        self.stdout.write(json_line({"out": out, "rows": len(data.train), "rejected": len(data.held)}))
