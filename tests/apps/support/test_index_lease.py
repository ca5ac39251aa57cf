"""A knowledge-base rebuild holds a lease: a rebuild killed mid-way stops showing "building", and the next one runs."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from apps.support.models import FaqEntry, KnowledgeBase
from services.support.knowledge import kb_ensure, kb_index_state
from tests.conftest import ROOT
from tests.helpers import database_url, run_json, wait_until

LEASE_S = 2  # the killed rebuild's lease (SUPPORT_INDEX_LEASE_S, its minimum)


@pytest.mark.django_db(transaction=True)
def test_a_rebuild_killed_mid_way_lapses_and_the_next_rebuild_takes_over(tiny_encoder: Path, settings, client,
                                                                          role_users) -> None:
    kb = kb_ensure(name="default")
    # Enough items that the embedding lasts seconds, so the kill lands inside it (progress between 0 and 1 proves it).
    FaqEntry.objects.bulk_create([FaqEntry(kb=kb, key=f"{n:064d}", question=f"question number {n} about the router",
                                           answer="an answer", content_hash=f"{n:064d}") for n in range(20000)])
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings",
           "DATABASE_URL": database_url(), "SUITE_REGISTRY_DIR": str(settings.REGISTRY_DIR),
           "SUITE_VAR_DIR": str(settings.VAR_DIR), "SUPPORT_INDEX_LEASE_S": str(LEASE_S)}
    rebuild = subprocess.Popen([sys.executable, "manage.py", "support_index_rebuild", "--kb", "default"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until(lambda: KnowledgeBase.objects.get(pk=kb.pk).index_progress > 0, timeout=180, proc=rebuild, interval=0.02,
                   message="the rebuild never reported progress")
    finally:
        os.killpg(rebuild.pid, signal.SIGKILL)
        rebuild.wait()
    killed = KnowledgeBase.objects.get(pk=kb.pk)
    assert killed.index_state == "building" and 0 < killed.index_progress < 1 and killed.index_lease_owner

    wait_until(lambda: KnowledgeBase.objects.get(pk=kb.pk).index_lease_expires_at < timezone.now(), timeout=30,
               message="the killed rebuild's lease never lapsed")
    state, message = kb_index_state(KnowledgeBase.objects.get(pk=kb.pk))
    assert state == "failed" and "lease lapsed" in message
    client.force_login(role_users["support_agent"])
    listed = client.get("/api/support/console/kbs").json()[0]
    assert listed["state"] == "failed" and "lease lapsed" in listed["message"]

    FaqEntry.objects.filter(kb=kb).exclude(pk__in=list(FaqEntry.objects.filter(kb=kb).values_list("pk", flat=True)[:8])).delete()
    result = run_json("support_index_rebuild", kb="default")
    assert result["items"] == 8
    done = KnowledgeBase.objects.get(pk=kb.pk)
    assert done.index_state == "ready" and done.index_progress == 1.0
    assert done.index_lease_owner == "" and done.index_lease_expires_at is None
    assert kb_index_state(done) == ("ready", "8 items, flat")


@pytest.mark.django_db
def test_a_live_rebuild_that_lost_its_lease_to_another_stops(tiny_kb) -> None:
    from services.errors import SuiteError
    from services.support.knowledge import kb_lease_claim, kb_lease_end, kb_lease_renew

    kb = KnowledgeBase.objects.get(name="default")
    assert kb_lease_claim(kb=kb, owner="first")
    assert not kb_lease_claim(kb=kb, owner="second")  # the first one's lease is live
    KnowledgeBase.objects.filter(pk=kb.pk).update(index_lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert kb_lease_claim(kb=kb, owner="second")  # lapsed: taken over
    with pytest.raises(SuiteError, match="lost its lease"):
        kb_lease_renew(kb=kb, owner="first")
    assert not kb_lease_end(kb=kb, owner="first", state="ready")  # the first one's end changes nothing
    assert KnowledgeBase.objects.get(pk=kb.pk).index_state == "building"
    assert kb_lease_end(kb=kb, owner="second", state="ready")
