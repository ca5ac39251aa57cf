"""Create the sentiment topics (`news.raw`, `news.scored`, `news.dlq`) where missing; safe to run any time.

    python manage.py news_topics [--partitions 6]
"""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from services.errors import SuiteError
from services.output import json_line
from services.sentiment.bus import topics_default, topics_ensure


class Command(BaseCommand):
    help = "Create the news.raw / news.scored / news.dlq topics where missing."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--partitions", type=int, default=None, help="default: the NEWS_TOPIC_PARTITIONS setting (6)")

    def handle(self, *args, **opts) -> None:  # noqa: ANN002, ANN003
        topics = topics_default()
        try:
            created = topics_ensure(topics=topics, partitions=opts["partitions"])
        except SuiteError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(json_line({"topics": topics.all(), "created": created}))
