"""Periodic re-fine-tuning on a tiny model: feedback becomes a challenger, judged on a held-back set, gated, served."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from apps.registry.models import Alias, RetrainRun, Task
from apps.sentiment.models import Relabel
from services.registry.drift import label_drift
from services.registry.retrain import RetrainBusy, lock_claim
from services.registry.versions import task_ensure
from tests.helpers import csv_write, database_url, run_json
from tests.services.conftest import sentiment_rows, tiny_base_write

# The tiny data speaks of bullish/bearish headlines; the sentiment app's labels are positive/negative.
LABELS = {"bullish": "positive", "bearish": "negative", "neutral": "neutral"}


def rows(n: int, *, seed: int) -> tuple[list[str], list[str]]:
    texts, labels = sentiment_rows(n, seed=seed)
    return texts, [LABELS[label] for label in labels]


def relabels_add(texts: list[str], labels: list[str]) -> None:
    Relabel.objects.bulk_create([Relabel(text=t, label=label, source="analyst:ann") for t, label in zip(texts, labels)])


@pytest.fixture
def sentiment_setup(settings, tmp_path: Path, registry_folder: Path) -> dict[str, Path]:  # noqa: ANN001
    """A tiny default base; a deliberately poor champion v1 (trained on scrambled labels); base data and a held-back set."""
    settings.RETRAIN_MIN_EXAMPLES = 10
    settings.RETRAIN_EPOCHS = 4
    run_json("registry_add_base", name="tiny-bert", path=str(tiny_base_write(tmp_path / "tiny-base")), default=True)
    texts, labels = rows(60, seed=3)
    scrambled = csv_write(tmp_path / "scrambled.csv", texts, labels[1:] + labels[:1])
    run_json("train_adapter", task="sentiment", data=str(scrambled), epochs=1)
    return {"base": csv_write(tmp_path / "base.csv", *rows(90, seed=1)),
            "held_back": csv_write(tmp_path / "held_back.csv", *rows(60, seed=2))}


@pytest.mark.django_db(transaction=True)
def test_feedback_becomes_a_promoted_champion_that_is_served_and_a_worse_run_is_rejected(sentiment_setup: dict[str, Path]) -> None:
    from apps.registry.tasks import retrain
    from services.registry.serving import serving_reset, texts_classify

    idle = run_json("retrain", task="sentiment", base_data=str(sentiment_setup["base"]),
                    held_back=str(sentiment_setup["held_back"]))
    assert set(idle) == {"task", "ran", "version", "promoted", "reason", "metrics", "champion_metrics"}
    assert idle["ran"] is False and "too few new examples: 0 < 10" in idle["reason"]

    relabels_add(*rows(30, seed=4))
    better = retrain.apply(args=["sentiment"]).get()  # the Celery job, run eagerly in this process
    assert better["ran"] is True and better["version"] == 2 and better["promoted"] is True, better
    assert better["metrics"]["n"] == better["champion_metrics"]["n"] == 60  # both judged on the same held-back set
    assert better["metrics"]["macro_f1"] > better["champion_metrics"]["macro_f1"]
    serving_reset()
    assert texts_classify(task="sentiment", texts=["shares soars today"]).version == 2
    serving_reset()

    # Analysts now call everything negative: the new version learns that and loses on the held-back set.
    texts, _ = rows(200, seed=5)
    relabels_add(texts, ["negative"] * len(texts))
    worse = run_json("retrain", task="sentiment")
    assert worse["ran"] is True and worse["version"] == 3 and worse["promoted"] is False
    assert worse["reason"].startswith("gate failed") and worse["metrics"]["macro_f1"] < worse["champion_metrics"]["macro_f1"]
    assert Alias.objects.get(task__name="sentiment", name="champion").version.version == 2
    assert Alias.objects.get(task__name="sentiment", name="challenger").version.version == 3

    runs = list(RetrainRun.objects.filter(task__name="sentiment").order_by("started_at", "id"))
    assert [r.status for r in runs] == ["skipped", "promoted", "rejected"]
    assert [r.n_new_examples for r in runs] == [0, 30, 200]
    assert runs[2].drift["label_tvd"] > 0.5 and runs[2].drift["new"] == {"negative": 1.0}
    assert all(r.finished_at and r.finished_at >= r.started_at and r.phase == "done" for r in runs)
    assert runs[0].progress == {} and 0 < runs[1].progress["step"] == runs[1].progress["total"]  # trained every step
    assert Task.objects.get(name="sentiment").retrain_lock_owner == ""


@pytest.mark.django_db(transaction=True)
def test_the_api_lists_a_tasks_retrain_runs_for_admins_only(client, role_users) -> None:  # noqa: ANN001
    task = task_ensure(name="sentiment")
    RetrainRun.objects.create(task=task, status=RetrainRun.SKIPPED, reason="too few new examples", finished_at=timezone.now(),
                              drift={"label_tvd": 0.25})
    client.force_login(role_users["support_agent"])
    assert client.get("/api/registry/tasks/sentiment/retrain-runs").status_code == 403
    client.force_login(role_users["admin"])
    runs = client.get("/api/registry/tasks/sentiment/retrain-runs").json()
    assert [(r["status"], r["version"], r["drift"]["label_tvd"]) for r in runs] == [("skipped", None, 0.25)]
    assert runs[0]["seconds"] >= 0 and runs[0]["reason"] == "too few new examples"
    assert client.get("/api/registry/tasks/nosuch/retrain-runs").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_a_live_lock_blocks_a_second_run() -> None:
    from pipelines.retrain import retrain_run

    task = task_ensure(name="sentiment")
    assert lock_claim(task=task, owner="worker-a") is True
    assert lock_claim(task=task, owner="worker-b") is False
    with pytest.raises(RetrainBusy, match="already in progress"):
        retrain_run(task="sentiment")
    summary = run_json("retrain", task="sentiment")
    assert summary["ran"] is False and "already in progress" in summary["reason"]
    assert Task.objects.get(pk=task.pk).retrain_lock_owner == "worker-a"
    assert not RetrainRun.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_stale_lock_of_a_crashed_worker_is_taken_over_and_its_run_closed_and_its_staged_files_removed(
        settings, tmp_path: Path) -> None:  # noqa: ANN001
    from pipelines.retrain import retrain_run, staging_prefix
    from services.registry.versions import staging_root

    settings.REGISTRY_DIR = tmp_path / "registry"
    task = task_ensure(name="sentiment")
    Task.objects.filter(pk=task.pk).update(retrain_lock_owner="crashed-worker",
                                           retrain_lock_expires_at=timezone.now() - timedelta(seconds=1))
    abandoned = RetrainRun.objects.create(task=task)
    half_saved = staging_root() / f"{staging_prefix(abandoned.pk, 'sentiment')}x1y2"
    half_saved.mkdir(parents=True)
    (half_saved / "adapter_model.safetensors").write_bytes(b"half a file")
    someone_elses = staging_root() / "sentiment-trainadapter"  # a train_adapter command's staging: not the run's
    someone_elses.mkdir()
    run = retrain_run(task="sentiment")  # no data configured: a quick, skipped run
    assert run.status == RetrainRun.SKIPPED and "no base data" in run.reason
    abandoned.refresh_from_db()
    assert abandoned.status == RetrainRun.FAILED and "abandoned" in abandoned.reason
    assert Task.objects.get(pk=task.pk).retrain_lock_owner == ""
    assert not half_saved.exists() and someone_elses.exists()


@pytest.mark.django_db(transaction=True)
def test_a_run_measures_embedding_drift_of_incoming_headlines_against_the_training_data(
        sentiment_setup: dict[str, Path]) -> None:
    from apps.sentiment.models import ScoredNews
    from tests.services.conftest import ITEM_WORDS, QUERY_WORDS

    def news(texts: list[str], prefix: str) -> None:
        ScoredNews.objects.bulk_create([
            ScoredNews(message_id=f"{prefix}-{i}", source="test", published_at=timezone.now(), headline=text, label="neutral",
                       p_positive=0.2, p_neutral=0.6, p_negative=0.2, score=0.0, model_version=1)
            for i, text in enumerate(texts)])

    news(rows(120, seed=11)[0], "alike")  # headlines like the training data
    alike = run_json("retrain", task="sentiment", base_data=str(sentiment_setup["base"]),
                     held_back=str(sentiment_setup["held_back"]))
    assert alike["ran"] is False
    first = RetrainRun.objects.get()
    assert first.drift["embedding"]["encoder"] == "sentiment v1" and first.drift["embedding"]["n_new"] >= 50
    assert first.drift["embedding"]["domain_auc"] < 0.75 and first.drift["embedding"]["drifted"] is False

    import random

    rng = random.Random(5)  # now headlines of another vocabulary arrive: the classifier two-sample test tells them apart
    news([" ".join(rng.sample(QUERY_WORDS + ITEM_WORDS, 4)) for _ in range(120)], "shifted")
    relabels_add(*rows(30, seed=4))
    RetrainRun.objects.all().delete()
    ScoredNews.objects.filter(message_id__startswith="alike").delete()
    run_json("retrain", task="sentiment")
    second = RetrainRun.objects.get()
    assert second.drift["embedding"]["domain_auc"] > 0.9 and second.drift["embedding"]["drifted"] is True, second.drift
    assert second.drift["embedding"]["centroid_cosine_distance"] > first.drift["embedding"]["centroid_cosine_distance"]


def test_embedding_drift_is_near_chance_for_one_distribution_and_high_for_two() -> None:
    import numpy as np

    from services.registry.drift import embedding_drift, texts_drift

    rng = np.random.default_rng(0)
    same = embedding_drift(new=rng.normal(size=(200, 16)), reference=rng.normal(size=(200, 16)))
    moved = embedding_drift(new=rng.normal(size=(200, 16)) + 0.5, reference=rng.normal(size=(200, 16)))
    assert 0.35 < same["domain_auc"] < 0.65 and same["drifted"] is False
    assert moved["domain_auc"] > 0.9 and moved["drifted"] is True
    twins = rng.normal(size=(60, 16))
    assert embedding_drift(new=twins, reference=twins.copy())["domain_auc"] == 0.5  # the same points: no drift, never < 0.5
    few = texts_drift(new=["a", "b"], reference=["c"] * 50, embed=lambda texts: np.zeros((len(texts), 4)), encoder="x")
    assert "too few" in few["note"] and "domain_auc" not in few


@pytest.mark.django_db(transaction=True)
def test_a_tasks_own_minimum_of_new_examples_overrides_the_setting(sentiment_setup: dict[str, Path]) -> None:
    run_json("retrain", task="sentiment", base_data=str(sentiment_setup["base"]), held_back=str(sentiment_setup["held_back"]))
    relabels_add(*rows(12, seed=4))  # above the setting (10) ...
    Task.objects.filter(name="sentiment").update(retrain_min_examples=25)  # ... but below the task's own minimum
    summary = run_json("retrain", task="sentiment")
    assert summary["ran"] is False and "too few new examples: 12 < 25" in summary["reason"]


def test_label_drift_is_the_total_variation_distance_of_label_shares() -> None:
    assert label_drift(new=["a", "b"], train=["a", "b", "a", "b"])["label_tvd"] == 0.0
    assert label_drift(new=["a", "a"], train=["a", "b"])["label_tvd"] == 0.5
    assert label_drift(new=[], train=["a"])["label_tvd"] == 0.0


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_the_retrain_job_and_serves_the_promoted_version(sentiment_setup: dict[str, Path],
                                                                           celery_worker_process) -> None:  # noqa: ANN001
    from apps.registry.tasks import classify, retrain

    run_json("retrain", task="sentiment", base_data=str(sentiment_setup["base"]), held_back=str(sentiment_setup["held_back"]))
    relabels_add(*rows(30, seed=4))  # at least the worker's RETRAIN_MIN_EXAMPLES (20 by default)
    summary = retrain.delay("sentiment").get(timeout=300)
    assert summary["ran"] is True and summary["version"] == 2 and summary["promoted"] is True, summary
    remote = classify.delay("sentiment", ["shares soars today"]).get(timeout=120)
    assert remote["version"] == 2
    assert Task.objects.get(name="sentiment").retrain_lock_owner == ""


@pytest.mark.django_db(transaction=True)
def test_each_task_gets_an_hourly_retrain_schedule_that_keeps_an_admins_edits() -> None:
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    from services.registry.retrain import retrain_schedules_ensure

    assert retrain_schedules_ensure() == ["retrain sentiment", "retrain topic", "retrain intent", "retrain rerank",
                                         "retrain retrieval", "retrain recommender"]
    schedules = {p.name: p for p in PeriodicTask.objects.filter(task="training.retrain")}
    assert set(schedules) == {"retrain sentiment", "retrain topic", "retrain intent", "retrain rerank",
                              "retrain retrieval", "retrain recommender"}
    sentiment = schedules["retrain sentiment"]
    assert sentiment.kwargs == '{"task": "sentiment"}' and sentiment.queue == "training" and sentiment.interval.every == 1
    sentiment.interval = IntervalSchedule.objects.create(every=6, period=IntervalSchedule.HOURS)  # an admin's edit
    sentiment.save()
    retrain_schedules_ensure()
    assert PeriodicTask.objects.get(name="retrain sentiment").interval.every == 6


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_training_leaves_no_half_registered_version_and_no_stuck_lock(
        sentiment_setup: dict[str, Path], settings, tmp_path: Path) -> None:  # noqa: ANN001
    import os
    import signal
    import subprocess
    import sys
    import time

    from apps.registry.models import AdapterVersion, OpsAlert
    from apps.registry.tasks import retrain
    from pipelines.retrain import retrain_run
    from tests.conftest import ROOT

    # Enough data that training lasts seconds, so the kill lands inside it (the run's phase proves where).
    big = csv_write(tmp_path / "big.csv", *rows(1200, seed=7))
    run_json("retrain", task="sentiment", base_data=str(big), held_back=str(sentiment_setup["held_back"]))
    relabels_add(*rows(30, seed=4))
    queue = f"retrain-kill-test-{os.getpid()}"  # no other worker listens here: the killed task is not redelivered
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DATABASE_URL": database_url(),
           "SUITE_REGISTRY_DIR": str(settings.REGISTRY_DIR), "RETRAIN_LOCK_TTL_S": "5", "RETRAIN_EPOCHS": "20"}
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queue, "--pool=threads",
                               "--concurrency=2", "-n", f"kill-test-{os.getpid()}@%h", "-l", "WARNING"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        retrain.apply_async(args=["sentiment"], kwargs={"force": True}, queue=queue)
        deadline = time.monotonic() + 180
        while not RetrainRun.objects.filter(phase="training", progress__step__gte=1).exists():
            assert worker.poll() is None and time.monotonic() < deadline, "the worker never started training"
            time.sleep(0.02)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()

    killed = RetrainRun.objects.get(phase="training")
    assert killed.status == RetrainRun.RUNNING and 1 <= killed.progress["step"] < killed.progress["total"], killed.progress
    assert AdapterVersion.objects.filter(task__name="sentiment").count() == 1
    assert not (settings.REGISTRY_DIR / "sentiment" / "v0002").exists()
    with pytest.raises(RetrainBusy):  # the dead holder's lock is live until its expiry
        retrain_run(task="sentiment")
    deadline = time.monotonic() + 30
    while Task.objects.get(name="sentiment").retrain_lock_expires_at >= timezone.now():
        assert time.monotonic() < deadline
        time.sleep(0.2)
    settings.RETRAIN_MIN_EXAMPLES = 1000
    taken_over = retrain_run(task="sentiment")
    assert taken_over.status == RetrainRun.SKIPPED
    killed.refresh_from_db()
    assert killed.status == RetrainRun.FAILED and killed.reason.startswith("abandoned")
    assert OpsAlert.objects.get(run=killed).level == "error"
    assert Task.objects.get(name="sentiment").retrain_lock_owner == ""
    assert AdapterVersion.objects.filter(task__name="sentiment").count() == 1


@pytest.mark.django_db(transaction=True)
def test_support_feedback_retrains_the_intent_task_and_ignores_rejections(settings, tmp_path: Path) -> None:  # noqa: ANN001
    from apps.support.models import TrainingExample

    settings.REGISTRY_DIR = tmp_path / "registry"
    settings.RETRAIN_MIN_EXAMPLES = 10
    settings.RETRAIN_EPOCHS = 4
    run_json("registry_add_base", name="tiny-bert", path=str(tiny_base_write(tmp_path / "tiny-base")), default=True)
    texts, labels = sentiment_rows(60, seed=3)  # three "intents": bullish, bearish, neutral
    run_json("train_adapter", task="intent", data=str(csv_write(tmp_path / "scrambled.csv", texts, labels[1:] + labels[:1])), epochs=1)
    texts, labels = sentiment_rows(30, seed=4)
    TrainingExample.objects.bulk_create([TrainingExample(text=t, label=label, source="agent_marked_wrong")
                                         for t, label in zip(texts, labels)])
    TrainingExample.objects.create(text="shares soars", label="", rejected="bearish", source="customer_thumbs_down")

    summary = run_json("retrain", task="intent", base_data=str(csv_write(tmp_path / "base.csv", *sentiment_rows(90, seed=1))),
                       held_back=str(csv_write(tmp_path / "held_back.csv", *sentiment_rows(60, seed=2))))
    assert summary["ran"] is True and summary["version"] == 2 and summary["promoted"] is True, summary
    assert RetrainRun.objects.get(task__name="intent").n_new_examples == 30


@pytest.mark.django_db(transaction=True)
def test_a_failed_run_is_recorded_with_its_reason_and_releases_the_lock(tmp_path: Path) -> None:
    from django.core.management.base import CommandError

    base = tmp_path / "base.csv"
    base.write_bytes(b"")  # an empty base file is recorded (the registry keeps a copy): the run fails reading it
    task = task_ensure(name="sentiment")
    with pytest.raises(CommandError, match="empty"):
        run_json("retrain", task="sentiment", force=True, base_data=str(base), held_back=str(base))
    run = RetrainRun.objects.get(task=task)
    assert run.status == RetrainRun.FAILED and run.reason.startswith("failed:") and "base.csv" in run.reason
    assert Task.objects.get(pk=task.pk).retrain_lock_owner == ""
