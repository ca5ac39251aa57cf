"""Helpers shared by management commands."""
from __future__ import annotations

from django.core.management.base import BaseCommand


class OwnVersionOption(BaseCommand):
    """A command whose contract has its own `--version N` (Django's --version is replaced)."""

    def create_parser(self, prog_name: str, subcommand: str, **kwargs):  # noqa: ANN003, ANN201
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)


def demo_refuse_in_production(*, command: str) -> None:
    """Demo commands set known passwords and load sample data: under DJANGO_PROFILE=production they stop here."""
    from django.conf import settings
    from django.core.management.base import CommandError

    if settings.PRODUCTION:
        raise CommandError(f"{command} is for demos and refuses the production profile (DJANGO_PROFILE=production): "
                           "it would set known passwords and load sample data. Create people with user_create.")
