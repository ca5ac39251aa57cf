"""Return a task's champion to the version it replaced.

    python manage.py registry_rollback --task sentiment [--reason "..."]
"""
from __future__ import annotations

import getpass
from dataclasses import asdict

from django.core.management.base import BaseCommand, CommandError

from services.errors import SuiteError
from services.output import json_line
from services.registry.versions import version_rollback


class Command(BaseCommand):
    help = "Roll a task's champion back to the previous one."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--task", required=True)
        parser.add_argument("--reason", default="")
        parser.add_argument("--actor", default=None)

    def handle(self, *args, **opts) -> None:  # noqa: ANN002, ANN003
        try:
            outcome = version_rollback(task_name=opts["task"], actor=opts["actor"] or f"cli:{getpass.getuser()}",
                                       reason=opts["reason"])
        except SuiteError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(json_line({"task": opts["task"], **asdict(outcome)}))
