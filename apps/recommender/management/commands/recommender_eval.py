"""Evaluate the recommender offline (leave-last-out) against a popularity baseline, on files, not the live catalogue.

    python manage.py recommender_eval --items items.csv --interactions interactions.csv [--protocol leave-last-out] [--k 10]
        [--register] [--no-tune] [--pairs retrain|all]

The last line printed is one JSON object: {"protocol", "k", "ndcg_at_k", "recall_at_k", "hit_rate_at_k",
"popularity_ndcg_at_k", "popularity_recall_at_k", "n_users", "seconds"} (the tuned text formula over the whole
catalogue, and popularity), plus `<method>_{ndcg,recall,hit_rate,coverage}_at_k` for popularity, each candidate
source alone (text, cooc, ease, trending, new), the old formula over the merged candidates and the learned ranker,
and the retrain's time: seconds_adapter, seconds_sources, seconds_ranker, seconds_retrain (their sum), with how the
adapter was trained: pairs (retrain: the retraining run's knobs; all: the trainer's defaults, every pair), pair_budget,
adapt_top, evals_per_epoch, adapter_steps, adapter_epochs_run, seconds_adapter_training. The line
before it holds details (the untuned base model's score, pair counts, the ranker's own metrics, registration).
See services/recommender/evaluation.py for the steps.
"""
from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from pipelines.recommender_eval import PROTOCOLS, EvalRequest, recommender_evaluate
from services.recommender.evaluation import PAIRS_CHOICES
from services.errors import SuiteError
from services.output import json_line


class Command(BaseCommand):
    help = "Offline evaluation of the recommender (tuned adapter vs popularity) on item and interaction files."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--items", required=True, help="CSV or JSONL: item_id,title[,description,category,tags]")
        parser.add_argument("--interactions", required=True, help="CSV or JSONL: user_id,item_id[,event][,timestamp]")
        parser.add_argument("--protocol", default="leave-last-out", choices=PROTOCOLS)
        parser.add_argument("--k", type=int, default=10, help="cut-off of the metrics")
        parser.add_argument("--epochs", type=int, default=None, help="fine-tuning epoch bound (default: PairConfig's)")
        parser.add_argument("--register", action="store_true",
                            help="register the tuned adapter (task recommender) and promote it if the gate passes")
        parser.add_argument("--no-tune", action="store_true",
                            help="no adapter training: the text source uses the untuned base model (a quick run)")
        parser.add_argument("--pairs", default="retrain", choices=PAIRS_CHOICES,
                            help="retrain: the retraining run's adapter knobs (a pair budget per epoch, the top half of "
                                 "the layers); all: the trainer's defaults, every pair every epoch")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **opts) -> None:  # noqa: ANN002, ANN003
        try:
            request = EvalRequest(items=Path(opts["items"]), interactions=Path(opts["interactions"]), protocol=opts["protocol"],
                                  k=opts["k"], epochs=opts["epochs"], register=opts["register"],
                                  tune=not opts["no_tune"], pairs=opts["pairs"])
            result = recommender_evaluate(request, progress=not opts["no_progress"])
        except SuiteError as exc:
            raise CommandError(exc.message) from None
        detail = result.pop("detail")
        self.stdout.write(json_line({"detail": detail}))
        self.stdout.write(json_line(result))
