"""Re-fine-tuning's rules: the per-task lock, the run's phase and summary, the schedules, the task's files.

The run itself is pipelines/retrain.py; what each task trains on comes from its plug-in
(services/registry/retraining.py, registered in RETRAIN_PLUGINS).
One run per task at a time: the Task row carries a lock (holder token + expiry) claimed with a conditional
update; a heartbeat thread pushes the expiry forward while training, so a crashed holder's lock simply lapses.
A holder whose heartbeat cannot renew the lock before it lapses (or finds it taken over) stops its own run.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from apps.registry.models import OpsAlert, RetrainRun, Task
from services.errors import SuiteError
from services.registry.live import ops_push
from services.registry.retraining import Example, retrainer_get, retrainers
from services.registry.versions import task_get

logger = logging.getLogger(__name__)


class RetrainBusy(SuiteError):
    """Another live run holds the task's retraining lock."""

    status_code = 409
    code = "busy"


# --- what the plug-ins give the run (services/registry/retraining.py) --------------------------------------

def incoming_texts(*, task: str, since: datetime | None) -> list[str]:
    """What `task`'s model saw in production since `since` (for embedding drift); none for a task without a plug-in."""
    plugins = retrainers()
    return plugins[task].incoming(since) if task in plugins else []


def min_examples_for(task: Task) -> int:
    """New examples a run needs before it trains: the task's own number, else RETRAIN_MIN_EXAMPLES."""
    return task.retrain_min_examples or settings.RETRAIN_MIN_EXAMPLES


def feedback_collect(*, task: str) -> list[Example]:
    """Every labelled feedback example of `task`, oldest first (the newest label of a text wins when training)."""
    return retrainer_get(task).feedback()


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


class RetrainLockLost(SuiteError):
    """The run's lock could not be renewed before it lapsed, or another run took it over: the holder stops."""

    status_code = 409
    code = "lock_lost"


@dataclasses.dataclass
class LockLease:
    """The lock a run holds: its owner token and the signal its heartbeat raises when the lock is lost."""

    owner: str
    lost: threading.Event = dataclasses.field(default_factory=threading.Event)
    reason: str = ""  # why the lock was lost, set before `lost`

    def check(self) -> None:
        """Raise RetrainLockLost when the heartbeat gave the lock up (called between phases and on each step)."""
        if self.lost.is_set():
            raise RetrainLockLost(f"the retraining lock was lost: {self.reason}", field="task")


def _lock_beat_loop(*, task: Task, lease: LockLease, stop: threading.Event) -> None:
    """Renew the lock every TTL/3; retry a failed renewal every TTL/10; signal `lease.lost` when it cannot be kept.

    1. A renewal that raises (a transient DB error) is retried, with a fresh connection, until the lock's last
       known expiry is one retry away: then the lock is given up, since another run may claim it at expiry.
    2. A renewal that changes no row means the lock lapsed and another run took it over: given up at once.
    """
    ttl = float(settings.RETRAIN_LOCK_TTL_S)
    expires = time.monotonic() + ttl  # claimed just now; renewals push it forward
    wait = ttl / 3
    while not stop.wait(wait):
        try:
            renewed = lock_heartbeat(task=task, owner=lease.owner)
        except Exception as exc:  # noqa: BLE001 - any DB error: retry until the lock would lapse
            connection.close()  # a broken connection is reopened by the next try
            if time.monotonic() + ttl / 10 >= expires:
                lease.reason = f"its renewal kept failing until it lapsed (last error: {exc})"
                break
            logger.warning("retraining lock of %s not renewed, retrying: %s", task.name, exc)
            wait = ttl / 10
            continue
        if not renewed:
            lease.reason = "it lapsed and another run took it over"
            break
        expires, wait = time.monotonic() + ttl, ttl / 3
    else:
        return
    logger.error("retraining lock of %s lost: %s; the run stops", task.name, lease.reason)
    lease.lost.set()


