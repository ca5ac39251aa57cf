"""Helpers shared by management commands."""
from __future__ import annotations

from django.core.management.base import BaseCommand


class OwnVersionOption(BaseCommand):
    """A command whose contract has its own `--version N` (Django's --version is replaced)."""

    def create_parser(self, prog_name: str, subcommand: str, **kwargs):  # noqa: ANN003, ANN201
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)
