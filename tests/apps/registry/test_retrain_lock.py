"""A retraining run whose lock's heartbeat fails: transient errors are retried, a lost lock stops the run."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from django.db import OperationalError

import pipelines.retrain as retrain_pipeline
import services.registry.retrain as retrain_service
from apps.registry.models import AdapterVersion, RetrainRun, Task
from services.registry.retrain import RetrainLockLost
from services.registry.versions import staging_root
from tests.apps.registry.test_retrain import relabels_add, rows, sentiment_setup  # noqa: F401 - the fixture

WAIT_S = 60  # bound of the waits below (a failing test stops here rather than hanging)


def first_step_waits_for(monkeypatch: pytest.MonkeyPatch, what: Any) -> None:
    """The run's first training step blocks until `what(lease)` is set, so the heartbeat acts mid-training."""
    original = retrain_pipeline._step_reporter

    def reporter(run: RetrainRun, lease: retrain_service.LockLease) -> Any:
        report = original(run, lease)

        def step(n: int, total: int) -> None:
            if n == 1:
                what(lease).wait(timeout=WAIT_S)
            report(n, total)

        return step

    monkeypatch.setattr(retrain_pipeline, "_step_reporter", reporter)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("failure", ["db_error", "taken_over"])
def test_a_holder_that_cannot_renew_its_lock_stops_its_own_run_and_registers_nothing(
        sentiment_setup: dict[str, Path], settings, monkeypatch: pytest.MonkeyPatch, failure: str) -> None:  # noqa: F811
    from pipelines.retrain import retrain_run
    from tests.helpers import run_json

    run_json("retrain", task="sentiment", base_data=str(sentiment_setup["base"]), held_back=str(sentiment_setup["held_back"]))
    relabels_add(*rows(30, seed=4))
    settings.RETRAIN_LOCK_TTL_S = 5

    def heartbeat(*, task: Task, owner: str) -> bool:
        if failure == "db_error":
            raise OperationalError("database is locked")
        return False  # the row no longer names us: another run took the lock over

    monkeypatch.setattr(retrain_service, "lock_heartbeat", heartbeat)
    first_step_waits_for(monkeypatch, lambda lease: lease.lost)

    with pytest.raises(RetrainLockLost, match="lock was lost"):
        retrain_run(task="sentiment")
    run = RetrainRun.objects.get(task__name="sentiment", status=RetrainRun.FAILED)
    assert "the retraining lock was lost" in run.reason
    assert ("lapsed" in run.reason) and (("database is locked" in run.reason) == (failure == "db_error")), run.reason
    assert run.version_id is None and "step" not in run.progress  # stopped at its first training step
    assert AdapterVersion.objects.filter(task__name="sentiment").count() == 1
    assert not list(staging_root().glob(retrain_pipeline.staging_prefix(run.pk, "sentiment") + "*"))
    assert Task.objects.get(name="sentiment").retrain_lock_owner == ""


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_survives_transient_db_errors_and_the_run_completes(
        sentiment_setup: dict[str, Path], settings, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    from pipelines.retrain import retrain_run
    from tests.helpers import run_json

    run_json("retrain", task="sentiment", base_data=str(sentiment_setup["base"]), held_back=str(sentiment_setup["held_back"]))
    relabels_add(*rows(30, seed=4))
    settings.RETRAIN_LOCK_TTL_S = 5
    real = retrain_service.lock_heartbeat
    calls: list[str] = []
    renewed_after_errors = threading.Event()

    def heartbeat(*, task: Task, owner: str) -> bool:
        calls.append(owner)
        if len(calls) <= 2:
            raise OperationalError("database is locked")
        result = real(task=task, owner=owner)
        renewed_after_errors.set()
        return result

    monkeypatch.setattr(retrain_service, "lock_heartbeat", heartbeat)
    first_step_waits_for(monkeypatch, lambda lease: renewed_after_errors)

    run = retrain_run(task="sentiment")
    assert renewed_after_errors.is_set() and len(calls) >= 3
    assert run.status in (RetrainRun.PROMOTED, RetrainRun.REJECTED) and run.version.version == 2, run.reason
    assert Task.objects.get(name="sentiment").retrain_lock_owner == ""
