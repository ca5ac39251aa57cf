"""Where each shared vector space stands: revision, active and pending encoder, vectors stored, keys still missing.

    python manage.py vectors_status [--space NAME] [--check]

One JSON line per space: {"space", "revision", "generation", "encoder", "pending_encoder", "count", "missing",
"progress", "snapshot"}. `--check` first asks for the switch of every space whose task's encoder changed (what the
beat's "vectors encoder check" does), e.g. after a promotion made while no worker ran.
"""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from apps.vectors.models import VectorSpace
from services.errors import SuiteError
from services.output import json_line
from services.vectors import encoder_switch_check, space_status


class Command(BaseCommand):
    help = "Show the shared vector spaces (revision, encoders, counts); --check asks for pending encoder switches."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--space", default=None, help="one space by name (e.g. recommender, support:3)")
        parser.add_argument("--check", action="store_true", help="first mark changed encoders pending (re-embedded by a worker)")

    def handle(self, *args, **opts) -> None:  # noqa: ANN002, ANN003
        try:
            if opts["check"]:
                encoder_switch_check(space=opts["space"])
            names = [opts["space"]] if opts["space"] else list(VectorSpace.objects.values_list("name", flat=True))
            for name in names:
                self.stdout.write(json_line(space_status(space=name)))
        except SuiteError as exc:
            raise CommandError(exc.message) from None
