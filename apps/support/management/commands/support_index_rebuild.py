"""Rebuild a knowledge base's vectors: embed every item whose vector is missing or stale, drop those of removed items.

Imports and edits keep the vectors in step by themselves, and a new encoder (SUPPORT_EMBED_TASK's champion) is
built beside the old one by the vector store; this is the repair, e.g. after rows were changed behind the app's back.

    python manage.py support_index_rebuild [--kb default] [--async]

With --async the work goes to a Celery worker (task support.index_rebuild) and the task id is printed.
The last line printed is one JSON object.
"""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from services.errors import SuiteError
from services.output import json_line


class Command(BaseCommand):
    help = "Re-embed a support knowledge base's vectors where needed (in this process, or on a worker with --async)."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--kb", default="default")
        parser.add_argument("--async", dest="run_async", action="store_true", help="queue it for a Celery worker")

    def handle(self, *args, **opts) -> None:  # noqa: ANN002, ANN003
        if opts["run_async"]:
            from apps.support.tasks import index_rebuild

            self.stdout.write(json_line({"kb": opts["kb"], "task_id": index_rebuild.delay(opts["kb"]).id}))
            return
        from pipelines.support_index import kb_index_rebuild

        try:
            self.stdout.write(json_line(kb_index_rebuild(kb_name=opts["kb"])))
        except SuiteError as exc:
            raise CommandError(exc.message) from None
