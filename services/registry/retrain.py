"""Re-fine-tuning's rules: feedback and incoming data per task, the per-task lock, the run's phase and summary.

The run itself is pipelines/retrain.py.
One run per task at a time: the Task row carries a lock (holder token + expiry) claimed with a conditional
update; a heartbeat thread pushes the expiry forward while training, so a crashed holder's lock simply lapses.
"""
from __future__ import annotations

import csv
import threading
import uuid
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

from apps.registry.models import OpsAlert, RetrainRun, Task
from services.registry.versions import task_ensure, task_get
from services.errors import SuiteError
from services.registry.live import ops_push

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


def _recommender_feedback() -> list[Example]:
    """Each interaction the shop sent: the item it was with, its type as the "label", counted by when it arrived."""
    from apps.recommender.models import Event

    rows = Event.objects.order_by("received_at", "id").values_list("item_external_id", "type", "user_id", "received_at")
    return [Example(item, kind, f"user:{user}", at) for item, kind, user, at in rows.iterator()]


FEEDBACK: dict[str, Callable[[], list[Example]]] = {"sentiment": _sentiment_feedback, "intent": _intent_feedback,
                                                     "recommender": _recommender_feedback}

INCOMING_MAX = 2000  # newest incoming texts looked at for drift


def _sentiment_incoming(since: datetime | None) -> list[str]:
    from apps.sentiment.models import ScoredNews

    rows = ScoredNews.objects.filter(stored_at__gt=since) if since else ScoredNews.objects.all()
    return list(rows.order_by("-stored_at").values_list("headline", flat=True)[:INCOMING_MAX])


def _intent_incoming(since: datetime | None) -> list[str]:
    from apps.support.models import Message

    rows = Message.objects.filter(sender=Message.CUSTOMER)
    rows = rows.filter(created_at__gt=since) if since else rows
    return list(rows.order_by("-created_at").values_list("text", flat=True)[:INCOMING_MAX])


def _recommender_incoming(since: datetime | None) -> list[str]:
    from apps.recommender.models import Event, Item
    from services.recommender.catalog import item_text

    events = Event.objects.filter(received_at__gt=since) if since else Event.objects.all()
    pks = events.exclude(item=None).order_by("-received_at").values_list("item_id", flat=True)[:INCOMING_MAX]
    items = Item.objects.filter(pk__in=list(pks))
    return [item_text(title=i.title, description=i.description, category=i.category, tags=i.tags) for i in items]


# What each task's model sees in production (headlines scored, customer questions, items interacted with): the
# embedding drift compares these, since the last completed run, with the training data.
INCOMING: dict[str, Callable[[datetime | None], list[str]]] = {"sentiment": _sentiment_incoming, "intent": _intent_incoming,
                                                               "recommender": _recommender_incoming}


def incoming_texts(*, task: str, since: datetime | None) -> list[str]:
    return INCOMING[task](since) if task in INCOMING else []


def min_examples_for(task: Task) -> int:
    """New examples a run needs before it trains: the task's own number, else RETRAIN_MIN_EXAMPLES."""
    return task.retrain_min_examples or settings.RETRAIN_MIN_EXAMPLES


def feedback_collect(*, task: str) -> list[Example]:
    """Every labelled feedback example of `task`, oldest first (the newest label of a text wins when training)."""
    if task not in FEEDBACK:
        raise SuiteError(f"Task {task!r} has no feedback source to retrain from (known: {', '.join(sorted(FEEDBACK))}).",
                         field="task")
    return FEEDBACK[task]()


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


def retrain_task_get(*, name: str) -> Task:
    """The task's row; the suite's own retrainable tasks are created on first use (recommender: gated on ndcg_at_k)."""
    if name not in RETRAIN_TASKS:
        return task_get(name=name)
    if name == "recommender":
        return recommender_task_ensure()
    return task_ensure(name=name)


