"""Consume `news.raw`: score with the `sentiment` champion, store, publish `news.scored`, send bad ones to `news.dlq`.

Topics come from the `topic` champion (one call per batch) or, while there is none, the keyword lists; which one
is said on stderr at the start.

    python manage.py news_consume [--group news-consumer] [--batch-size 64] [--max-messages N] [--idle-exit-seconds S]

SIGTERM (or Ctrl-C) finishes the current batch, commits it and exits. The last line printed is one JSON
object with the counts.
"""
from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from pipelines.news_consumer import news_consume, stats_json
from services.errors import SuiteError
from services.sentiment.bus import DEFAULT_GROUP, topics_default, topics_ensure


class Command(BaseCommand):
    help = "Consume news.raw in a consumer group: score, store, publish news.scored; malformed → news.dlq."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--group", default=DEFAULT_GROUP, help="consumer group (processes in one group share partitions)")
        parser.add_argument("--batch-size", type=int, default=64, help="most records per poll and per model call")
        parser.add_argument("--max-messages", type=int, default=None, help="exit after about this many records")
        parser.add_argument("--idle-exit-seconds", type=float, default=None, help="exit after this long without records")

    def handle(self, *args, **opts) -> None:  # noqa: ANN002, ANN003
        from services.registry.versions import version_get

        if opts["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        try:
            version_get(task_name="sentiment")  # fail now, not on the first batch, when no model is trained
        except SuiteError as exc:
            raise CommandError(f"{exc.message} Train one with `python manage.py train_adapter --task sentiment --data FILE`.") from None
        from services.sentiment.topics import topic_source

        self.stderr.write(topic_source()["text"])  # the topic champion is looked up per batch: a new one is used at once
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        try:
            topics = topics_default()
            topics_ensure(topics=topics)
            stats = news_consume(group=opts["group"], topics=topics, batch_size=opts["batch_size"],
                                 max_messages=opts["max_messages"], idle_exit_seconds=opts["idle_exit_seconds"], stop=stop)
        except SuiteError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(stats_json(stats))
