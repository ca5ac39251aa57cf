"""The learned ranker as part of a `recommender` version: trained in the retraining run, saved in the artifact (its
sha256 covers it), gated on the held-back users, served by the version whose vectors a process serves, rolled back."""
from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from apps.registry.models import Alias, RetrainRun
from tests.apps.recommender.test_eval import taste_files
from tests.helpers import run_json
from tests.services.conftest import CLASS_WORDS


def chains_write(path: Path, *, users: range, prefix: str, seed: int, per_user: int = 5) -> Path:
    """Users who walk a category's items in order (`<category>-<n>`, then n+1, ...): the next item is what the
    previous one's buyers bought next (behaviour), which the tiny random encoder's text vectors cannot tell."""
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["user_id", "item_id", "event", "timestamp"])
        for u in users:
            category, start = list(CLASS_WORDS)[u % 3], rng.randrange(15)
            for step in range(per_user):
                writer.writerow([f"{prefix}{u}", f"{category}-{(start + step) % 15}", "purchase",
                                 f"2026-10-{step + 1:02d}T12:{u % 60:02d}:00Z"])
    return path


def _first_version(tmp_path: Path, settings, *, impressions: bool = False) -> dict:  # noqa: ANN001
    settings.RETRAIN_MIN_EXAMPLES = 1
    settings.RETRAIN_EPOCHS = 1
    items, _ = taste_files(tmp_path)
    run_json("recommender_import", items=str(items), no_progress=True)
    base = chains_write(tmp_path / "base.csv", users=range(0, 90), prefix="b", seed=2)
    held_back = chains_write(tmp_path / "held_back.csv", users=range(0, 45), prefix="h", seed=3)
    run_json("retrain", task="recommender", base_data=str(base), held_back=str(held_back))
    run_json("recommender_import", interactions=str(chains_write(tmp_path / "live.csv", users=range(30), prefix="live",
                                                                 seed=4)), no_progress=True)
    if impressions:  # each live user was shown, before any of their events, two items of another category: ignored
        from datetime import datetime, timezone

        from apps.recommender.models import Impression

        Impression.objects.bulk_create([
            Impression(request_id=f"r{u}", user_id=f"live{u}", strategy="personal",
                       items=[f"{list(CLASS_WORDS)[(u + 1) % 3]}-{n}" for n in (0, 1)],
                       shown_at=datetime(2026, 9, 30, tzinfo=timezone.utc)) for u in range(30)])
    first = run_json("retrain", task="recommender", force=True)
    assert first["ran"] is True and first["version"] == 1 and first["promoted"] is True, first
    return first


def _served() -> object:
    from services.recommender import vectors
    from services.recommender.served import ranker_served
    from services.recommender.sources import behaviour_current

    vectors.index_forget()  # a process with a view reloads a switched space in the background; a cold one at once
    return ranker_served(tag=vectors.index_get(fresh=True).tag, snapshot=behaviour_current())


@pytest.mark.django_db(transaction=True)
def test_the_ranker_is_saved_in_the_version_covered_by_its_hash_reloaded_and_served(
        tiny_encoder: Path, tmp_path: Path, settings) -> None:  # noqa: ANN001
    from services.ml.artifacts import ArtifactTampered, artifact_sha256, artifact_verify
    from services.recommender.learned import RANKER_DIR, Ranker, version_ranker_load
    from services.recommender.served import served_forget
    from services.registry.versions import version_get

    first = _first_version(tmp_path, settings, impressions=True)
    version = version_get(task_name="recommender", version=1)
    folder = Path(version.path)
    assert (folder / RANKER_DIR / "model.txt").is_file() and (folder / RANKER_DIR / "ranker.json").is_file()
    assert version.metrics["ranker"] == 1 and version.metrics["ranker_valid_ndcg_at_k"] > 0
    assert version.metrics["ranker_shown_negatives"] > 0  # the recorded impressions were its first negatives
    metrics = first["metrics"]
    assert metrics["ranker"] == 1 and 0 < metrics["ranker_ndcg_at_k"] <= metrics["ranker_recall_at_k"] <= 1
    # Behaviour predicts the next item here and the random tiny encoder's text does not: the version's ranker, on
    # the held-back users' candidates, beats the whole-catalogue text formula the adapter alone is judged by.
    assert metrics["ranker_ndcg_at_k"] > metrics["ndcg_at_k"], metrics

    ranker = version_ranker_load(folder)
    assert isinstance(ranker, Ranker) and ranker.metrics["ndcg_at_k"] >= ranker.metrics["formula_ndcg_at_k"]

    served = _served()  # the promotion re-embedded the catalogue with v1: requests rank with v1's ranker
    assert served.name == "recommender:v1" and served.ranker is not None
    assert served.ranker.booster.model_to_string() == ranker.booster.model_to_string()
    shop = run_json("api_token_create", client="shop-backend")["token"]
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {shop}")
    health = client.get("/api/recommender/health").json()
    assert health["ranker"] == "recommender:v1" and "ranker registered with recommender:v1" in health["ranker_detail"]
    answer = client.get("/api/recommendations", {"user": "live1", "k": 3})
    assert answer.status_code == 200 and len(answer.json()["items"]) == 3

    # The artifact's sha256 covers the ranker: an edited model file is refused, and that version serves the formula.
    with (folder / RANKER_DIR / "model.txt").open("a", encoding="utf-8") as f:
        f.write("\n")
    assert artifact_sha256(folder) != version.sha256
    with pytest.raises(ArtifactTampered):
        artifact_verify(folder=folder, expected_sha256=version.sha256)
    served_forget()
    tampered = _served()
    assert tampered.ranker is None and tampered.name == "formula" and "could not be read" in tampered.detail


