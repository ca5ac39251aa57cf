"""Model operations: what /registry/operations/ and /api/registry/operations show per task, and what an admin does there.

Reads: per task its champion, minimum of new examples, beat schedules, lock, last runs, champion history and drift;
the open alerts. Writes: edit a task's retraining schedule or minimum, queue a run now, acknowledge an alert.
The page and the REST API both call these, so they show and change the same things.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from apps.registry.models import Alias, AliasEvent, OpsAlert, RetrainRun, Task
from services.errors import NotFound, ServiceUnavailable, SuiteError
from services.registry.live import ops_push
from services.registry.retrain import min_examples_for
from services.registry.retraining import retrainers
from services.registry.versions import task_get

if TYPE_CHECKING:
    from django_celery_beat.models import PeriodicTask

RETRAIN_CELERY_TASK = "training.retrain"
RUNS_SHOWN = 10
HISTORY_SHOWN = 20
ALERT_STATES = ("open", "acknowledged", "all")
SCHEDULE_PERIODS = ("days", "hours", "minutes", "seconds")


@dataclass
class TaskOperations:
    """One task as the operations page shows it."""

    task: Task
    champion: int | None  # the champion's version number; None before the first registration
    min_examples: int  # new examples a scheduled run needs: the task's own number, else RETRAIN_MIN_EXAMPLES
    schedules: list[PeriodicTask]
    lock: dict[str, Any]  # {"held", "expires_at"}: a lock past its expiry is free (its holder died)
    runs: list[RetrainRun]  # newest first, each with `.seconds` (None while running)
    champion_history: list[AliasEvent]  # champion moves, newest first
    drift: dict[str, Any]  # the newest run's drift that has one ({} when none was measured yet)


# --- reading -----------------------------------------------------------------------------------------------

def schedule_task_name(schedule: PeriodicTask) -> str | None:
    """The registry task a `training.retrain` beat schedule runs (kwargs {"task": ...}, or its first arg)."""
    try:
        name = json.loads(schedule.kwargs or "{}").get("task")
        return name or (json.loads(schedule.args or "[]") or [None])[0]
    except (ValueError, TypeError, AttributeError, IndexError):
        return None


def schedules_by_task() -> dict[str | None, list[PeriodicTask]]:
    from django_celery_beat.models import PeriodicTask

    out: dict[str | None, list[PeriodicTask]] = {}
    for schedule in PeriodicTask.objects.filter(task=RETRAIN_CELERY_TASK).select_related("interval", "crontab").order_by("name"):
        out.setdefault(schedule_task_name(schedule), []).append(schedule)
    return out


def lock_state(task: Task, *, now: datetime | None = None) -> dict[str, Any]:
    """{"held", "expires_at"}: held while a holder's expiry lies ahead (services/registry/retrain.py lock_claim)."""
    now = now or timezone.now()
    held = bool(task.retrain_lock_owner) and task.retrain_lock_expires_at is not None and task.retrain_lock_expires_at > now
    return {"held": held, "expires_at": task.retrain_lock_expires_at if task.retrain_lock_owner else None}


def task_operations(task: Task, *, schedules: list[PeriodicTask]) -> TaskOperations:
    runs = list(RetrainRun.objects.filter(task=task).select_related("task", "version")[:RUNS_SHOWN])
    for run in runs:  # the page's duration column; the API serializer computes its own
        run.seconds = (run.finished_at - run.started_at).total_seconds() if run.finished_at else None
    champion = Alias.objects.filter(task=task, name=Alias.CHAMPION).select_related("version").first()
    return TaskOperations(
        task=task, champion=champion.version.version if champion else None, min_examples=min_examples_for(task),
        schedules=schedules, lock=lock_state(task), runs=runs,
        champion_history=list(AliasEvent.objects.filter(task=task, alias=Alias.CHAMPION).select_related("task")[:HISTORY_SHOWN]),
        drift=next((r.drift for r in runs if r.drift), {}),
    )


