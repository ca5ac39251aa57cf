"""Evaluate a registered classifier adapter on a labelled CSV/JSONL file.

    python manage.py evaluate_adapter --task sentiment --data valid.csv [--text-col text] [--label-col label] [--version N | --alias champion]

The last line printed is one JSON object: {"task", "version", "accuracy", "macro_f1", "n"}.
"""
from __future__ import annotations

from django.core.management.base import CommandError

from apps.core.commands import OwnVersionOption

from services.errors import SuiteError
from services.ml.artifacts import artifact_evaluate, artifact_verify
from services.ml.data import dataset_read
from services.output import json_line
from services.registry.versions import version_get


class Command(OwnVersionOption):
    help = "Accuracy and macro-F1 of a registered adapter version (default: the champion)."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--task", required=True)
        parser.add_argument("--data", required=True)
        parser.add_argument("--text-col", default="text")
        parser.add_argument("--label-col", default="label")
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--version", type=int)
        which.add_argument("--alias", choices=["champion", "challenger"])

    def handle(self, *args, **opts) -> None:  # noqa: ANN002, ANN003
        try:
            version = version_get(task_name=opts["task"], version=opts["version"], alias=opts["alias"])
            artifact_verify(folder=version.path, expected_sha256=version.sha256)
            data = dataset_read(path=opts["data"], text_col=opts["text_col"], label_col=opts["label_col"])
            metrics = artifact_evaluate(folder=version.path, texts=data.texts, labels=data.labels, base_path=version.base.path)
        except SuiteError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(json_line({"task": opts["task"], "version": version.version, "accuracy": metrics["accuracy"],
                                      "macro_f1": metrics["macro_f1"], "n": metrics["n"]}))
