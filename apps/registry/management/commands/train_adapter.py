"""Train a PEFT adapter (LoRA by default) on a CSV/JSONL file and register it as the task's next version and challenger.

    python manage.py train_adapter --task sentiment --data news.csv [--text-col text] [--label-col label] [--base NAME] [--epochs N]
        [--peft lora|adalora|ia3]

The last line printed is one JSON object: {"task", "version", "accuracy", "macro_f1", "n_train", "n_val", "seconds", ...}.
"""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from pipelines.training import TrainRequest, adapter_train
from services.errors import SuiteError
from services.ml.training import PEFT_METHODS
from services.output import json_line


class Command(BaseCommand):
    help = "Train a LoRA adapter and register it (challenger; champion when it is the task's first)."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--task", required=True, help="sentiment, intent, recommender or any new task name")
        parser.add_argument("--data", required=True, help="CSV or JSONL file")
        parser.add_argument("--text-col", default="text", help="text column (for pair tasks: the query column)")
        parser.add_argument("--label-col", default="label", help="label column (for pair tasks: the item column)")
        parser.add_argument("--base", default=None, help="base model name (default: the registry's default base)")
        parser.add_argument("--epochs", type=int, default=None, help="upper bound on epochs (early stopping may end sooner)")
        parser.add_argument("--kind", choices=["classifier", "pairs"], default=None,
                            help="classifier or pairs (embedding tuning from query/item pairs); default: the task's kind, for a "
                                 "new task its retraining plug-in's (retrieval, recommender: pairs), else classifier")
        parser.add_argument("--peft", choices=PEFT_METHODS, default=None,
                            help="the PEFT method: lora (default), adalora or ia3; saved in the artifact's config")

    def handle(self, *args, **opts) -> None:  # noqa: ANN002, ANN003
        if opts["epochs"] is not None and opts["epochs"] < 1:
            raise CommandError("--epochs must be at least 1.")
        if opts["peft"] is not None and opts["peft"] not in PEFT_METHODS:  # call_command(peft=...) skips argparse's choices
            raise CommandError(f"--peft {opts['peft']!r} is not a PEFT method the suite trains; use one of {', '.join(PEFT_METHODS)}.")
        request = TrainRequest(task=opts["task"], data=opts["data"], text_col=opts["text_col"], label_col=opts["label_col"],
                               base=opts["base"], epochs=opts["epochs"], kind=opts["kind"], peft=opts["peft"],
                               created_by="cli:train_adapter")
        try:
            summary = adapter_train(request, progress=True)
        except SuiteError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(json_line(summary))
