"""Quality check of the retraining loop on real finance headlines: feedback in, a better champion out; bad feedback gated.

Run from the repository root (CPU is fine; about ten minutes on two cores):

    HF_HUB_OFFLINE=1 python -m pipelines.quality_retrain [--base 400] [--feedback 800] [--held-back 800] [--bad 300] [--epochs 3]

It works in a throw-away SQLite database and registry (a temporary SUITE_VAR_DIR), never the suite's own.

1. Read ../shared/devdata/twitter_financial_news_sentiment (skip, with a message, when absent: never in the repository).
2. v1: the packaged MiniLM + a LoRA adapter trained on `--base` headlines of sent_train: the champion.
3. Analysts relabel `--feedback` other sent_train headlines (Relabel rows, as the dashboard stores them); one
   retraining run (pipelines.retrain.retrain_run, the job beat runs) trains v2 on base + feedback and judges v2 and
   v1 on `--held-back` headlines of sent_valid: the gate should promote it.
4. Then `--bad` relabels that call everything negative: the next run's v3 should fail the gate and stay challenger.
5. Print one final JSON line: both runs' metrics against the champion's, their gate results, drift and seconds.
"""
from __future__ import annotations

import argparse
import csv
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from services.output import json_line

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT.parent / "shared" / "devdata" / "twitter_financial_news_sentiment"
LABELS = {"0": "negative", "1": "positive", "2": "neutral"}


def rows_read(path: Path) -> list[tuple[str, str]]:
    from services.ml.data import dataset_read  # the shared reader's rules (services.tabular)

    data = dataset_read(path=path)
    return [(text, LABELS[label]) for text, label in zip(data.texts, data.labels)]


def csv_write(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=int, default=400, help="headlines the champion is trained on")
    parser.add_argument("--feedback", type=int, default=800, help="analyst relabels (correct labels) for the first run")
    parser.add_argument("--held-back", type=int, default=800, help="sent_valid headlines both versions are judged on")
    parser.add_argument("--bad", type=int, default=300, help="relabels that call everything negative, for the second run")
    parser.add_argument("--epochs", type=int, default=3, help="epoch bound of every training (RETRAIN_EPOCHS)")
    args = parser.parse_args(argv)
    if not DATA_DIR.is_dir():
        print(f"skipped: {DATA_DIR} is absent (development data is never part of the repository)")
        print(json_line({"skipped": True}))
        return 0
    work = Path(tempfile.mkdtemp(prefix="quality-retrain-"))
    os.environ.update({"SUITE_VAR_DIR": str(work), "DATABASE_URL": f"sqlite:///{work / 'db.sqlite3'}",
                       "DJANGO_SETTINGS_MODULE": "config.settings", "RETRAIN_EPOCHS": str(args.epochs),
                       "RETRAIN_MIN_EXAMPLES": "1"})
    import django

    django.setup()
    from django.core.management import call_command

    from apps.sentiment.models import Relabel
    from pipelines.retrain import retrain_run
    from services.registry.retrain import retrain_summary, task_data_set

    call_command("migrate", verbosity=0)
    train = rows_read(DATA_DIR / "sent_train.csv")
    valid = rows_read(DATA_DIR / "sent_valid.csv")
    rng = random.Random(0)
    rng.shuffle(train)
    rng.shuffle(valid)
    base, feedback = train[:args.base], train[args.base:args.base + args.feedback]
    bad = train[args.base + args.feedback:args.base + args.feedback + args.bad]
    started = time.monotonic()
    base_file = csv_write(work / "base.csv", base)
    call_command("train_adapter", task="sentiment", data=str(base_file), epochs=args.epochs, stdout=open(os.devnull, "w"))
    task_data_set(task="sentiment", base_data=str(base_file), held_back=str(csv_write(work / "held_back.csv", valid[:args.held_back])))
    v1_seconds = round(time.monotonic() - started, 1)

    Relabel.objects.bulk_create([Relabel(text=t, label=label, source="analyst:devdata") for t, label in feedback])
    good = retrain_run(task="sentiment")
    Relabel.objects.bulk_create([Relabel(text=t, label="negative", source="analyst:careless") for t, _ in bad])
    worse = retrain_run(task="sentiment")

    def seconds(run) -> float:  # noqa: ANN001
        return round((run.finished_at - run.started_at).total_seconds(), 1)

    out = {"base": len(base), "feedback": len(feedback), "bad_feedback": len(bad), "held_back": args.held_back,
           "epochs": args.epochs, "v1_seconds": v1_seconds,
           "good_run": {**retrain_summary(good), "seconds": seconds(good), "label_tvd": good.drift.get("label_tvd")},
           "bad_run": {**retrain_summary(worse), "seconds": seconds(worse), "label_tvd": worse.drift.get("label_tvd")}}
    for name in ("good_run", "bad_run"):
        run = out[name]
        print(f"{name}: v{run['version']} macro_f1 {run['metrics'].get('macro_f1')} vs champion "
              f"{run['champion_metrics'].get('macro_f1')} → {'promoted' if run['promoted'] else 'kept as challenger'} ({run['reason']})")
    print(json_line(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
