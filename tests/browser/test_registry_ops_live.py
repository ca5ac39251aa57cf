"""The Model operations page in chromium: run progress, a failed run's alert and a new champion arrive without a reload."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.apps.registry.test_retrain import csv_write, rows
from tests.helpers import run_json
from tests.browser.conftest import SCREENSHOTS, login
from tests.services.conftest import tiny_base_write

pytestmark = pytest.mark.browser


def in_thread(fn, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN001, ANN401
    """Run `fn` outside Playwright's event-loop thread (the ORM refuses to run in it), closing that thread's DB connection."""
    from django.db import connection

    def call() -> Any:  # noqa: ANN401
        try:
            return fn(*args, **kwargs)
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(call).result(timeout=60)


def run_start() -> int:
    from apps.registry.models import RetrainRun, Task
    from services.registry.retrain import run_phase_set

    run = RetrainRun.objects.create(task=Task.objects.get(name="sentiment"), forced=True)
    run_phase_set(run, phase="training", step=3, total=10)
    return run.pk


def run_fail(run_id: int) -> int:
    from django.utils import timezone

    from apps.registry.models import RetrainRun
    from services.registry.retrain import run_failed_alert

    run = RetrainRun.objects.select_related("task").get(pk=run_id)
    run.status, run.reason, run.finished_at = RetrainRun.FAILED, "failed: CUDA out of memory", timezone.now()
    run.save()
    return run_failed_alert(run).pk


def champion_promote() -> None:
    from services.registry.versions import version_promote

    assert version_promote(task_name="sentiment", version=2, actor="test", force=True, reason="browser test").promoted


def test_the_operations_page_shows_progress_a_failed_runs_alert_and_a_new_champion_live(
        asgi_server: str, browser_page, role_users, settings, tmp_path: Path) -> None:  # noqa: ANN001
    from services.registry.retrain import retrain_schedules_ensure

    settings.REGISTRY_DIR = tmp_path / "registry"
    run_json("registry_add_base", name="tiny-bert", path=str(tiny_base_write(tmp_path / "tiny-base")), default=True)
    data = csv_write(tmp_path / "train.csv", *rows(40, seed=1))
    assert run_json("train_adapter", task="sentiment", data=str(data), epochs=1)["version"] == 1
    assert run_json("train_adapter", task="sentiment", data=str(data), epochs=1)["version"] == 2
    retrain_schedules_ensure()

    page = browser_page
    login(page, asgi_server, "boss", "pw-boss")
    page.goto(asgi_server + "/registry/operations/")
    page.wait_for_selector("#ops-live[data-state=live]")
    page.evaluate("window.__sameDocument = true")  # gone if anything below reloads the page
    task = "section.task[data-task=sentiment]"
    assert page.inner_text(f"{task} .champion") == "v1"
    assert page.locator(f"{task} tr.run").count() == 0

    # (a) a run starts and reports its training steps
    run_id = in_thread(run_start)
    row = f"{task} tr.run[data-run='{run_id}']"
    page.wait_for_selector(f"{row}[data-status=running]")
    assert page.inner_text(f"{row} .phase") == "training 3/10 steps"
    assert page.get_attribute(f"{row} progress", "value") == "3" and page.get_attribute(f"{row} progress", "max") == "10"
    assert page.is_visible(f"{task} .current-run") and "training 3/10 steps" in page.inner_text(f"{task} .current-run")
    page.screenshot(path=str(SCREENSHOTS / "operations-running.png"), full_page=True)

    # (b) it fails: the stored alert is pushed and shown on top, and the run's row says failed
    alert_id = in_thread(run_fail, run_id)
    page.wait_for_selector(f"#alerts-open [data-alert='{alert_id}']")
    assert "CUDA out of memory" in page.inner_text(f"#alerts-open [data-alert='{alert_id}']")
    assert page.locator("#alerts-open .none").count() == 0
    page.wait_for_selector(f"{row}[data-status=failed]")
    assert page.inner_text(f"{row} .phase") == "in training" and not page.is_visible(f"{task} .current-run")

    # (c) an operator promotes v2: the champion and its history change
    in_thread(champion_promote)
    page.wait_for_selector(f"{task} .champion[data-champion='2']")
    assert page.inner_text(f"{task} .champion") == "v2"
    newest = page.inner_text(f"{task} table.champion-history tbody tr:first-child")
    assert "promote" in newest and "v1 → v2" in newest and "test" in newest
    assert page.evaluate("window.__sameDocument") is True
    page.screenshot(path=str(SCREENSHOTS / "operations.png"), full_page=True)

    # Acknowledging the alert (a form post) files it under "Acknowledged".
    page.fill(f"#alerts-open [data-alert='{alert_id}'] input[name=comment]", "smaller batch")
    page.click(f"#alerts-open [data-alert='{alert_id}'] button")
    page.wait_for_selector(f"#alerts-acknowledged [data-alert='{alert_id}']", state="attached")
    assert page.locator(f"#alerts-open [data-alert='{alert_id}']").count() == 0
    filed = page.text_content(f"#alerts-acknowledged [data-alert='{alert_id}']")  # inside a closed <details>
    assert "acknowledged by boss at" in filed and filed.strip().endswith(": smaller batch")
