"""Write the `topic` task's training and held-back files from a `text,label` file (label ids or topic names).

    python manage.py topic_data --source ../shared/devdata/twitter_financial_news_topic/topic_train.csv --out var/topic
    python manage.py train_adapter --task topic --data var/topic/train.csv
    python manage.py evaluate_adapter --task topic --data var/topic/held-back.csv

Labels are written as topic names (services/sentiment/topics.py: TOPIC_LABELS), the names analysts relabel with,
so retraining joins base rows and relabels into one label set. The last line printed is JSON.
"""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from services.errors import SuiteError
from services.output import json_line


class Command(BaseCommand):
    help = "Split a topic file into train.csv and held-back.csv with topic names as labels."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--source", required=True, help="a text,label CSV (ids 0-19 or topic names)")
        parser.add_argument("--out", required=True, help="folder for train.csv and held-back.csv")
        parser.add_argument("--held-back", type=float, default=0.1, help="fraction of each label held back")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **opts) -> None:  # noqa: ANN002, ANN003
        from services.sentiment.topics import topic_files_write

        try:
            done = topic_files_write(source=opts["source"], out_dir=opts["out"], held_back=opts["held_back"],
                                     seed=opts["seed"])
        except SuiteError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(json_line(done))
