"""The full index rebuild: in process, on a real Celery worker with progress, and one rebuild at a time."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.core.management.base import CommandError

from apps.support.models import KnowledgeBase
from services.support.knowledge import encoder_tag
from services.vectors import DenseIndex
from tests.conftest import ROOT
from tests.helpers import run_json, wait_until


@pytest.mark.django_db
def test_a_rebuild_indexes_every_item_and_refuses_to_run_twice_at_once(tiny_kb) -> None:  # noqa: ANN001
    result = run_json("support_index_rebuild", kb="default")
    assert result["items"] == 4 + 4 and result["kind"] == "flat" and result["encoder"] == "base:tiny-bert"  # services.vectors names: base:<name> or <task>:v<N>
    kb = KnowledgeBase.objects.get(name="default")
    assert kb.index_state == "ready" and kb.index_progress == 1.0
    KnowledgeBase.objects.filter(pk=kb.pk).update(index_state="building")
    with pytest.raises(CommandError, match="already being rebuilt"):
        run_json("support_index_rebuild", kb="default")


@pytest.mark.django_db(transaction=True)
def test_the_rebuild_runs_as_a_celery_task_with_progress(tiny_kb, celery_worker_process) -> None:  # noqa: ANN001
    from apps.support.tasks import index_rebuild

    kb = KnowledgeBase.objects.get(name="default")
    worker_folder = Path(os.environ.get("SUITE_VAR_DIR", ROOT / "var")) / "support" / "default"  # the worker's VAR_DIR
    shutil.rmtree(worker_folder, ignore_errors=True)
    result = index_rebuild.delay("default").get(timeout=180)
    assert result["items"] == 8
    wait_until(lambda: KnowledgeBase.objects.get(pk=kb.pk).index_state == "ready", timeout=30,
               message="the knowledge base never became ready")
    assert KnowledgeBase.objects.get(pk=kb.pk).index_progress == 1.0
    assert len(DenseIndex.load(folder=worker_folder, expected=encoder_tag())) == 8
    shutil.rmtree(worker_folder, ignore_errors=True)


@pytest.mark.django_db(transaction=True)
def test_an_agent_starts_a_rebuild_from_the_console_and_follows_its_progress(tiny_kb, celery_worker_process, client,
                                                                            role_users) -> None:  # noqa: ANN001
    worker_folder = Path(os.environ.get("SUITE_VAR_DIR", ROOT / "var")) / "support" / "default"
    client.force_login(role_users["support_agent"])
    kbs = client.get("/api/support/console/kbs").json()
    # The import built the index, so the console shows it ready (not "empty") before any rebuild.
    assert kbs == [{"name": "default", "state": "ready", "progress": 1.0, "message": "8 items, flat", "faqs": 4,
                    "passages": 4}]
    revision = KnowledgeBase.objects.get(name="default").revision
    response = client.post("/api/support/console/kbs/default/rebuild")
    assert response.status_code == 202 and response.json()["task_id"]
    wait_until(lambda: KnowledgeBase.objects.get(name="default").revision > revision
               and client.get("/api/support/console/kbs").json()[0]["state"] == "ready", timeout=120, interval=0.3,
               message="the console never showed the rebuilt knowledge base ready")
    assert client.get("/api/support/console/kbs").json()[0] == {
        "name": "default", "state": "ready", "progress": 1.0, "message": "8 items, flat", "faqs": 4, "passages": 4}
    assert client.post("/api/support/console/kbs/nosuch/rebuild").status_code == 404
    shutil.rmtree(worker_folder, ignore_errors=True)