def operations_overview() -> list[TaskOperations]:
    """Every task's operations, by name."""
    schedules = schedules_by_task()
    return [task_operations(task, schedules=schedules.get(task.name, [])) for task in Task.objects.all()]


# --- schedules ---------------------------------------------------------------------------------------------

def schedule_list(*, task: str) -> list[PeriodicTask]:
    """The `training.retrain` beat schedules of `task` (NotFound for an unknown task)."""
    row = task_get(name=task)
    return schedules_by_task().get(row.name, [])


def schedule_get(*, task: str, schedule_id: int) -> PeriodicTask:
    """One of the task's retraining schedules; NotFound for any other periodic task, so one URL cannot edit another's."""
    schedule = next((s for s in schedule_list(task=task) if s.pk == schedule_id), None)
    if schedule is None:
        raise NotFound(f"Task {task!r} has no retraining schedule with id {schedule_id}.", field="schedule")
    return schedule


def schedule_payload(schedule: PeriodicTask) -> dict[str, Any]:
    """A schedule as the API shows it; `interval` or `crontab` is set, the other is None."""
    try:
        kwargs = json.loads(schedule.kwargs or "{}")
    except ValueError:
        kwargs = {}
    interval = {"every": schedule.interval.every, "period": schedule.interval.period} if schedule.interval else None
    return {"id": schedule.pk, "name": schedule.name, "enabled": schedule.enabled, "interval": interval,
            "crontab": str(schedule.crontab) if schedule.crontab else None, "kwargs": kwargs,
            "queue": schedule.queue or None, "last_run_at": schedule.last_run_at, "total_run_count": schedule.total_run_count}


def _bool_check(value: Any, field: str) -> None:
    if not isinstance(value, bool):
        raise SuiteError(f"{field} must be true or false, not {value!r}.", field=field)


def schedule_update(*, task: str, schedule_id: int, enabled: bool | None = None, every: int | None = None,
                    period: str | None = None, force: bool | None = None) -> PeriodicTask:
    """Change a retraining schedule: switch it on/off, set its interval, make its runs forced or not.

    1. Check the values (a SuiteError naming the field); None leaves that part as it is.
    2. A new `every` or `period` replaces the schedule (a crontab too) with that interval; the other part is kept
       from the current interval, so a crontab schedule needs both.
    3. Save through the model, which tells celery beat to reload its schedule.
    """
    from django_celery_beat.models import IntervalSchedule

    if enabled is not None:
        _bool_check(enabled, "enabled")
    if force is not None:
        _bool_check(force, "force")
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
        raise SuiteError(f"every must be a whole number of periods ≥ 1, not {every!r}.", field="every")
    if period is not None and period not in SCHEDULE_PERIODS:
        raise SuiteError(f"period must be one of {', '.join(SCHEDULE_PERIODS)}, not {period!r}.", field="period")
    with transaction.atomic():
        schedule = schedule_get(task=task, schedule_id=schedule_id)
        if every is not None or period is not None:
            current = schedule.interval
            if current is None and (every is None or period is None):
                missing = "every" if every is None else "period"
                raise SuiteError(f"{schedule.name!r} runs on a crontab: give both every and period to turn it into an "
                                 f"interval ({missing} is missing).", field=missing)
            schedule.interval, _ = IntervalSchedule.objects.get_or_create(
                every=every if every is not None else current.every, period=period or current.period)
            schedule.crontab = schedule.solar = schedule.clocked = None
        if enabled is not None:
            schedule.enabled = enabled
        if force is not None:
            kwargs = {"task": schedule_task_name(schedule), **json.loads(schedule.kwargs or "{}")}
            kwargs.pop("force", None)
            schedule.kwargs = json.dumps({**kwargs, "force": True} if force else kwargs)
        schedule.save()
    return schedule


