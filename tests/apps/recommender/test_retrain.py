"""The recommender in the retraining loop: the shop's new events become a challenger, judged on held-back users, served."""
from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from apps.registry.models import Alias, RetrainRun
from services.vectors import space_status
from tests.apps.recommender.test_eval import taste_files
from tests.helpers import run_json
from tests.services.conftest import CLASS_WORDS


def interactions_write(path: Path, *, users: range, prefix: str, seed: int, per_user: int = 6) -> Path:
    """Users who each stay within one category of the taste catalogue (item ids `<category>-<n>`, 15 per category)."""
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["user_id", "item_id", "event", "timestamp"])
        for u in users:
            category = list(CLASS_WORDS)[u % 3]
            for day, n in enumerate(rng.sample(range(15), per_user)):
                writer.writerow([f"{prefix}{u}", f"{category}-{n}", rng.choice(["view", "click", "purchase"]),
                                 f"2026-10-{day + 1:02d}T12:00:00Z"])
    return path


@pytest.mark.django_db(transaction=True)
def test_new_events_retrain_the_recommender_gated_on_held_back_users_and_the_champion_is_served(
        tiny_encoder: Path, tmp_path: Path, settings) -> None:  # noqa: ANN001
    from apps.registry.models import Task
    from services.recommender import vectors

    settings.RETRAIN_MIN_EXAMPLES = 50
    settings.RETRAIN_EPOCHS = 2
    items, _ = taste_files(tmp_path)
    run_json("recommender_import", items=str(items), no_progress=True)
    base = interactions_write(tmp_path / "base.csv", users=range(0, 30), prefix="b", seed=2)
    held_back = interactions_write(tmp_path / "held_back.csv", users=range(0, 45), prefix="h", seed=3)

    idle = run_json("retrain", task="recommender", base_data=str(base), held_back=str(held_back))
    assert idle["ran"] is False and "too few new examples: 0 < 50" in idle["reason"]
    assert Task.objects.get(name="recommender").gate_metric == "ndcg_at_k"

    run_json("recommender_import", interactions=str(interactions_write(tmp_path / "live.csv", users=range(30), prefix="live",
                                                                       seed=4)), no_progress=True)  # 180 events arrive
    first = run_json("retrain", task="recommender")
    assert first["ran"] is True and first["version"] == 1 and first["promoted"] is True, first
    assert first["reason"] == "first version of the task" and first["metrics"]["n"] == 45 and first["metrics"]["k"] == 10
    assert 0 < first["metrics"]["ndcg_at_k"] <= first["metrics"]["recall_at_k"] <= 1
    run = RetrainRun.objects.filter(task__name="recommender", status="promoted").get()
    assert run.n_new_examples == 180 and run.n_examples > 0 and run.phase == "done"
    assert set(run.drift["new"]) <= {"view", "click", "purchase"} and "domain_auc" in run.drift["embedding"]
    # The run re-embedded the catalogue with the new champion: no customer request pays for that.
    status = space_status(space=vectors.SPACE)
    assert status["encoder"] == "recommender:v1" and status["pending_encoder"] is None and status["missing"] == 0
    assert vectors.index_get(fresh=True).tag.name == "recommender:v1"

    # An admin now asks for a large gain; the next run's challenger, judged on the same held-back users, misses it.
    Task.objects.filter(name="recommender").update(gate_min_gain=0.5)
    run_json("recommender_import", interactions=str(interactions_write(tmp_path / "more.csv", users=range(30, 40),
                                                                       prefix="live", seed=5)), no_progress=True)
    second = run_json("retrain", task="recommender", force=True)
    assert second["ran"] is True and second["version"] == 2 and second["promoted"] is False, second
    assert second["reason"].startswith("gate failed") and "ndcg_at_k" in second["reason"]
    assert second["metrics"]["n"] == second["champion_metrics"]["n"] == 45
    assert second["metrics"]["ndcg_at_k"] - second["champion_metrics"]["ndcg_at_k"] < 0.5
    assert Alias.objects.get(task__name="recommender", name="champion").version.version == 1
    assert Alias.objects.get(task__name="recommender", name="challenger").version.version == 2
    assert space_status(space=vectors.SPACE)["encoder"] == "recommender:v1"
    assert vectors.encoder_tag().name == "recommender:v1"


@pytest.mark.django_db(transaction=True)
def test_rows_of_the_task_files_it_cannot_use_are_recorded_with_the_run_and_said_by_the_command(
        tiny_encoder: Path, tmp_path: Path, settings) -> None:  # noqa: ANN001
    import io

    from django.core.management import call_command

    settings.RETRAIN_MIN_EXAMPLES = 50
    items, _ = taste_files(tmp_path)
    run_json("recommender_import", items=str(items), no_progress=True)
    base = interactions_write(tmp_path / "base.csv", users=range(0, 30), prefix="b", seed=2)
    with base.open("a", encoding="utf-8") as f:
        f.write("b1,no-such-item,view,2026-10-09T12:00:00Z\n")  # line 182: an item the catalogue does not hold
        f.write("b2,bullish-1,view,yesterday\n")  # line 183: a time that is neither ISO 8601 nor Unix seconds
    held_back = interactions_write(tmp_path / "held_back.csv", users=range(0, 45), prefix="h", seed=3)

    err = io.StringIO()
    call_command("retrain", task="recommender", base_data=str(base), held_back=str(held_back), stdout=io.StringIO(),
                 stderr=err)
    run = RetrainRun.objects.get(task__name="recommender")
    assert run.status == "skipped" and run.n_skipped_rows == 2, (run.reason, run.skipped_rows)
    assert [row.split(": ")[0] for row in run.skipped_rows] == ["base.csv:182", "base.csv:183"]
    assert "no-such-item" in run.skipped_rows[0] and "yesterday" in run.skipped_rows[1]
    said = err.getvalue()
    assert "2 rows of the task's files were skipped" in said and "base.csv:182" in said and "base.csv:183" in said
