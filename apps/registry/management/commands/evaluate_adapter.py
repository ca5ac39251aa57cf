"""Evaluate a registered classifier adapter on a labelled CSV/JSONL file.

    python manage.py evaluate_adapter --task sentiment --data valid.csv [--text-col text] [--label-col label]
        [--version N | --alias champion] [--predictions PATH]

Calibration is printed before and after the version's temperature (fitted on its validation split when trained):
`ece_uncalibrated` and `ece` (expected calibration error, 15 bins; served probabilities are the calibrated ones).
--predictions writes one JSON line per example: {"text", "gold", "predicted", "probability"} (probability of the predicted
label, as served).

The last line printed is one JSON object: {"task", "version", "accuracy", "macro_f1", "ece", "ece_uncalibrated",
"temperature", "n"}.
"""
from __future__ import annotations

from pathlib import Path

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
        parser.add_argument("--predictions", help="write one JSON line per example (text, gold, predicted, probability) here")

    def handle(self, *args, **opts) -> None:  # noqa: ANN002, ANN003
        try:
            version = version_get(task_name=opts["task"], version=opts["version"], alias=opts["alias"])
            artifact_verify(folder=version.path, expected_sha256=version.sha256)
            data = dataset_read(path=opts["data"], text_col=opts["text_col"], label_col=opts["label_col"])
            rows: list[dict] | None = [] if opts["predictions"] else None
            metrics = artifact_evaluate(folder=version.path, texts=data.texts, labels=data.labels, base_path=version.base.path,
                                        predictions=rows)
            if rows is not None:
                predictions_write(path=Path(opts["predictions"]), rows=rows)
        except SuiteError as exc:
            raise CommandError(exc.message) from None
        if rows is not None:
            self.stdout.write(f"wrote {len(rows)} predictions to {opts['predictions']}")
        self.stdout.write(json_line({"task": opts["task"], "version": version.version, "accuracy": metrics["accuracy"],
                                      "macro_f1": metrics["macro_f1"], "ece": metrics["ece"],
                                      "ece_uncalibrated": metrics["ece_uncalibrated"], "temperature": metrics["temperature"],
                                      "n": metrics["n"]}))


def predictions_write(*, path: Path, rows: list[dict]) -> None:
    """One JSON object per line, written to a temporary file beside `path` then renamed (no half-written file is left)."""
    import json
    import os
    import tempfile

    if not path.parent.is_dir():
        raise SuiteError(f"--predictions {path}: the folder {path.parent} does not exist.", field="predictions")
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            for row in rows:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