# --- the task's minimum and a run now ----------------------------------------------------------------------

def task_min_examples_set(*, task: str, min_examples: int | None) -> Task:
    """Set how many new examples a scheduled run of `task` needs; None falls back to RETRAIN_MIN_EXAMPLES."""
    if min_examples is not None and (isinstance(min_examples, bool) or not isinstance(min_examples, int) or min_examples < 1):
        raise SuiteError(f"retrain_min_examples must be a whole number ≥ 1, or null for the RETRAIN_MIN_EXAMPLES setting "
                         f"({settings.RETRAIN_MIN_EXAMPLES}); got {min_examples!r}.", field="retrain_min_examples")
    row = task_get(name=task)
    Task.objects.filter(pk=row.pk).update(retrain_min_examples=min_examples)
    row.retrain_min_examples = min_examples
    return row


def retrain_enqueue(*, task: str, force: bool = False) -> str:
    """Queue one `training.retrain` of `task` on the `training` queue now; its Celery id.

    The result is not stored (ignore_result): the run's record is its RetrainRun row, and a web process that
    subscribes to results would wait ~20 s on a dead Redis before failing. A broker that cannot be reached
    raises ServiceUnavailable within seconds (CELERY_BROKER_TRANSPORT_OPTIONS bounds the retries).
    """
    from celery import current_app
    from kombu.exceptions import OperationalError

    retrainable = retrainers()
    if task not in retrainable:
        task_get(name=task)  # NotFound for a task that does not exist at all
        raise SuiteError(f"Task {task!r} has no feedback source to retrain from (retrainable: {', '.join(retrainable)}).",
                         field="task")
    try:
        result = current_app.send_task(RETRAIN_CELERY_TASK, kwargs={"task": task, "force": force}, queue="training",
                                       ignore_result=True)
    except OperationalError as exc:
        raise ServiceUnavailable(f"The retrain of {task!r} was not queued: the Celery broker cannot be reached ({exc}). "
                                 "Start Redis (`make services`) and try again.") from exc
    return result.id


# --- alerts ------------------------------------------------------------------------------------------------

def ops_alert_list(*, task: str | None = None, state: str = "open") -> QuerySet[OpsAlert]:
    """Alerts newest first; `state` is open (not acknowledged), acknowledged or all."""
    if state not in ALERT_STATES:
        raise SuiteError(f"state must be one of {', '.join(ALERT_STATES)}, not {state!r}.", field="state")
    alerts = OpsAlert.objects.select_related("task")
    if task:
        alerts = alerts.filter(task=task_get(name=task))
    if state != "all":
        alerts = alerts.filter(acknowledged_at__isnull=state == "open")
    return alerts


def ops_alert_acknowledge(*, alert_id: int, actor: str, comment: str = "") -> OpsAlert:
    """Mark an alert as seen, once, with an optional comment. Other open pages are told (alert_acknowledged)."""
    fields: dict[str, Any] = {"acknowledged_at": timezone.now(), "acknowledged_by": actor[:150],
                              "acknowledged_comment": comment.strip()[:2000]}
    changed = OpsAlert.objects.filter(pk=alert_id, acknowledged_at__isnull=True).update(**fields)
    alert = OpsAlert.objects.select_related("task").filter(pk=alert_id).first()
    if alert is None:
        raise NotFound(f"There is no alert {alert_id}.", field="alert")
    if not changed:
        raise SuiteError(f"Alert {alert_id} was already acknowledged by {alert.acknowledged_by}.", field="alert")
    ops_push(event="alert_acknowledged", payload={"id": alert.pk, "task": alert.task.name if alert.task else None,
                                                  "message": alert.message, "created_at": alert.created_at.isoformat(),
                                                  "acknowledged_by": alert.acknowledged_by,
                                                  "acknowledged_comment": alert.acknowledged_comment,
                                                  "acknowledged_at": alert.acknowledged_at.isoformat()})
    return alert
