"""Load the demo's data into every app (idempotent; models are trained only when missing).

    python manage.py demo_load [--skip-training]

1. Support desk: the FAQ and manuals in deploy/demo/support/ into the `default` knowledge base.
2. Sentiment: a `sentiment` adapter trained on template headlines (a minute or two on a CPU, first run
   only), the watchlist (AAPL, MSFT, TSLA, NVDA, AMZN) with a negative-share rule on TSLA, and a day of
   news replayed into Kafka's news.raw, for the `news` process (news_consume) to score.
3. Recommender: an outdoor shop's catalogue (30 items) and 40 users' interactions from deploy/demo/recommender/.
4. Retraining: base data and fixed held-back sets for `sentiment` and `recommender` (Model operations page).

The last line printed is one JSON object saying what was done. Refused under the production profile.
"""
from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from apps.core.commands import demo_refuse_in_production
from pipelines.demo_data import COMPANIES, news_messages, train_rows
from services.output import json_line

DEMO = Path(settings.BASE_DIR) / "deploy" / "demo"


class Command(BaseCommand):
    help = "Load demo data into the support desk, the sentiment monitor and the recommender (idempotent)."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--skip-training", action="store_true", help="do not train the demo sentiment adapter")

    def handle(self, *args, **opts) -> None:  # noqa: ANN002, ANN003
        demo_refuse_in_production(command="demo_load")
        done: dict[str, object] = {}
        work = Path(settings.VAR_DIR) / "demo"
        work.mkdir(parents=True, exist_ok=True)

        self.stdout.write("support desk: importing deploy/demo/support into the 'default' knowledge base")
        call_command("support_import", faq=str(DEMO / "support" / "faq.csv"), docs=str(DEMO / "support" / "docs"), kb="default")
        done["support"] = "kb default"

        done["sentiment_model"] = self._sentiment_model(work, train=not opts["skip_training"])
        from services.sentiment.watchlist import rule_save, ticker_save

        for symbol, (name, aliases) in COMPANIES.items():
            ticker = ticker_save(symbol=symbol, name=name, aliases=aliases)
            if symbol == "TSLA" and not ticker.rules.filter(kind="negative_share").exists():
                rule_save(symbol=symbol, kind="negative_share", threshold=0.6, window_minutes=60, channels=["inapp"])
        news = work / "news.jsonl"
        news.write_text("".join(json.dumps(m) + "\n" for m in news_messages()), encoding="utf-8")
        self.stdout.write(f"sentiment: replaying {news} into news.raw (the 'news' process scores it)")
        call_command("news_replay", file=str(news))
        done["sentiment_news"] = str(news)

        reco = DEMO / "recommender"
        self.stdout.write("recommender: importing the demo catalogue and interactions from deploy/demo/recommender")
        call_command("recommender_import", items=str(reco / "items.jsonl"), interactions=str(reco / "interactions.jsonl"))
        done["recommender"] = str(reco)
        done["retrain"] = self._retrain_files(work, reco=reco)
        self.stdout.write(json_line(done))

    def _retrain_files(self, work: Path, *, reco: Path) -> list[str]:
        """Give `sentiment` and `recommender` their base data and fixed held-back sets, so scheduled retraining runs.

        Sentiment: the demo's template headlines (train) and another seed's (held back). Recommender: the first 30
        demo shoppers' histories (base) and the last 10's (held back); the imported events are its new feedback.
        """
        import csv

        from services.registry.retrain import task_data_set

        held_back = work / "sentiment-held-back.csv"
        with held_back.open("w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([("text", "label"), *train_rows(150, seed=3)])
        configured = []
        if (work / "sentiment-train.csv").is_file():
            task_data_set(task="sentiment", base_data=str(work / "sentiment-train.csv"), held_back=str(held_back))
            configured.append("sentiment")
        lines = (reco / "interactions.jsonl").read_text(encoding="utf-8").splitlines()
        users = sorted({json.loads(line)["user_id"] for line in lines if line.strip()})
        held_users = set(users[-10:])
        base, held = work / "recommender-base.jsonl", work / "recommender-held-back.jsonl"
        base.write_text("".join(f"{line}\n" for line in lines if line.strip() and json.loads(line)["user_id"] not in held_users),
                        encoding="utf-8")
        held.write_text("".join(f"{line}\n" for line in lines if line.strip() and json.loads(line)["user_id"] in held_users),
                        encoding="utf-8")
        task_data_set(task="recommender", base_data=str(base), held_back=str(held))
        configured.append("recommender")
        self.stdout.write(f"retraining: base data and held-back sets recorded for {', '.join(configured)}")
        return configured

    def _sentiment_model(self, work: Path, *, train: bool) -> str:
        from apps.registry.models import Alias

        if Alias.objects.filter(task__name="sentiment", name="champion").exists():
            return "champion present"
        if not train:
            return "skipped"
        data = work / "sentiment-train.csv"
        import csv

        with data.open("w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([("text", "label"), *train_rows()])
        self.stdout.write("sentiment: training the demo adapter (first run only; a minute or two on a CPU)")
        call_command("train_adapter", task="sentiment", data=str(data), epochs=3)
        return "trained"

