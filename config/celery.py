"""The Celery application: `celery -A config worker -Q inference,training,default`.

Every task gets soft and hard time limits (SUITE_TASK_TIME_LIMITS_S: by task name, else by its queue). A prefork
worker enforces them itself; the thread pool the suite runs (deploy/suite.sh) ignores them, so here a timer
raises SoftTimeLimitExceeded in the task's thread at the soft limit, as a prefork child's signal would.

Delivery (config/settings.py):
1. `task_acks_late`: a task is acknowledged when it ends, not when a worker takes it, so a worker killed mid-task
   (deploy, OOM, lost host) leaves it to run again elsewhere; `task_reject_on_worker_lost` does the same for a
   prefork child that dies. Every task is therefore written to be safe to run twice (idempotent writes, leases and
   locks on training and index builds, outbox rows for deliveries).
2. `worker_prefetch_multiplier` 1: a worker holds one unacknowledged task per slot, not a batch others could run.
3. Redis redelivers an unacknowledged task after the broker's `visibility_timeout` (CELERY_VISIBILITY_TIMEOUT_S), so
   it is longer than the longest hard time limit: a six-hour training run is never started a second time while it
   still runs. A retry's countdown stays far below it (a longer one would be redelivered early).
"""
from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from typing import Any

from celery import Celery, signals
from celery.exceptions import SoftTimeLimitExceeded

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

log = logging.getLogger("config.celery")

app = Celery("suite")
app.config_from_object("django.conf:settings", namespace="CELERY")


def task_queue(name: str) -> str:
    """The queue CELERY_TASK_ROUTES sends task `name` to (patterns like `inference.*`), else the default queue."""
    from django.conf import settings

    for pattern, route in settings.CELERY_TASK_ROUTES.items():
        if name == pattern or (pattern.endswith(".*") and name.startswith(pattern[:-1])):
            return route["queue"]
    return settings.CELERY_TASK_DEFAULT_QUEUE


class TimeLimits:
    """A Celery annotation: each task's soft limit by its name or its queue, the hard limit a grace later."""

    def annotate(self, task: Any) -> dict[str, float] | None:
        from django.conf import settings

        if task.name.startswith("celery."):  # Celery's own (chord unlock, backend cleanup): left as Celery made them
            return None
        limits = settings.SUITE_TASK_TIME_LIMITS_S
        soft = limits.get(task.name) or limits.get(task_queue(task.name)) or limits[settings.CELERY_TASK_DEFAULT_QUEUE]
        return {"soft_time_limit": soft, "time_limit": soft + settings.SUITE_TASK_TIME_LIMIT_GRACE_S}


app.conf.task_annotations = [TimeLimits()]
app.autodiscover_tasks()

_pool_enforces = False  # set in prefork children, where Celery's own timers do the work
_running: dict[str, threading.Timer] = {}  # task id -> its timer, while the task runs
_running_lock = threading.Lock()


@signals.worker_process_init.connect
def _in_prefork_child(**_: Any) -> None:
    global _pool_enforces
    _pool_enforces = True


def _raise_in(thread_id: int, *, task_id: str, task_name: str, soft: float) -> None:
    """Raise SoftTimeLimitExceeded in the task's thread (at its next Python instruction; a blocking call ends first).

    Only while the task still runs (the lock orders it against `_limit_end`), so the exception never lands in the
    pool's own loop after the task returned.
    """
    with _running_lock:
        if _running.pop(task_id, None) is None:
            return
        log.warning("task %s passed its soft time limit of %s s; stopping it", task_name, soft)
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(SoftTimeLimitExceeded))


@signals.task_prerun.connect
def _limit_start(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    soft = getattr(task, "soft_time_limit", None)
    if _pool_enforces or not soft or task_id is None:
        return
    timer = threading.Timer(soft, _raise_in, args=(threading.get_ident(),),
                            kwargs={"task_id": task_id, "task_name": task.name, "soft": soft})
    timer.daemon = True
    with _running_lock:
        _running[task_id] = timer
    timer.start()


@signals.task_postrun.connect
def _limit_end(task_id: str | None = None, **_: Any) -> None:
    with _running_lock:
        timer = _running.pop(task_id, None) if task_id is not None else None
    if timer is not None:
        timer.cancel()


# --- Worker metrics: a worker has no web server, so it may serve its own series (services/metrics.py) ---------------
_task_started: dict[str, float] = {}  # task id -> time.monotonic() at its start, while it runs


@signals.worker_init.connect
def _metrics_exporter_start(sender: Any = None, **_: Any) -> None:
    """With SUITE_WORKER_METRICS_PORT set, serve this worker's registry on SUITE_WORKER_METRICS_ADDR:PORT.

    A taken port is logged, not fatal: the worker's tasks matter more than its metrics (two workers on one host
    need two ports). Under the prefork pool tasks run in child processes whose series this exporter cannot see;
    the suite's workers use the thread pool (deploy/suite.sh, the Procfile).
    """
    from django.conf import settings

    port = settings.SUITE_WORKER_METRICS_PORT
    if not port:
        return
    from services.metrics import worker_exporter_start

    pool = str(getattr(sender, "pool_cls", "") or "prefork")
    if "prefork" in pool.lower():
        log.warning("worker metrics: the prefork pool runs tasks in child processes; their series are not exported "
                    "(run the worker with --pool=threads)")
    try:
        worker_exporter_start(addr=settings.SUITE_WORKER_METRICS_ADDR, port=port)
    except OSError as exc:
        log.error("worker metrics: cannot listen on %s:%s (%s); this worker exports nothing",
                  settings.SUITE_WORKER_METRICS_ADDR, port, exc.strerror or exc)
        return
    log.info("worker metrics on http://%s:%s/metrics", settings.SUITE_WORKER_METRICS_ADDR, port)


@signals.task_prerun.connect
def _task_clock_start(task_id: str | None = None, **_: Any) -> None:
    if task_id is not None:
        _task_started[task_id] = time.monotonic()


@signals.task_postrun.connect
def _task_count(task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any) -> None:
    """Count the task by its outcome (Celery's state: SUCCESS, FAILURE, RETRY, ...) and record how long it ran."""
    started = _task_started.pop(task_id, None) if task_id is not None else None
    if task is None:
        return
    from services.metrics import task_observe

    task_observe(task=task.name, outcome=state or "unknown",
                 seconds=None if started is None else time.monotonic() - started)
