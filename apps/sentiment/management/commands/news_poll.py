"""Poll the registered RSS/Atom feeds into `news.raw` (each entry once), or register a feed.

    python manage.py news_poll --add https://example.com/rss --source example
    python manage.py news_poll [--once] [--interval 300]

With --once the last line printed is one JSON object per run: {"feeds": [{"feed", "entries", "sent", "error"}]}.
"""
from __future__ import annotations

import signal
import threading
from dataclasses import asdict

from django.core.management.base import BaseCommand, CommandError

from pipelines.news_feeds import feed_add, feeds_poll
from services.errors import SuiteError
from services.output import json_line
from services.sentiment.bus import topics_default, topics_ensure


class Command(BaseCommand):
    help = "Poll RSS/Atom feeds into news.raw, deduplicated by entry id/link; --add registers a feed."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--add", metavar="URL", help="register (or re-enable) a feed and exit")
        parser.add_argument("--source", help="the source name of the feed's messages (with --add)")
        parser.add_argument("--once", action="store_true", help="poll every feed once and exit")
        parser.add_argument("--interval", type=float, default=300.0, help="seconds between polls")

    def handle(self, *args, **opts) -> None:  # noqa: ANN002, ANN003
        try:
            if opts["add"]:
                feed = feed_add(url=opts["add"], source=opts["source"] or "")
                self.stdout.write(json_line({"feed": feed.url, "source": feed.source}))
                return
            if opts["interval"] < 1:
                raise CommandError("--interval must be at least 1 second.")
            topics = topics_default()
            topics_ensure(topics=topics)
            stop = threading.Event()
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
            results = feeds_poll(topics=topics, once=opts["once"], interval_s=opts["interval"], stop=stop)
        except SuiteError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(json_line({"feeds": [asdict(r) for r in results]}))
