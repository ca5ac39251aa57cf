"""Import a catalogue and interactions (CSV or JSONL) into the recommender, embedding new or changed item texts.

    python manage.py recommender_import --items items.csv --interactions interactions.jsonl [--no-progress]

items: item_id,title[,description,category,tags,price,in_stock]; interactions: user_id,item_id[,event][,timestamp][,event_id].
Re-running with the same files changes nothing. Bad rows are listed as "file:line: reason" (stderr) while the good
ones are imported. The last line printed is one JSON object: {"items": {...}, "interactions": {...}}.
"""
from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from services.errors import SuiteError
from services.output import json_line
from services.recommender.importing import files_import


class Command(BaseCommand):
    help = "Import recommender items and interactions from CSV/JSONL files."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--items", default=None, help="CSV or JSONL: item_id,title[,description,category,tags]")
        parser.add_argument("--interactions", default=None, help="CSV or JSONL: user_id,item_id[,event][,timestamp][,event_id]")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **opts) -> None:  # noqa: ANN002, ANN003
        if not opts["items"] and not opts["interactions"]:
            raise CommandError("Give --items and/or --interactions.")
        bars: dict[str, tqdm] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if opts["no_progress"]:
                return
            bar = bars.get(stage)
            if bar is None:
                bar = bars[stage] = tqdm(total=total, desc=stage, unit="row", file=sys.stderr, leave=False)
            bar.total, bar.n = total, done
            bar.refresh()

        try:
            report = files_import(items=Path(opts["items"]) if opts["items"] else None,
                                  interactions=Path(opts["interactions"]) if opts["interactions"] else None, progress=progress)
        except SuiteError as exc:
            raise CommandError(exc.message) from None
        finally:
            for bar in bars.values():
                bar.close()
        for part in report.values():
            for error in part["errors"]:
                self.stderr.write(error)
        self.stdout.write(json_line(report))
