"""Replay a CSV/JSONL file of headlines into `news.raw`.

    python manage.py news_replay --file headlines.csv [--rate 50] [--send-invalid]

The last line printed is one JSON object: {"file", "sent", "invalid", "topic", "seconds"}.
"""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from pipelines.news_replay import news_replay
from services.errors import SuiteError
from services.output import json_line
from services.sentiment.bus import topics_default, topics_ensure


class Command(BaseCommand):
    help = "Replay a CSV/JSONL file of headlines into news.raw."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--file", required=True, help="CSV (header row) or JSONL file")
        parser.add_argument("--rate", type=float, default=None, help="messages per second (default: as fast as possible)")
        parser.add_argument("--send-invalid", action="store_true", help="send invalid lines as they are (they end in news.dlq)")

    def handle(self, *args, **opts) -> None:  # noqa: ANN002, ANN003
        if opts["rate"] is not None and opts["rate"] <= 0:
            raise CommandError("--rate must be a positive number of messages per second.")
        try:
            topics = topics_default()
            topics_ensure(topics=topics)
            summary = news_replay(path=opts["file"], rate=opts["rate"], topics=topics, send_invalid=opts["send_invalid"])
        except SuiteError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(json_line(summary))
