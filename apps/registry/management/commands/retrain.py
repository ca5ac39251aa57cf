"""Retrain a task from its feedback now: the same job Celery beat runs (`training.retrain`).

    python manage.py retrain --task sentiment [--force] [--base-data train.csv --held-back eval.csv]

The last line printed is one JSON object: {"task", "ran", "version", "promoted", "reason", "metrics", "champion_metrics"};
`ran` is false, with the reason, when too few new examples exist and --force is not given, or another run holds the lock.
"""
from __future__ import annotations

from django.core.management.base import CommandError

from apps.core.commands import OwnVersionOption

from services.errors import SuiteError
from services.output import json_line
from services.registry.retrain import RetrainBusy, retrain_busy_summary, retrain_summary, task_data_set


class Command(OwnVersionOption):
    help = "Retrain a task on its base data plus feedback; gate the new version on the held-back set."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--task", required=True)
        parser.add_argument("--force", action="store_true", help="train even with too few new examples")
        parser.add_argument("--base-data", default=None, help="set the task's base training file (text,label CSV/JSONL)")
        parser.add_argument("--held-back", default=None, help="set the task's fixed held-back evaluation file")

    def handle(self, *args, **opts) -> None:  # noqa: ANN002, ANN003
        from pipelines.retrain import retrain_run

        try:
            if opts["base_data"] or opts["held_back"]:
                task_data_set(task=opts["task"], base_data=opts["base_data"], held_back=opts["held_back"])
            run = retrain_run(task=opts["task"], force=opts["force"])
            if run.n_skipped_rows:  # said before the JSON line, which keeps its keys
                self.stderr.write(f"{run.n_skipped_rows} rows of the task's files were skipped:")
                for row in run.skipped_rows:
                    self.stderr.write(f"  {row}")
                if run.n_skipped_rows > len(run.skipped_rows):
                    self.stderr.write(f"  ... and {run.n_skipped_rows - len(run.skipped_rows)} more")
            summary = retrain_summary(run)
        except RetrainBusy as exc:
            summary = retrain_busy_summary(task=opts["task"], reason=exc.message)
        except SuiteError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(json_line(summary))
