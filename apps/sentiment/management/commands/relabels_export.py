"""Write the analysts' relabels as training data for the `sentiment` task.

    python manage.py relabels_export --out relabels.csv
    python manage.py train_adapter --task sentiment --data relabels.csv   # (usually merged with the original data)
"""
from __future__ import annotations

from django.core.management.base import BaseCommand

from services.output import json_line
from services.sentiment.watchlist import relabels_export


class Command(BaseCommand):
    help = "Export relabelled headlines as a text,label CSV for train_adapter --task sentiment."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--out", required=True, help="CSV file to write")

    def handle(self, *args, **opts) -> None:  # noqa: ANN002, ANN003
        self.stdout.write(json_line({"file": opts["out"], "rows": relabels_export(path=opts["out"])}))
