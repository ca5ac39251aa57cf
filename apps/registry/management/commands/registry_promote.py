"""Promote a version to champion when the task's gate passes (or with --force, logged).

    python manage.py registry_promote --task sentiment --version 3 [--force] [--reason "..."] [--actor NAME]
"""
from __future__ import annotations

import getpass
from dataclasses import asdict

from django.core.management.base import CommandError

from apps.core.commands import OwnVersionOption

from services.errors import SuiteError
from services.output import json_line
from services.registry.versions import version_promote


class Command(OwnVersionOption):
    help = "Promote a task's version to champion through the gate."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--task", required=True)
        parser.add_argument("--version", type=int, required=True)
        parser.add_argument("--force", action="store_true", help="skip the gate (admins only; recorded in the audit log)")
        parser.add_argument("--reason", default="")
        parser.add_argument("--actor", default=None, help="who is promoting (default: the shell user)")

    def handle(self, *args, **opts) -> None:  # noqa: ANN002, ANN003
        actor = opts["actor"] or f"cli:{getpass.getuser()}"
        try:
            outcome = version_promote(task_name=opts["task"], version=opts["version"], actor=actor,
                                      force=opts["force"], reason=opts["reason"])
        except SuiteError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(json_line({"task": opts["task"], **asdict(outcome)}))
        if not outcome.promoted:
            raise CommandError(outcome.reason)
