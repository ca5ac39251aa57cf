"""Periodic re-fine-tuning: a task's feedback becomes a challenger, judged on a fixed held-back set, gated, promoted.

    python manage.py retrain --task sentiment [--force]
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from apps.registry.models import OpsAlert, RetrainRun, Task
from pipelines.training import TrainRequest, adapter_train
from services.ml.artifacts import artifact_evaluate
from services.ml.data import dataset_read
from services.registry.retrain import feedback_collect, feedback_since, label_drift, lock_held, training_file_write
from services.registry.versions import task_get, version_get, version_promote

ACTOR = "pipeline:retrain"


def _finish(run: RetrainRun, *, status: str, reason: str, **fields: Any) -> RetrainRun:
    for name, value in fields.items():
        setattr(run, name, value)
    run.status, run.reason, run.finished_at = status, reason, timezone.now()
    run.save()
    return run


def retrain_run(*, task: str, force: bool = False) -> RetrainRun:
    """Retrain `task` from its base data plus its feedback, when enough is new (or forced).

    1. Claim the task's lock (RetrainBusy when a live run holds it); runs a dead holder left "running" are closed.
    2. Count feedback newer than the last completed run; too few and not forced: a skipped run with the reason.
    3. Train a new version on base data + all feedback; it is registered as challenger.
    4. Evaluate it and the champion on the task's fixed held-back set; gate on those numbers; promote or keep it
       as challenger with the gate's reason. Label drift of the new feedback against the base data is recorded.
    """
    task_row = task_get(name=task)
    with lock_held(task=task_row):
        abandoned = list(task_row.retrain_runs.filter(status=RetrainRun.RUNNING).values_list("pk", flat=True))
        task_row.retrain_runs.filter(pk__in=abandoned).update(
            status=RetrainRun.FAILED, finished_at=timezone.now(), reason="abandoned: its worker stopped before finishing")
        for dead in RetrainRun.objects.filter(pk__in=abandoned).select_related("task"):
            failed_run_alert(dead)
        run = RetrainRun.objects.create(task=task_row, forced=force)
        try:
            return _run_body(run=run, task_row=task_row, force=force)
        except Exception as exc:
            _finish(run, status=RetrainRun.FAILED, reason=f"failed: {exc}")
            failed_run_alert(run)
            raise


OPS_GROUP = "registry-ops"


def failed_run_alert(run: RetrainRun) -> OpsAlert:
    """Store an in-app alert for a failed run (shown on /registry/operations/) and push it live to `registry-ops`."""
    alert = OpsAlert.objects.create(task=run.task, run=run, level="error",
                                    message=f"retrain of {run.task.name} failed (run {run.pk}): {run.reason}")
    try:
        from apps.core.live import group_push

        group_push(group=OPS_GROUP, event="ops_alert", payload={"id": alert.pk, "task": run.task.name, "run": run.pk,
                                                                 "message": alert.message, "created_at": alert.created_at.isoformat()})
    except Exception:  # noqa: BLE001 - the stored alert is the record; a live push is best effort (Redis may be down)
        pass
    return alert


def _run_body(*, run: RetrainRun, task_row: Task, force: bool) -> RetrainRun:
    if not task_row.retrain_data or not task_row.retrain_eval:
        return _finish(run, status=RetrainRun.SKIPPED,
                       reason=f"task {task_row.name!r} has no base data or held-back set configured (Task.retrain_data / retrain_eval)")
    until = timezone.now()
    feedback = [e for e in feedback_collect(task=task_row.name) if e.created_at <= until]
    since = feedback_since(task=task_row)
    new = [e for e in feedback if since is None or e.created_at > since]
    base = dataset_read(path=task_row.retrain_data)
    drift = label_drift(new=[e.label for e in new], train=base.labels)
    run.n_new_examples, run.drift, run.examples_until = len(new), drift, until
    minimum = settings.RETRAIN_MIN_EXAMPLES
    if len(new) < minimum and not force:
        return _finish(run, status=RetrainRun.SKIPPED,
                       reason=f"too few new examples: {len(new)} < {minimum} (RETRAIN_MIN_EXAMPLES); use --force to train anyway")
    held_back = dataset_read(path=task_row.retrain_eval)
    with tempfile.TemporaryDirectory(prefix=f"retrain-{task_row.name}-") as folder:
        data, run.n_examples = training_file_write(base_texts=base.texts, base_labels=base.labels, feedback=feedback,
                                                    folder=Path(folder))
        epochs = settings.RETRAIN_EPOCHS or None
        summary = adapter_train(TrainRequest(task=task_row.name, data=str(data), epochs=epochs, created_by=ACTOR), progress=False)
    version = version_get(task_name=task_row.name, version=summary["version"])
    run.version = version
    run.metrics = artifact_evaluate(folder=version.path, texts=held_back.texts, labels=held_back.labels, base_path=version.base.path)
    champion = version_get(task_name=task_row.name)
    if champion.pk == version.pk:  # the task's first version: nothing to beat
        return _finish(run, status=RetrainRun.PROMOTED, promoted=True, reason="first version of the task")
    run.champion_metrics = artifact_evaluate(folder=champion.path, texts=held_back.texts, labels=held_back.labels,
                                             base_path=champion.base.path)
    outcome = version_promote(task_name=task_row.name, version=version.version, actor=ACTOR,
                              reason=f"retrain run {run.pk} on the held-back set", judged_on=(run.metrics, run.champion_metrics))
    status = RetrainRun.PROMOTED if outcome.promoted else RetrainRun.REJECTED
    return _finish(run, status=status, promoted=outcome.promoted, reason=outcome.reason)