@pytest.mark.django_db(transaction=True)
def test_the_gate_refuses_a_challenger_whose_ranker_ranks_the_held_back_users_worse(
        tiny_encoder: Path, tmp_path: Path, settings, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    from apps.registry.models import Task
    from services.errors import SuiteError
    from services.recommender import learned

    first = _first_version(tmp_path, settings)
    # The adapter's own gate lets anything through; only the ranker's can refuse.
    Task.objects.filter(name="recommender").update(gate_min_gain=-1.0, gate_max_drop=1.0)

    def no_ranker(**kwargs: object) -> None:
        raise SuiteError("no ranker in this run")

    monkeypatch.setattr(learned, "ranker_fit", no_ranker)  # v2 has no ranker: it would serve the formula
    second = run_json("retrain", task="recommender", force=True)
    assert second["version"] == 2 and second["promoted"] is False, second
    assert second["metrics"]["ranker"] == 0 and second["champion_metrics"]["ranker"] == 1
    assert second["champion_metrics"]["ranker_ndcg_at_k"] == first["metrics"]["ranker_ndcg_at_k"]  # same users
    assert second["metrics"]["ranker_ndcg_at_k"] < second["champion_metrics"]["ranker_ndcg_at_k"]
    assert second["reason"].startswith("gate failed") and "ranker_ndcg_at_k" in second["reason"], second["reason"]
    assert Alias.objects.get(task__name="recommender", name="champion").version.version == 1
    run = RetrainRun.objects.filter(task__name="recommender").first()
    assert run.status == "rejected" and run.metrics["ranker"] == 0
    assert _served().name == "recommender:v1"


@pytest.mark.django_db(transaction=True)
def test_a_rollback_serves_the_older_versions_own_ranker_and_a_version_without_one_the_formula(
        tiny_encoder: Path, tmp_path: Path, settings, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    from services.errors import SuiteError
    from services.recommender import learned
    from services.registry.versions import version_get

    _first_version(tmp_path, settings)
    v1_model = learned.version_ranker_load(Path(version_get(task_name="recommender", version=1).path)).booster.model_to_string()

    def no_ranker(**kwargs: object) -> None:
        raise SuiteError("no ranker in this run")

    monkeypatch.setattr(learned, "ranker_fit", no_ranker)
    second = run_json("retrain", task="recommender", force=True)
    assert second["version"] == 2 and second["metrics"]["ranker"] == 0
    run_json("registry_promote", task="recommender", version=2, force=True, actor="admin")
    assert Alias.objects.get(task__name="recommender", name="champion").version.version == 2
    served = _served()  # v2's vectors are served now, and v2 has no ranker
    assert served.name == "formula" and served.ranker is None and "recommender:v2 has no ranker" in served.detail

    run_json("registry_rollback", task="recommender", actor="admin")
    assert Alias.objects.get(task__name="recommender", name="champion").version.version == 1
    served = _served()
    assert served.name == "recommender:v1" and served.ranker is not None, served.detail
    assert served.ranker.booster.model_to_string() == v1_model
