"""Periodic re-fine-tuning: a task's feedback becomes a challenger, judged on a fixed held-back set, gated, promoted.

    python manage.py retrain --task TASK [--force]   (TASK: a name a RETRAIN_PLUGINS plug-in declares)

The same job runs as the Celery task `training.retrain` (beat: the `retrain <task>` schedules, `training` queue).
The loop is the same for every task: what a run trains on, how it is judged and what follows a promotion come
from the task's plug-in (services/registry/retraining.py, listed in the RETRAIN_PLUGINS setting).
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.utils import timezone

from apps.registry.models import RetrainRun, Task
from pipelines.training import TrainRequest, adapter_train
from services.errors import NotFound
from services.registry.drift import label_drift, texts_drift
from services.registry.live import ops_push
from services.registry.retrain import (
    LockLease,
    feedback_collect,
    feedback_since,
    incoming_texts,
    lock_held,
    min_examples_for,
    retrain_task_get,
    run_failed_alert,
    run_payload,
    run_phase_set,
)
from services.registry.retraining import RetrainData, retrainer_get
from services.registry.versions import staging_root, version_get, version_promote
from services.vectors import encode  # through the module, so a test's stand-in encoder is the one used here

logger = logging.getLogger(__name__)
ACTOR = "pipeline:retrain"
PROGRESS_EVERY_S = 0.5  # training steps are written to the run row (and pushed live) at most this often


def _finish(run: RetrainRun, *, status: str, reason: str, **fields: Any) -> RetrainRun:
    for name, value in fields.items():
        setattr(run, name, value)
    run.status, run.reason, run.finished_at, run.phase = status, reason, timezone.now(), "done"
    run.save()
    ops_push(event="run_progress", payload=run_payload(run))
    return run


def staging_prefix(run_pk: int, task: str) -> str:
    """The staged artifact folder of a run is named after it, so the run that finds it abandoned can remove it."""
    return f"retrain-{task}-run{run_pk}-"


def retrain_run(*, task: str, force: bool = False) -> RetrainRun:
    """Retrain `task` from its base data plus its feedback, when enough is new (or forced).

    1. Claim the task's lock (RetrainBusy when a live run holds it); runs a dead holder left "running" are closed
       as failed, with an alert, and their staged files removed.
    2. Count feedback newer than the last completed run; measure label and embedding drift of the new data.
    3. Too few new examples and not forced: a skipped run with the reason.
    4. Train a new version on base data + all feedback (progress on the run row); it is registered as challenger.
    5. Evaluate it and the champion on the task's fixed held-back set; gate on those numbers; promote or keep it
       as challenger with the gate's reason. A promotion is served at once by this process (and within seconds by
       every other), then the plug-in's `promoted` hook runs here, not in a request (e.g. a catalogue re-embedded).
    6. When the lock's heartbeat cannot keep the lock (renewals failing until it lapses, or taken over), the run
       stops at its next training step or phase: failed, "the retraining lock was lost", nothing registered.
    """
    task_row = retrain_task_get(name=task)
    with lock_held(task=task_row) as lease:
        _abandoned_close(task_row)
        run = RetrainRun.objects.create(task=task_row, forced=force, phase="collecting")
        ops_push(event="run_progress", payload=run_payload(run))
        try:
            return _run_body(run=run, task_row=task_row, force=force, lease=lease)
        except Exception as exc:
            _finish(run, status=RetrainRun.FAILED, reason=f"failed: {exc}")
            run_failed_alert(run)
            raise


def _abandoned_close(task_row: Task) -> None:
    """Close the runs a crashed holder left running (we hold the lock now, so none of them is alive)."""
    abandoned = list(task_row.retrain_runs.filter(status=RetrainRun.RUNNING).values_list("pk", flat=True))
    task_row.retrain_runs.filter(pk__in=abandoned).update(
        status=RetrainRun.FAILED, finished_at=timezone.now(), reason="abandoned: its worker stopped before finishing")
    for dead in RetrainRun.objects.filter(pk__in=abandoned).select_related("task"):
        run_failed_alert(dead)
        for left in staging_root().glob(staging_prefix(dead.pk, task_row.name) + "*"):
            shutil.rmtree(left, ignore_errors=True)


def _drift(*, task_row: Task, new_labels: list[str], data: RetrainData, since: Any) -> dict[str, Any]:
    """Label drift of the new feedback, embedding drift of what the model saw since the last run (never fails a run)."""
    drift = label_drift(new=new_labels, train=data.train_labels)
    try:
        drift["embedding"] = texts_drift(new=incoming_texts(task=task_row.name, since=since),
                                         reference=data.reference_texts,
                                         embed=lambda texts: encode.texts_embed_for(task=task_row.name, texts=texts),
                                         encoder=_encoder_label(encode.encoder_tag_for(task=task_row.name).name))
    except SoftTimeLimitExceeded:  # the task's time limit: the run stops, it is not a drift problem
        raise
    except Exception as exc:  # noqa: BLE001 - drift is information; a run must not fail for it
        logger.warning("embedding drift of %s not measured: %s", task_row.name, exc)
        drift["embedding"] = {"note": f"not measured: {exc}"}
    return drift


def _run_body(*, run: RetrainRun, task_row: Task, force: bool, lease: LockLease) -> RetrainRun:
    plugin = retrainer_get(task_row.name)
    if plugin.data_files and (not task_row.retrain_data or not task_row.retrain_eval):
        return _finish(run, status=RetrainRun.SKIPPED,
                       reason=f"task {task_row.name!r} has no base data or held-back set configured "
                              f"(retrain --task {task_row.name} --base-data FILE --held-back FILE)")
    until = timezone.now()
    feedback = [e for e in feedback_collect(task=task_row.name) if e.created_at <= until]
    since = feedback_since(task=task_row)
    new = [e for e in feedback if since is None or e.created_at > since]
    data = plugin.data(task_row=task_row, feedback=feedback, until=until)
    run.n_new_examples, run.examples_until = len(new), until
    run.n_skipped_rows, run.skipped_rows = len(data.skipped), data.skipped[:RetrainRun.SKIPPED_ROWS_KEPT]
    if data.skipped:
        logger.warning("retrain %s: %d rows of its files skipped, first: %s", task_row.name, len(data.skipped),
                       data.skipped[0])
    run.drift = _drift(task_row=task_row, new_labels=[e.label for e in new], data=data, since=since)
    RetrainRun.objects.filter(pk=run.pk).update(n_new_examples=run.n_new_examples, examples_until=until,
                                                drift=run.drift, n_skipped_rows=run.n_skipped_rows,
                                                skipped_rows=run.skipped_rows)
    minimum = min_examples_for(task_row)
    if len(new) < minimum and not force:
        return _finish(run, status=RetrainRun.SKIPPED,
                       reason=f"too few new examples: {len(new)} < {minimum} (the task's minimum); "
                              "use --force to train anyway")

    with tempfile.TemporaryDirectory(prefix=f"retrain-{task_row.name}-") as folder:
        path, run.n_examples, overrides = data.train_file(folder=Path(folder))
        RetrainRun.objects.filter(pk=run.pk).update(n_examples=run.n_examples)
        lease.check()
        run_phase_set(run, phase="training")
        summary = adapter_train(
            TrainRequest(task=task_row.name, data=str(path), epochs=settings.RETRAIN_EPOCHS or None, created_by=ACTOR,
                         staging_prefix=staging_prefix(run.pk, task_row.name), champion_if_first=not plugin.baseline_gate,
                         **overrides),
            progress=False, on_step=_step_reporter(run, lease), on_registering=lambda: _registering(run, lease),
            on_staged=getattr(data, "artifact_extend", None))
    version = version_get(task_name=task_row.name, version=summary["version"])
    run.version = version
    RetrainRun.objects.filter(pk=run.pk).update(version=version)
    lease.check()  # lost while registering: the version stays a challenger, never promoted by this run
    run_phase_set(run, phase="evaluating")
    run.metrics = data.evaluate(version=version)
    refusal = plugin.baseline_refusal(run.metrics) if plugin.baseline_gate else ""
    if refusal:  # worse than going without the task's model: it stays challenger, whatever the champion
        return _finish(run, status=RetrainRun.REJECTED, promoted=False, reason=f"baseline gate: {refusal}")
    try:
        champion = version_get(task_name=task_row.name)
    except NotFound:  # a baseline-gated task's first version (registered as challenger only) that passed: the gate
        champion = None  # below promotes it ("no champion yet"), as any promotion, lease and phase included
    if champion is not None and champion.pk == version.pk:  # the task's first version: nothing to beat
        _served(task_row)
        return _finish(run, status=RetrainRun.PROMOTED, promoted=True, reason="first version of the task")
    run.champion_metrics = data.evaluate(version=champion) if champion is not None else {}
    lease.check()
    run_phase_set(run, phase="gating")
    outcome = version_promote(task_name=task_row.name, version=version.version, actor=ACTOR,
                              reason=f"retrain run {run.pk} on the held-back set",
                              judged_on=(run.metrics, run.champion_metrics),
                              also=plugin.gates_also)
    if outcome.promoted:
        _served(task_row)
    status = RetrainRun.PROMOTED if outcome.promoted else RetrainRun.REJECTED
    return _finish(run, status=status, promoted=outcome.promoted, reason=outcome.reason)


def _registering(run: RetrainRun, lease: LockLease) -> None:
    """on_registering for the trainer: a run that lost its lock stops before anything is staged or registered."""
    lease.check()
    run_phase_set(run, phase="registering")


def _step_reporter(run: RetrainRun, lease: LockLease) -> Any:
    """on_step for the trainer: stop when the lock was lost; the first and last step, and one every PROGRESS_EVERY_S
    between, go to the run row."""
    last = [0.0]

    def report(step: int, total: int) -> None:
        lease.check()
        now = time.monotonic()
        if step == 1 or step == total or now - last[0] >= PROGRESS_EVERY_S:
            last[0] = now
            run_phase_set(run, phase="training", step=step, total=total)

    return report


def _served(task_row: Task) -> None:
    """This process serves the new champion from its next call; then the task's plug-in does what follows."""
    from services.registry.serving import serving_refresh

    serving_refresh(task=task_row.name)
    retrainer_get(task_row.name).promoted(task_row=task_row)



def _encoder_label(tag_name: str) -> str:
    """How a run's drift names the encoder, as runs always have: "<task> v<N>" (champion) or "base"."""
    if tag_name.startswith("base:"):
        return "base"
    return tag_name.replace(":v", " v")
