"""A fourth retrainable task is one plug-in plus its line in RETRAIN_PLUGINS: the real loop trains and promotes it."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from django.utils import timezone

from apps.registry.models import Alias, RetrainRun, Task
from services.errors import SuiteError
from services.registry.retraining import ClassifierRetrainer, Example, retrainer_get, retrainers
from tests.helpers import csv_write, run_json
from tests.services.conftest import sentiment_rows, tiny_base_write

# What the fake product stores: its reviewers' labels, the texts its model saw, and each promotion it was told of.
TONE_FEEDBACK: list[Example] = []
TONE_SEEN: list[str] = []
TONE_PROMOTIONS: list[str] = []


class ToneRetrainer(ClassifierRetrainer):
    """The whole of the fake `tone` task's retraining: its name, its feedback and its traffic (the rest is shared)."""

    name = "tone"

    def feedback(self) -> list[Example]:
        return list(TONE_FEEDBACK)

    def incoming(self, since: datetime | None) -> list[str]:
        return list(TONE_SEEN)

    def promoted(self, *, task_row: Task) -> None:
        TONE_PROMOTIONS.append(f"{task_row.name} v{Alias.objects.get(task=task_row, name='champion').version.version}")


TONE = f"{__name__}.ToneRetrainer"


@pytest.fixture
def tone_plugin():  # noqa: ANN201
    for kept in (TONE_FEEDBACK, TONE_SEEN, TONE_PROMOTIONS):
        kept.clear()
    with override_settings(RETRAIN_PLUGINS=[*django_settings.RETRAIN_PLUGINS, TONE]):
        yield
    for kept in (TONE_FEEDBACK, TONE_SEEN, TONE_PROMOTIONS):
        kept.clear()


@pytest.mark.django_db(transaction=True)
def test_a_fake_fourth_task_written_as_one_plugin_is_trained_judged_gated_promoted_and_scheduled(
        tone_plugin: None, settings, tmp_path: Path) -> None:  # noqa: ANN001
    from django_celery_beat.models import PeriodicTask

    from pipelines.retrain import retrain_run
    from services.registry.retrain import retrain_schedules_ensure

    settings.REGISTRY_DIR = tmp_path / "registry"
    settings.RETRAIN_MIN_EXAMPLES = 10
    settings.RETRAIN_EPOCHS = 4
    run_json("registry_add_base", name="tiny-bert", path=str(tiny_base_write(tmp_path / "tiny-base")), default=True)
    texts, labels = sentiment_rows(60, seed=3)
    scrambled = csv_write(tmp_path / "scrambled.csv", texts, labels[1:] + labels[:1])
    run_json("train_adapter", task="tone", data=str(scrambled), epochs=1)  # a deliberately poor champion v1
    base_texts, base_labels = sentiment_rows(90, seed=1)
    base = csv_write(tmp_path / "base.csv", base_texts, base_labels)
    held_back = csv_write(tmp_path / "held_back.csv", *sentiment_rows(60, seed=2))

    idle = run_json("retrain", task="tone", base_data=str(base), held_back=str(held_back))
    assert idle["ran"] is False and "too few new examples: 0 < 10" in idle["reason"]

    now = timezone.now()
    feedback_texts, feedback_labels = sentiment_rows(30, seed=4)
    TONE_FEEDBACK.extend(Example(t, label, "reviewer:rae", now) for t, label in zip(feedback_texts, feedback_labels))
    TONE_SEEN.extend(sentiment_rows(60, seed=11)[0])
    run = retrain_run(task="tone")
    assert run.status == RetrainRun.PROMOTED and run.promoted is True and run.version.version == 2, run.reason
    assert run.n_new_examples == 30 and run.phase == "done"
    assert run.n_examples == len(set(base_texts) | set(feedback_texts))
    assert run.metrics["n"] == run.champion_metrics["n"] == 60  # both judged on the plug-in's held-back set
    assert run.metrics["macro_f1"] > run.champion_metrics["macro_f1"]
    assert run.drift["embedding"]["encoder"] == "tone v1" and run.drift["embedding"]["n_new"] == 60
    assert set(run.drift["new"]) == {"bullish", "bearish", "neutral"}
    assert TONE_PROMOTIONS == ["tone v2"]  # the plug-in's hook ran after the new champion took over
    assert Alias.objects.get(task__name="tone", name="champion").version.version == 2
    assert Task.objects.get(name="tone").retrain_lock_owner == ""

    assert retrain_schedules_ensure() == ["retrain sentiment", "retrain topic", "retrain intent", "retrain rerank",
                                         "retrain retrieval", "retrain recommender", "retrain tone"]
    schedule = PeriodicTask.objects.get(name="retrain tone")
    assert schedule.task == "training.retrain" and schedule.queue == "training"
    assert schedule.kwargs == '{"task": "tone"}'


@pytest.mark.django_db(transaction=True)
def test_a_task_without_a_plugin_is_not_retrainable_and_a_bad_plugin_entry_names_the_setting(
        settings) -> None:  # noqa: ANN001
    defaults = list(django_settings.RETRAIN_PLUGINS)
    assert "tone" not in retrainers()
    with pytest.raises(SuiteError, match="no feedback source") as refused:
        retrainer_get("tone")
    assert refused.value.field == "task"
    nameless = "services.registry.retraining.Retrainer"  # the base class: no task name
    for bad in ("tests.apps.registry.nosuch.Retrainer", f"{__name__}.csv_write", nameless):
        settings.RETRAIN_PLUGINS = [*defaults, bad]
        with pytest.raises(ImproperlyConfigured, match="RETRAIN_PLUGINS"):
            retrainers()
    settings.RETRAIN_PLUGINS = [TONE, TONE]
    with pytest.raises(ImproperlyConfigured, match="RETRAIN_PLUGINS: two plug-ins retrain task 'tone'"):
        retrainers()
