"""Check that Redis and Kafka answer; exit 1 with one clear message per missing service.

    python manage.py services_check [--only redis|kafka]
"""
from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from services.health import kafka_check, redis_check
from services.output import json_line


class Command(BaseCommand):
    help = "Check that the backing services (Redis, Kafka) are reachable."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--only", choices=["redis", "kafka"])

    def handle(self, *args, **opts) -> None:  # noqa: ANN002, ANN003
        checks = []
        if opts["only"] in (None, "redis"):
            checks.append(redis_check(url=settings.REDIS_URL))
        if opts["only"] in (None, "kafka"):
            checks.append(kafka_check(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS))
        failed = [c for c in checks if not c.ok]
        for check in checks:
            self.stdout.write(check.message)
        if failed:
            raise CommandError(" ".join(c.message for c in failed))
        self.stdout.write(json_line({c.name.lower(): c.ok for c in checks}))
