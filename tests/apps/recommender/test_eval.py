"""recommender_eval on a small fixture where users have clear category tastes: the tuned pipeline beats popularity."""
from __future__ import annotations

import csv
import json
import random
from datetime import datetime
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from apps.recommender.models import Event
from apps.registry.models import AdapterVersion
from tests.helpers import run_json
from tests.services.conftest import CLASS_WORDS, FILLER

KEYS = {"protocol", "k", "ndcg_at_k", "recall_at_k", "hit_rate_at_k", "popularity_ndcg_at_k", "popularity_recall_at_k",
        "n_users", "seconds"}


def taste_files(folder: Path, *, users: int = 60, per_category: int = 15, seed: int = 0,
                unix_seconds: bool = False) -> tuple[Path, Path]:
    """Items of three categories (texts from each category's words, in the tiny model's vocabulary); each user
    interacts with six items of one category only, so the next item is predictable from the text of the previous.
    With `unix_seconds`, timestamps are written as Unix seconds (as many public data sets have them)."""
    rng = random.Random(seed)
    items_path, events_path = folder / "items.csv", folder / "interactions.csv"
    by_category: dict[str, list[str]] = {}
    with items_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["item_id", "title", "description", "category"])
        for category, words in CLASS_WORDS.items():
            for n in range(per_category):
                item = f"{category}-{n}"
                by_category.setdefault(category, []).append(item)
                writer.writerow([item, " ".join(rng.sample(words, 3)), " ".join(rng.sample(FILLER, 2)), ""])
    with events_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["user_id", "item_id", "event", "timestamp"])
        for u in range(users):
            category = list(CLASS_WORDS)[u % 3]
            for day, item in enumerate(rng.sample(by_category[category], 6)):
                at = f"2026-10-{day + 1:02d}T12:00:00Z"
                if unix_seconds:
                    at = str(int(datetime.fromisoformat(at).timestamp()))
                writer.writerow([f"u{u}", item, rng.choice(["view", "click", "purchase"]), at])
    return items_path, events_path


@pytest.mark.django_db(transaction=True)
def test_the_tuned_pipeline_beats_popularity_and_leaves_the_champion_alone(tiny_encoder: Path, tmp_path: Path) -> None:
    items, interactions = taste_files(tmp_path)
    result = run_json("recommender_eval", items=str(items), interactions=str(interactions), k=10, epochs=4, no_progress=True)
    print("EVAL", result)
    assert KEYS <= set(result)  # the contract's keys stay; the sources' and the ranker's are added
    for method in ("popularity", "text", "cooc", "ease", "trending", "new", "formula", "ranker"):
        assert {f"{method}_ndcg_at_k", f"{method}_recall_at_k", f"{method}_hit_rate_at_k", f"{method}_coverage_at_k"} <= set(result)
    assert result["seconds_retrain"] >= result["seconds_adapter"] > 0
    # The adapter was trained with the retraining run's knobs, and says so (issue 17, item 5).
    assert (result["pairs"], result["pair_budget"], result["adapt_top"]) == ("retrain", 8192, 0.5)
    assert result["evals_per_epoch"] >= 1
    assert result["adapter_steps"] > 0 and 0 < result["seconds_adapter_training"] <= result["seconds_adapter"]
    assert result["protocol"] == "leave-last-out" and result["k"] == 10 and result["n_users"] == 60
    assert result["ndcg_at_k"] > result["popularity_ndcg_at_k"]
    assert result["recall_at_k"] > result["popularity_recall_at_k"]
    assert not AdapterVersion.objects.filter(task__name="recommender").exists()


@pytest.mark.django_db(transaction=True)
def test_register_adds_a_version_gated_on_ndcg(tiny_encoder: Path, tmp_path: Path) -> None:
    items, interactions = taste_files(tmp_path, users=30)
    result = run_json("recommender_eval", items=str(items), interactions=str(interactions), k=5, epochs=1, register=True,
                      no_progress=True)
    version = AdapterVersion.objects.get(task__name="recommender")
    assert version.metrics["ndcg_at_k"] == result["ndcg_at_k"] and version.task.gate_metric == "ndcg_at_k"
    from services.ml.artifacts import artifact_sha256

    assert artifact_sha256(version.path) == version.sha256  # the ranker, when it is saved with the adapter, is hashed too
    assert (Path(version.path) / "ranker" / "model.txt").exists() == (version.metrics.get("ranker") == 1)


@pytest.mark.django_db(transaction=True)
def test_interactions_timed_in_unix_seconds_import_and_evaluate(tiny_encoder: Path, tmp_path: Path) -> None:
    items, interactions = taste_files(tmp_path, users=30, unix_seconds=True)
    assert interactions.read_text(encoding="utf-8").splitlines()[1].endswith(",1790856000")  # 2026-10-01T12:00:00Z
    report = run_json("recommender_import", items=str(items), interactions=str(interactions), no_progress=True)
    assert report["interactions"]["errors"] == [] and report["interactions"]["added"] == 30 * 6
    assert Event.objects.order_by("timestamp").first().timestamp.isoformat() == "2026-10-01T12:00:00+00:00"
    with interactions.open("a", encoding="utf-8") as f:  # rows the evaluation skips, and must say so
        f.write("u0,no-such-item,view,1790856000\nu1,x,view,next tuesday\n")
    out = StringIO()
    call_command("recommender_eval", items=str(items), interactions=str(interactions), k=5, epochs=1, no_progress=True,
                 stdout=out)
    detail, result = (json.loads(line) for line in out.getvalue().strip().splitlines()[-2:])
    assert result["n_users"] == 30  # every user's last item is held out: the times ordered each history
    assert detail["detail"]["skipped"] == 2
    assert detail["detail"]["skipped_rows"] == [
        "interactions.csv:182: item 'no-such-item' is not in the catalogue",
        "interactions.csv:183: `timestamp` 'next tuesday' must be an ISO 8601 date-time or epoch seconds.",
    ]
