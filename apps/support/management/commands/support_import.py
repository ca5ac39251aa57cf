"""Import FAQ pairs and documents into a knowledge base and bring its shared vectors in step.

    python manage.py support_import --faq faq.csv [--docs manuals/] [--kb default] [--prune] [--no-progress]

Re-running with the same files changes nothing; a changed answer or document is updated in place; with --prune,
entries of the FAQ file and documents of the folder that are no longer there are removed (and leave the index). Bad rows and
files are listed with their line numbers (stderr) while the good ones are imported. Changed items are embedded by an
`inference` worker (SUITE_VECTORS_EMBED=worker) or here, following the progress bar (`process`); until then they are
found by their words. The last line printed is one JSON object: {"kb", "added", "updated", "unchanged", "removed", "errors"}.
"""
from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.core.commands import ProgressBar
from services.errors import SuiteError
from services.output import json_line
from services.support.knowledge import kb_import


class Command(BaseCommand):
    help = "Import FAQ (CSV/JSONL) and documents (Markdown, HTML, PDF, text) into a support knowledge base."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--faq", default=None, help="CSV or JSONL with question,answer[,intent,url,title]")
        parser.add_argument("--docs", default=None, help="a document file or a folder of them")
        parser.add_argument("--kb", default="default", help="knowledge base name (created when new)")
        parser.add_argument("--prune", action="store_true",
                            help="also remove FAQ entries of this file / documents of this folder that are gone from it")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **opts) -> None:  # noqa: ANN002, ANN003
        try:
            with ProgressBar(unit="item", enabled=not opts["no_progress"]) as bar:
                report = kb_import(kb_name=opts["kb"], faq=Path(opts["faq"]) if opts["faq"] else None,
                                   docs=Path(opts["docs"]) if opts["docs"] else None, prune=opts["prune"], progress=bar.update)
        except SuiteError as exc:
            raise CommandError(exc.message) from None
        for error in report.errors:
            self.stderr.write(error)
        self.stdout.write(json_line({"kb": opts["kb"], **report.as_dict()}))
