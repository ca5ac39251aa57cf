"""List the registry rows that still hold a host path; with --convert, convert what this host can first.

    python manage.py registry_host_paths [--convert]

Migration 0007 converts absolute paths (locations relative to SUITE_REGISTRY_DIR, packaged bases by name, data files
copied into the registry) and leaves, and reports, the rows whose files were not on the migrating host. Mount the
registry folder (or the old files) where those rows say, then run this with --convert: it runs the same conversion.
Prints one JSON line {"not_converted": [why each row was left, with --convert], "host_paths": [every value that
still holds a host path]}; exits with an error when any remain.
"""
from __future__ import annotations

import importlib

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from services.output import json_line
from services.registry.versions import registry_host_paths

MIGRATION = "apps.registry.migrations.0007_registry_locations_without_host_paths"


class Command(BaseCommand):
    help = "List registry rows that still hold a host path (--convert: convert what this host can first)."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--convert", action="store_true", help="run migration 0007's conversion again first")

    def handle(self, *args, **opts) -> None:  # noqa: ANN002, ANN003
        left: list[str] = []
        if opts["convert"]:
            with transaction.atomic():
                left = importlib.import_module(MIGRATION).locations_convert(apps, None)
        remaining = registry_host_paths()
        self.stdout.write(json_line({"not_converted": [line.strip() for line in left], "host_paths": remaining}))
        if remaining:
            raise CommandError(f"{len(remaining)} registry value(s) still hold a host path.")
