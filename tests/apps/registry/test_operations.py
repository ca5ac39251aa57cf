"""The Model operations page (admin): schedules, retrain runs, champion history, drift; failed runs raise an alert."""
from __future__ import annotations

from pathlib import Path

import pytest
from django.utils import timezone

from apps.registry.models import OpsAlert, RetrainRun, Task
from services.registry.versions import task_ensure
from tests.apps.registry.test_retrain import csv_write, rows, run_json


@pytest.mark.django_db(transaction=True)
def test_the_operations_page_is_for_admins_and_lists_runs_and_schedules(client, role_users) -> None:  # noqa: ANN001
    from services.registry.retrain import retrain_schedules_ensure

    retrain_schedules_ensure()
    task = task_ensure(name="sentiment")
    RetrainRun.objects.create(task=task, status=RetrainRun.REJECTED, reason="gate failed: macro_f1 fell", finished_at=timezone.now(),
                              n_new_examples=7, n_examples=97, metrics={"macro_f1": 0.41}, champion_metrics={"macro_f1": 0.77},
                              drift={"label_tvd": 0.375, "new": {"negative": 1.0}, "train": {"negative": 0.5}})
    assert client.get("/registry/operations/").status_code == 302
    assert "/login" in client.get("/registry/operations/")["Location"]
    client.force_login(role_users["support_agent"])
    assert client.get("/registry/operations/").status_code == 403
    client.force_login(role_users["admin"])
    page = client.get("/registry/operations/").content.decode()
    assert "Model operations" in page and 'data-status="rejected"' in page and "gate failed: macro_f1 fell" in page
    assert "7 / 97" in page and "macro_f1=0.41" in page and "macro_f1=0.77" in page and "label TVD 0.375" in page
    assert "retrain sentiment: every 1 hours" in page and "/admin/django_celery_beat/periodictask/" in page
    assert "/registry/operations/" in client.get("/registry/").content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_failed_run_raises_an_alert_shown_on_the_operations_page(client, role_users, tmp_path: Path) -> None:  # noqa: ANN001
    from django.core.management.base import CommandError

    base = csv_write(tmp_path / "base.csv", *rows(30, seed=1))
    task = task_ensure(name="sentiment")
    Task.objects.filter(pk=task.pk).update(retrain_data=str(base), retrain_eval=str(base))
    base.write_bytes(b"")  # the base file is emptied after it was recorded: the run fails
    with pytest.raises(CommandError, match="empty"):
        run_json("retrain", task="sentiment", force=True)
    alert = OpsAlert.objects.get()
    assert alert.task == task and alert.run.status == RetrainRun.FAILED and "retrain of sentiment failed" in alert.message
    client.force_login(role_users["admin"])
    page = client.get("/registry/operations/").content.decode()
    assert f'data-alert="{alert.pk}"' in page and "retrain of sentiment failed" in page


@pytest.mark.django_db(transaction=True)
def test_a_run_abandoned_by_a_crashed_worker_raises_an_alert_too() -> None:
    from pipelines.retrain import retrain_run

    task = task_ensure(name="sentiment")
    abandoned = RetrainRun.objects.create(task=task)
    retrain_run(task="sentiment")  # no data configured: a quick, skipped run that closes the dead one
    alert = OpsAlert.objects.get()
    assert alert.run == abandoned and "abandoned" in alert.message
