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


class ProgressBar:
    """A tqdm bar on stderr driven by a `progress(done, total)` callback (the services' progress signature), or
    nothing with `enabled=False` (--no-progress). Use as a context manager; the callback is `.update`."""

    def __init__(self, *, unit: str, enabled: bool = True) -> None:
        import sys

        from tqdm import tqdm

        self.bar = tqdm(total=0, unit=unit, file=sys.stderr, leave=False) if enabled else None

    def update(self, done: int, total: int) -> None:
        if self.bar is not None:
            self.bar.total = total
            self.bar.n = done
            self.bar.refresh()

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