@contextmanager
def lock_held(*, task: Task) -> Iterator[LockLease]:
    """Hold the task's lock for the block, with a heartbeat thread; raise RetrainBusy when a live holder has it.

    The block checks the yielded lease (`lease.check()`) and stops when the heartbeat could not keep the lock.
    """
    lease = LockLease(owner=uuid.uuid4().hex)
    if not lock_claim(task=task, owner=lease.owner):
        raise RetrainBusy(f"A retraining run of {task.name!r} is already in progress (its lock is live).", field="task")
    stop = threading.Event()

    def beat() -> None:
        try:
            _lock_beat_loop(task=task, lease=lease, stop=stop)
        finally:
            connection.close()  # this thread's own DB connection

    thread = threading.Thread(target=beat, name=f"retrain-lock-{task.name}", daemon=True)
    thread.start()
    try:
        yield lease
    finally:
        stop.set()
        thread.join()
        lock_release(task=task, owner=lease.owner)


# --- the run ---------------------------------------------------------------------------------------------

def feedback_since(*, task: Task) -> datetime | None:
    last = task.retrain_runs.filter(status__in=[RetrainRun.PROMOTED, RetrainRun.REJECTED]).order_by("-started_at").first()
    return last.examples_until if last else None


def retrain_summary(run: RetrainRun) -> dict[str, Any]:
    """The command's last line: {"task", "ran", "version", "promoted", "reason", "metrics", "champion_metrics"}."""
    return {"task": run.task.name, "ran": run.version_id is not None, "version": run.version.version if run.version else None,
            "promoted": run.promoted, "reason": run.reason, "metrics": run.metrics, "champion_metrics": run.champion_metrics}


def retrain_busy_summary(*, task: str, reason: str) -> dict[str, Any]:
    """The summary of a run that did not start because another holds the lock."""
    return {"task": task, "ran": False, "version": None, "promoted": False, "reason": reason, "metrics": {}, "champion_metrics": {}}


def retrain_task_get(*, name: str) -> Task:
    """The task's row; a task with a retraining plug-in is created on first use, with the plug-in's gate."""
    plugins = retrainers()
    if name not in plugins:
        return task_get(name=name)
    return plugins[name].task_ensure()


def task_data_set(*, task: str, base_data: str | None = None, held_back: str | None = None) -> Task:
    """Record a task's base training file and fixed held-back set (both are read on every run).

    Each file is copied into the registry folder (`data/<sha256>/<file name>`, services/registry/paths.py) and the
    task records that copy: every host finds it in the registry it mounts, and an edit of the caller's file after
    this call changes nothing (record the file again to change the data).
    """
    from services.registry.paths import data_file_store

    row = retrain_task_get(name=task)
    for field, value in (("retrain_data", base_data), ("retrain_eval", held_back)):
        if value is None:
            continue
        setattr(row, f"{field}_file", data_file_store(value, field=field))
    row.save(update_fields=["retrain_data_file", "retrain_eval_file"])
    return row


def retrain_schedules_ensure() -> list[str]:
    """Create the hourly `training.retrain` beat schedule of each task, unless it exists (an admin's edits are kept).

    The job trains only when the task's minimum of new examples exist (Task.retrain_min_examples, else
    RETRAIN_MIN_EXAMPLES), so the hour is how soon feedback is picked up, not how often a model is trained; a
    schedule whose kwargs say "force": true trains on every tick (e.g. a nightly refresh). Runs after every migrate.
    """
    import json

    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    hourly, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.HOURS)
    tasks = list(retrainers())
    for task in tasks:
        PeriodicTask.objects.get_or_create(
            name=f"retrain {task}",
            defaults={"task": "training.retrain", "interval": hourly, "kwargs": json.dumps({"task": task}), "queue": "training",
                      "description": f"Re-fine-tune {task} from new feedback when enough new examples exist."},
        )
    return [f"retrain {task}" for task in tasks]


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