def recommender_task_ensure() -> Task:
    """The `recommender` task (pairs), gated on its ranking metric rather than the classifiers' macro-F1."""
    task = task_ensure(name="recommender", kind=Task.KIND_PAIRS)
    if task.gate_metric == "macro_f1":  # the model default: never chosen for this task
        Task.objects.filter(pk=task.pk).update(gate_metric="ndcg_at_k", gate_guard_metric="recall_at_k")
        task.refresh_from_db()
    return task


def task_data_set(*, task: str, base_data: str | None = None, held_back: str | None = None) -> Task:
    """Record where a task's base training file and fixed held-back set live (both are read on every run)."""
    row = retrain_task_get(name=task)
    for field, value in (("retrain_data", base_data), ("retrain_eval", held_back)):
        if value is None:
            continue
        path = Path(value).expanduser().resolve()
        if not path.is_file():
            raise SuiteError(f"{path} does not exist or is not a file.", field=field)
        setattr(row, field, str(path))
    row.save(update_fields=["retrain_data", "retrain_eval"])
    return row


RETRAIN_TASKS = ["sentiment", "intent", "recommender"]  # the tasks with a feedback source (FEEDBACK) and so a schedule


def retrain_schedules_ensure() -> list[str]:
    """Create the hourly `training.retrain` beat schedule of each task, unless it exists (an admin's edits are kept).

    The job trains only when the task's minimum of new examples exist (Task.retrain_min_examples, else
    RETRAIN_MIN_EXAMPLES), so the hour is how soon feedback is picked up, not how often a model is trained; a
    schedule whose kwargs say "force": true trains on every tick (e.g. a nightly refresh). Runs after every migrate.
    """
    import json

    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    hourly, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.HOURS)
    for task in RETRAIN_TASKS:
        PeriodicTask.objects.get_or_create(
            name=f"retrain {task}",
            defaults={"task": "training.retrain", "interval": hourly, "kwargs": json.dumps({"task": task}), "queue": "training",
                      "description": f"Re-fine-tune {task} from new feedback when enough new examples exist."},
        )
    return [f"retrain {task}" for task in RETRAIN_TASKS]


# --- where a run is: stored on the row, pushed live -------------------------------------------------------

PHASES = ("collecting", "training", "registering", "evaluating", "gating", "done")


def run_payload(run: RetrainRun) -> dict[str, Any]:
    """The `run_progress` event of a run (services/registry/live.py)."""
    progress = run.progress or {}
    return {"run": run.pk, "task": run.task.name, "status": run.status, "phase": run.phase, "step": progress.get("step"),
            "total": progress.get("total"), "version": run.version.version if run.version_id else None, "reason": run.reason}


def run_phase_set(run: RetrainRun, *, phase: str, step: int | None = None, total: int | None = None) -> None:
    """Record where `run` is (one UPDATE, so a kill right after leaves it readable) and push it to the operations page."""
    if phase not in PHASES:
        raise ValueError(f"unknown run phase {phase!r}; one of {', '.join(PHASES)}")
    run.phase = phase
    if total:  # later phases keep the training steps reached (a finished run shows them)
        run.progress = {"step": step, "total": total}
    RetrainRun.objects.filter(pk=run.pk).update(phase=run.phase, progress=run.progress)
    ops_push(event="run_progress", payload=run_payload(run))


def run_failed_alert(run: RetrainRun) -> OpsAlert:
    """Store an in-app alert for a failed (or abandoned) run, shown on /registry/operations/, and push it live."""
    alert = OpsAlert.objects.create(task=run.task, run=run, level="error",
                                    message=f"retrain of {run.task.name} failed (run {run.pk}): {run.reason}")
    ops_push(event="ops_alert", payload={"id": alert.pk, "task": run.task.name, "run": run.pk, "level": alert.level,
                                         "message": alert.message, "created_at": alert.created_at.isoformat()})
    return alert
