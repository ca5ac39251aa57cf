"""Re-fine-tuning's rules: feedback per task, label drift, the per-task lock and the run's summary.

The run itself is pipelines/retrain.py.
One run per task at a time: the Task row carries a lock (holder token + expiry) claimed with a conditional
update; a heartbeat thread pushes the expiry forward while training, so a crashed holder's lock simply lapses.
"""
from __future__ import annotations

import csv
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from apps.registry.models import RetrainRun, Task
from services.registry.versions import task_get
from services.errors import SuiteError

@dataclass(frozen=True)
class Example:
    text: str
    label: str
    source: str  # who or what gave it ("analyst:ann", "agent_marked_wrong", ...)
    created_at: datetime


class RetrainBusy(SuiteError):
    """Another live run holds the task's retraining lock."""

    status_code = 409
    code = "busy"


# --- feedback per task -----------------------------------------------------------------------------------

def _sentiment_feedback() -> list[Example]:
    from apps.sentiment.models import Relabel

    return [Example(r.text, r.label, r.source, r.created_at)
            for r in Relabel.objects.filter(task="sentiment").order_by("created_at", "id")]


def _intent_feedback() -> list[Example]:
    from apps.support.models import TrainingExample

    rows = TrainingExample.objects.filter(task="intent").exclude(label="").order_by("created_at", "id")
    return [Example(r.text, r.label, r.source, r.created_at) for r in rows]


FEEDBACK: dict[str, Callable[[], list[Example]]] = {"sentiment": _sentiment_feedback, "intent": _intent_feedback}


def feedback_collect(*, task: str) -> list[Example]:
    """Every labelled feedback example of `task`, oldest first (the newest label of a text wins when training)."""
    if task not in FEEDBACK:
        raise SuiteError(f"Task {task!r} has no feedback source to retrain from (known: {', '.join(sorted(FEEDBACK))}).",
                         field="task")
    return FEEDBACK[task]()


# --- drift -----------------------------------------------------------------------------------------------

def label_drift(*, new: list[str], train: list[str]) -> dict[str, Any]:
    """Total variation distance between the label shares of new examples and of the training data (0 = same, 1 = disjoint)."""
    def shares(labels: list[str]) -> dict[str, float]:
        counts = Counter(labels)
        return {k: round(v / len(labels), 5) for k, v in sorted(counts.items())} if labels else {}

    new_s, train_s = shares(new), shares(train)
    keys = set(new_s) | set(train_s)
    tvd = 0.5 * sum(abs(new_s.get(k, 0.0) - train_s.get(k, 0.0)) for k in keys) if new_s and train_s else 0.0
    return {"label_tvd": round(tvd, 5), "new": new_s, "train": train_s}


# --- the lock --------------------------------------------------------------------------------------------

def lock_claim(*, task: Task, owner: str, now: datetime | None = None) -> bool:
    """Take the task's retraining lock when it is free or expired; True only when this call changed the row."""
    now = now or timezone.now()
    free = Q(retrain_lock_owner="") | Q(retrain_lock_expires_at__isnull=True) | Q(retrain_lock_expires_at__lt=now)
    expires = now + timedelta(seconds=settings.RETRAIN_LOCK_TTL_S)
    return Task.objects.filter(free, pk=task.pk).update(retrain_lock_owner=owner, retrain_lock_expires_at=expires) == 1


def lock_heartbeat(*, task: Task, owner: str) -> bool:
    """Push the lock's expiry forward; False when the lock is no longer ours (it lapsed and was taken over)."""
    expires = timezone.now() + timedelta(seconds=settings.RETRAIN_LOCK_TTL_S)
    return Task.objects.filter(pk=task.pk, retrain_lock_owner=owner).update(retrain_lock_expires_at=expires) == 1


def lock_release(*, task: Task, owner: str) -> None:
    Task.objects.filter(pk=task.pk, retrain_lock_owner=owner).update(retrain_lock_owner="", retrain_lock_expires_at=None)


@contextmanager
def lock_held(*, task: Task) -> Iterator[str]:
    """Hold the task's lock for the block, with a heartbeat thread; raise RetrainBusy when a live holder has it."""
    owner = uuid.uuid4().hex
    if not lock_claim(task=task, owner=owner):
        raise RetrainBusy(f"A retraining run of {task.name!r} is already in progress (its lock is live).", field="task")
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(settings.RETRAIN_LOCK_TTL_S / 3):
                lock_heartbeat(task=task, owner=owner)
        finally:
            connection.close()  # this thread's own DB connection

    thread = threading.Thread(target=beat, name=f"retrain-lock-{task.name}", daemon=True)
    thread.start()
    try:
        yield owner
    finally:
        stop.set()
        thread.join()
        lock_release(task=task, owner=owner)


# --- the run ---------------------------------------------------------------------------------------------

def feedback_since(*, task: Task) -> datetime | None:
    last = task.retrain_runs.filter(status__in=[RetrainRun.PROMOTED, RetrainRun.REJECTED]).order_by("-started_at").first()
    return last.examples_until if last else None


def training_file_write(*, base_texts: list[str], base_labels: list[str], feedback: list[Example], folder: Path) -> tuple[Path, int]:
    """Base data plus feedback as one `text,label` CSV; a relabelled text keeps only its newest label."""
    rows: dict[str, str] = dict(zip(base_texts, base_labels))
    for example in feedback:
        rows[example.text] = example.label
    path = folder / "retrain.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows.items())
    return path, len(rows)


def retrain_summary(run: RetrainRun) -> dict[str, Any]:
    """The command's last line: {"task", "ran", "version", "promoted", "reason", "metrics", "champion_metrics"}."""
    return {"task": run.task.name, "ran": run.version_id is not None, "version": run.version.version if run.version else None,
            "promoted": run.promoted, "reason": run.reason, "metrics": run.metrics, "champion_metrics": run.champion_metrics}


def retrain_busy_summary(*, task: str, reason: str) -> dict[str, Any]:
    """The summary of a run that did not start because another holds the lock."""
    return {"task": task, "ran": False, "version": None, "promoted": False, "reason": reason, "metrics": {}, "champion_metrics": {}}


def task_data_set(*, task: str, base_data: str | None = None, held_back: str | None = None) -> Task:
    """Record where a task's base training file and fixed held-back set live (both are read on every run)."""
    row = task_get(name=task)
    for field, value in (("retrain_data", base_data), ("retrain_eval", held_back)):
        if value is None:
            continue
        path = Path(value).expanduser().resolve()
        if not path.is_file():
            raise SuiteError(f"{path} does not exist or is not a file.", field=field)
        setattr(row, field, str(path))
    row.save(update_fields=["retrain_data", "retrain_eval"])
    return row


RETRAIN_TASKS = ["sentiment", "intent"]  # the tasks with a feedback source (FEEDBACK) and so a schedule


def retrain_schedules_ensure() -> list[str]:
    """Create the hourly `training.retrain` beat schedule of each task, unless it exists (an admin's edits are kept).

    The job trains only when RETRAIN_MIN_EXAMPLES new examples exist, so the hour is how soon feedback is
    picked up, not how often a model is trained. Runs after every migrate.
    """
    import json

    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    hourly, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.HOURS)
    for task in RETRAIN_TASKS:
        PeriodicTask.objects.get_or_create(
            name=f"retrain {task}",
            defaults={"task": "training.retrain", "interval": hourly, "kwargs": json.dumps({"task": task}), "queue": "training",
                      "description": f"Re-fine-tune {task} from new feedback when RETRAIN_MIN_EXAMPLES new examples exist."},
        )
    return [f"retrain {task}" for task in RETRAIN_TASKS]
