"""Rebuild the minute/hour/day topic buckets (or every bucket) from the stored headlines; safe to run again.

    python manage.py buckets_rebuild [--scopes topics|all] [--chunk 2000] [--no-progress]

For headlines stored before the topic aggregates existed (per topic and per ticker × topic): their topic buckets
are summed from the rows, so the topic breakdown and topic alert rules see them. The rebuild deletes the buckets
of those scopes and sums them again in one transaction: a rerun gives the same buckets, a failed run leaves the
old ones, and a consumer storing meanwhile waits for it. The last line printed is one JSON object:
{"scopes", "headlines", "buckets_deleted", "buckets"}.
"""
from __future__ import annotations

from django.core.management.base import BaseCommand

from apps.core.commands import ProgressBar
from services.output import json_line
from services.sentiment.store import REBUILD_SCOPES, buckets_rebuild


class Command(BaseCommand):
    help = "Rebuild the topic buckets (or, with --scopes all, every bucket) from the stored headlines."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--scopes", choices=sorted(REBUILD_SCOPES), default="topics",
                            help="topics: '#<topic>' and '<ticker>#<topic>' buckets (default); all: every bucket")
        parser.add_argument("--chunk", type=int, default=2000, help="headlines read per query")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **opts) -> None:  # noqa: ANN002, ANN003
        with ProgressBar(unit="headline", enabled=not opts["no_progress"]) as bar:
            report = buckets_rebuild(scopes=opts["scopes"], chunk=max(opts["chunk"], 1), progress=bar.update)
        self.stdout.write(json_line(report))
