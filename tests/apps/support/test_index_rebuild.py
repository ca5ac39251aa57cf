"""The full rebuild (re-embedding a KB's shared vectors): in process, on a real Celery worker with progress, one at a time."""
from __future__ import annotations

import pytest
from django.core.management.base import CommandError

from apps.support.models import FaqEntry, KnowledgeBase, Passage
from apps.vectors.models import Embedding, VectorSpace
from services.support.knowledge import item_id, kb_space
from tests.helpers import run_json, wait_until


def stored_keys(kb: KnowledgeBase) -> set[int]:
    space = VectorSpace.objects.get(name=kb_space(kb))
    return set(Embedding.objects.filter(space=space, encoder=space.encoder, vector__isnull=False).values_list("key", flat=True))


def all_items() -> set[int]:
    return {item_id(row) for row in [*FaqEntry.objects.all(), *Passage.objects.all()]}


@pytest.mark.django_db
def test_a_rebuild_indexes_every_item_and_refuses_to_run_twice_at_once(tiny_kb) -> None:  # noqa: ANN001
    result = run_json("support_index_rebuild", kb="default")
    assert result["items"] == 4 + 4 and result["kind"] == "flat" and result["encoder"] == "base:tiny-bert"  # services.vectors names: base:<name> or <task>:v<N>
    kb = KnowledgeBase.objects.get(name="default")
    assert kb.index_state == "ready" and kb.index_progress == 1.0 and stored_keys(kb) == all_items()
    KnowledgeBase.objects.filter(pk=kb.pk).update(index_state="building")
    with pytest.raises(CommandError, match="already being rebuilt"):
        run_json("support_index_rebuild", kb="default")


@pytest.mark.django_db(transaction=True)
def test_the_rebuild_runs_as_a_celery_task_with_progress(tiny_kb, celery_worker_process) -> None:  # noqa: ANN001
    from apps.support.tasks import index_rebuild

    kb = KnowledgeBase.objects.get(name="default")
    Embedding.objects.filter(space__name=kb_space(kb)).delete()  # behind the store's back: only the rebuild brings them back
    gone = Passage.objects.filter(location="section Warranty").first()
    Passage.objects.filter(pk=gone.pk).delete()  # a row deleted without telling the store: its vector must go
    result = index_rebuild.delay("default").get(timeout=180)
    assert result["items"] == 7 and result["encoder"] == "base:tiny-bert"
    wait_until(lambda: KnowledgeBase.objects.get(pk=kb.pk).index_state == "ready", timeout=30,
               message="the knowledge base never became ready")
    assert KnowledgeBase.objects.get(pk=kb.pk).index_progress == 1.0
    assert stored_keys(kb) == all_items() and item_id(gone) not in stored_keys(kb)


@pytest.mark.django_db(transaction=True)
def test_an_agent_starts_a_rebuild_from_the_console_and_follows_its_progress(tiny_kb, celery_worker_process, client,
                                                                            role_users) -> None:  # noqa: ANN001
    client.force_login(role_users["support_agent"])
    kbs = client.get("/api/support/console/kbs").json()
    # The import built the index, so the console shows it ready (not "empty") before any rebuild.
    assert kbs == [{"name": "default", "state": "ready", "progress": 1.0, "message": "8 items, flat", "faqs": 4,
                    "passages": 4}]
    response = client.post("/api/support/console/kbs/default/rebuild")
    assert response.status_code == 202 and response.json()["task_id"]
    from config.celery import app

    assert app.AsyncResult(response.json()["task_id"]).get(timeout=120)["items"] == 8
    assert client.get("/api/support/console/kbs").json()[0] == {
        "name": "default", "state": "ready", "progress": 1.0, "message": "8 items, flat", "faqs": 4, "passages": 4}
    assert client.post("/api/support/console/kbs/nosuch/rebuild").status_code == 404
