"""A knowledge base's vectors are shared through the database: every process searches them, none builds them in a request."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from apps.support.models import FaqEntry, KnowledgeBase
from apps.vectors.models import Embedding, VectorSpace
from services.support.answering import question_answer
from services.support.documents import FaqRow
from services.support.knowledge import faq_add, faq_upsert, item_id, kb_index_state, kb_space, kb_touch
from services.support.retrieval import kb_search, searches_reset
from services.vectors import (EncoderTag, encode, encoder_switch_check, space_reembed, space_view, store,
                              views_forget)
from tests.apps.support.conftest import BOW_DIM, bow_vectors
from tests.conftest import ROOT
from tests.helpers import database_url, run_json, wait_until


def fresh_process() -> None:
    """Forget every cache this process holds (its lexical indexes and its copies of the vectors): a second process."""
    searches_reset()
    views_forget()


@pytest.fixture
def embedded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text the (bag-of-words) encoder embeds from now on, in order."""
    seen: list[str] = []

    def tagged(*, tag, texts, progress=None) -> np.ndarray:  # noqa: ANN001, ARG001
        seen.extend(texts)
        return bow_vectors(texts=list(texts))

    monkeypatch.setattr(encode, "texts_embed_tagged", tagged)
    return seen


@pytest.mark.django_db
def test_an_entry_edited_in_one_process_answers_in_a_fresh_one(fixture_kb) -> None:  # noqa: ANN001
    kb = KnowledgeBase.objects.get(name="default")
    assert question_answer(kb=kb, text="Can I pay with bitcoin?").handoff  # warms this process's caches
    faq_add(kb=kb, question="Can I pay with bitcoin?", answer="We take cards and PayPal, not bitcoin.", title="Payment")
    fresh_process()
    answer = question_answer(kb=kb, text="Can I pay with bitcoin?")
    assert not answer.handoff and answer.reply == "We take cards and PayPal, not bitcoin."
    assert answer.hits[0].dense > 0.99  # answered from the shared vector, not by its words alone


@pytest.mark.django_db
def test_a_search_embeds_the_query_and_never_the_corpus(fixture_kb, embedded: list[str]) -> None:  # noqa: ANN001
    kb = KnowledgeBase.objects.get(name="default")
    fresh_process()  # a cold process: its first search loads the vectors from the database
    questions = ["How do I reset my password?", "How long does the XR-200 battery last?", "refund policy"]
    for question in questions:
        question_answer(kb=kb, text=question)
    # An entry written without its vector (the worker has not run yet) is not embedded by a request either.
    faq_upsert(kb=kb, row=FaqRow(question="Is there a student discount?", answer="Yes, 10 % with a student card.",
                                 intent="", url="", title="Student discount"), source="test")
    kb_touch(kb)
    question_answer(kb=kb, text="student discount")
    assert embedded == [*questions, "student discount"]


@pytest.mark.django_db
def test_entries_without_a_vector_yet_are_found_by_their_words(fixture_kb) -> None:  # noqa: ANN001
    kb = KnowledgeBase.objects.get(name="default")
    _, entry = faq_upsert(kb=kb, row=FaqRow(question="Do you offer gift wrapping for orders?",
                                            answer="Gift wrapping costs 3 euros per parcel.", intent="", url="",
                                            title="Gift wrapping"), source="test")
    kb_touch(kb)  # rows written, vectors not requested: what a web host sees while the worker is busy
    view = space_view(space=kb_space(kb))
    assert view.missing == 1 and item_id(entry) not in view.keys
    hit = kb_search(kb=kb).search(text="gift wrapping for my order", k=3)[0]
    assert hit.item.id == item_id(entry) and hit.dense == 0.0 and hit.lexical > 0
    state, message = kb_index_state(KnowledgeBase.objects.get(pk=kb.pk))
    assert state == "ready" and "1 waiting for vectors" in message


@pytest.mark.django_db(transaction=True)
def test_an_entry_added_by_another_process_is_searched_here_within_seconds(tiny_kb, settings) -> None:  # noqa: ANN001
    kb = KnowledgeBase.objects.get(name="default")
    search = kb_search(kb=kb)
    before = space_view(space=kb_space(kb)).revision
    assert all(hit.lexical == 0 for hit in search.search(text="zeppelin delivery", k=3))  # nothing about it yet
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DATABASE_URL": database_url(),
           "SUITE_REGISTRY_DIR": str(settings.REGISTRY_DIR), "SUITE_VAR_DIR": str(Path(settings.VAR_DIR) / "other-host"),
           "SUITE_VECTORS_EMBED": "process", "SUPPORT_EMBED_TASK": ""}
    code = ("from apps.support.models import KnowledgeBase; from services.support.knowledge import faq_add; "
            "faq_add(kb=KnowledgeBase.objects.get(name='default'), question='Do you deliver by zeppelin?', "
            "answer='Only on Sundays.', title='Zeppelin delivery')")
    subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, check=True, timeout=300,
                   capture_output=True)
    added = FaqEntry.objects.get(title="Zeppelin delivery")

    def answered_here() -> bool:
        hits = kb_search(kb=kb).search(text="Do you deliver by zeppelin?", k=1)
        return bool(hits) and hits[0].item.id == item_id(added) and hits[0].dense > 0.99  # its own vector, synced from the database

    wait_until(answered_here, timeout=30, interval=0.2, message="this process never searched the other's new entry")
    assert space_view(space=kb_space(kb)).revision > before


@pytest.mark.django_db
def test_deleting_a_knowledge_base_drops_its_vectors(fixture_kb) -> None:  # noqa: ANN001
    kb = KnowledgeBase.objects.get(name="default")
    space = VectorSpace.objects.get(name=kb_space(kb))
    assert Embedding.objects.filter(space=space).exists()
    kb.delete()
    assert not VectorSpace.objects.filter(pk=space.pk).exists() and not Embedding.objects.filter(space_id=space.pk).exists()


@pytest.mark.django_db
def test_a_new_champion_of_the_embed_task_is_switched_to_only_once_the_kb_is_re_embedded(
        tiny_encoder, kb_files, settings, monkeypatch) -> None:  # noqa: ANN001
    champion = {"tag": EncoderTag(name="support-pairs:v1", sha256="1" * 64, dim=BOW_DIM)}
    used: list[tuple[str, str]] = []  # (encoder, text) of every embedding

    def tagged(*, tag, texts, progress=None) -> np.ndarray:  # noqa: ANN001, ARG001
        used.extend((tag.name, text) for text in texts)
        return bow_vectors(texts=list(texts))

    monkeypatch.setattr(encode, "encoder_tag_for", lambda *, task: champion["tag"])
    monkeypatch.setattr(encode, "texts_embed_tagged", tagged)
    monkeypatch.setattr(store, "_send", lambda task, **kwargs: None)  # the worker's part is run below, by hand
    settings.SUPPORT_EMBED_TASK = "support-pairs"
    run_json("support_import", faq=str(kb_files["faq"]), docs=str(kb_files["docs"]), no_progress=True)
    kb = KnowledgeBase.objects.get(name="default")
    assert VectorSpace.objects.get(name=kb_space(kb)).task == "support-pairs"

    settings.SUITE_VECTORS_EMBED = "worker"
    champion["tag"] = EncoderTag(name="support-pairs:v2", sha256="2" * 64, dim=BOW_DIM)  # promoted
    assert encoder_switch_check(task="support-pairs") == [kb_space(kb)]
    used.clear()
    answer = question_answer(kb=kb, text="What is your refund policy?")
    assert answer.reply.startswith("Refunds are paid") and used == [("support-pairs:v1", "What is your refund policy?")]
    state, message = kb_index_state(KnowledgeBase.objects.get(pk=kb.pk))
    assert state == "ready" and "re-embedding for support-pairs:v2 (0%)" in message  # the old vectors still answer

    assert space_reembed(space=kb_space(kb))["switched"]  # what the inference worker runs
    used.clear()
    answer = question_answer(kb=kb, text="What is your refund policy?")
    assert answer.reply.startswith("Refunds are paid") and used == [("support-pairs:v2", "What is your refund policy?")]
    assert space_view(space=kb_space(kb)).tag.name == "support-pairs:v2"
    assert kb_index_state(KnowledgeBase.objects.get(pk=kb.pk)) == ("ready", "8 items, flat")


@pytest.mark.django_db
def test_the_beat_repair_embeds_what_a_killed_host_left_without_vectors_and_leaves_a_rebuilding_kb_alone(
        fixture_kb, kb_files) -> None:  # noqa: ANN001
    from django_celery_beat.models import PeriodicTask

    from apps.support.tasks import vectors_repair
    from services.support.knowledge import kb_ensure, kb_lease_claim

    kb = KnowledgeBase.objects.get(name="default")
    _, entry = faq_upsert(kb=kb, row=FaqRow(question="Can I collect my order in a shop?", answer="Yes, in every shop.",
                                            intent="", url="", title="Collect in a shop"), source="test")
    kb_touch(kb)  # rows written; the host died before asking for their vectors
    other = kb_ensure(name="brand-b")
    run_json("support_import", faq=str(kb_files["faq"]), kb="brand-b", no_progress=True)
    gone = FaqEntry.objects.filter(kb=other).first()
    FaqEntry.objects.filter(pk=gone.pk).delete()  # deleted behind the store's back...
    assert kb_lease_claim(kb=other, owner="a-live-rebuild")  # ...while a rebuild holds brand-b: left to that rebuild

    assert vectors_repair.apply().get() == {"kbs": 1, "embedded": 1}
    assert item_id(entry) in space_view(space=kb_space(kb)).keys and space_view(space=kb_space(kb)).missing == 0
    assert item_id(gone) in space_view(space=kb_space(other)).keys
    schedule = PeriodicTask.objects.get(name="support vectors repair")  # made by migrate (post_migrate)
    assert schedule.task == "support.vectors_repair" and schedule.interval.every == 900


@pytest.mark.django_db(transaction=True)
def test_a_console_entry_is_embedded_by_the_worker_and_answered_by_its_words_until_then(
        tiny_kb, celery_worker_process, settings) -> None:  # noqa: ANN001
    kb = KnowledgeBase.objects.get(name="default")
    settings.SUITE_VECTORS_EMBED = "worker"  # production's path: the web process only asks
    entry = faq_add(kb=kb, question="Do you deliver by zeppelin?", answer="Only on Sundays.", title="Zeppelin delivery")

    def hit_of_entry() -> object:  # (the tiny random BERT ranks by nothing meaningful: find the entry among the hits)
        return next(hit for hit in kb_search(kb=kb).search(text="Do you deliver by zeppelin?", k=10) if hit.item.id == item_id(entry))

    first = hit_of_entry()
    assert first.lexical == 1.0 and (first.dense == 0.0 or item_id(entry) in space_view(space=kb_space(kb)).keys)  # at once, by its words

    def by_meaning() -> bool:
        return hit_of_entry().dense > 0.99  # its own vector, written by the worker, synced here

    wait_until(by_meaning, timeout=60, interval=0.2, message="the worker's vector never reached this process")
    assert item_id(entry) in space_view(space=kb_space(kb)).keys


@pytest.mark.django_db
def test_an_admin_edit_or_deletion_of_a_faq_entry_reaches_the_answers_and_the_vectors(fixture_kb, client,
                                                                                      role_users) -> None:  # noqa: ANN001
    kb = KnowledgeBase.objects.get(name="default")
    client.force_login(role_users["admin"])
    refund = FaqEntry.objects.get(intent="refund")
    form = {"kb": kb.pk, "question": "How do refunds for returned parcels work?", "answer": "Refunds take 14 days.",
            "intent": "refund", "url": refund.url, "title": "Refunds", "source": refund.source}
    assert client.post(f"/admin/support/faqentry/{refund.pk}/change/", form).status_code == 302
    answer = question_answer(kb=kb, text="How do refunds for returned parcels work?")
    assert answer.reply == "Refunds take 14 days." and answer.hits[0].dense > 0.99  # re-embedded from the new question

    shipping = FaqEntry.objects.get(intent="shipping")
    assert client.post(f"/admin/support/faqentry/{shipping.pk}/delete/", {"post": "yes"}).status_code == 302
    assert item_id(shipping) not in space_view(space=kb_space(kb)).keys
    assert all(hit.item.id != item_id(shipping) for hit in kb_search(kb=kb).search(text="Do you ship abroad?", k=10))


@pytest.mark.django_db
def test_an_old_copy_of_the_kb_row_neither_hides_an_edit_nor_rebuilds_the_lexical_index_on_every_search(fixture_kb) -> None:  # noqa: ANN001
    old = KnowledgeBase.objects.get(name="default")
    faq_add(kb=KnowledgeBase.objects.get(name="default"), question="Can I pay with bitcoin?", answer="No.", title="Payment")
    first = kb_search(kb=old)  # `old` still holds the revision before the edit
    assert any(item.title == "Payment" for item in first.items.values())
    assert kb_search(kb=old) is first


@pytest.mark.django_db
def test_setting_support_embed_task_on_a_running_desk_switches_its_kbs_at_the_next_encoder_check(
        tiny_encoder, kb_files, settings, monkeypatch) -> None:  # noqa: ANN001
    base = EncoderTag(name="bag-of-words-test", sha256="0" * 64, dim=BOW_DIM)
    pairs = EncoderTag(name="support-pairs:v3", sha256="3" * 64, dim=BOW_DIM)
    monkeypatch.setattr(encode, "encoder_tag_for", lambda *, task: pairs if task == "support-pairs" else base)
    monkeypatch.setattr(encode, "texts_embed_tagged", lambda *, tag, texts, progress=None: bow_vectors(texts=list(texts)))
    run_json("support_import", faq=str(kb_files["faq"]), docs=str(kb_files["docs"]), no_progress=True)
    kb = KnowledgeBase.objects.get(name="default")
    assert space_view(space=kb_space(kb)).tag == base

    settings.SUPPORT_EMBED_TASK = "support-pairs"  # an operator's change, then the beat's check (in process here)
    assert encoder_switch_check() == [kb_space(kb)]
    assert space_view(space=kb_space(kb)).tag == pairs and VectorSpace.objects.get(name=kb_space(kb)).task == "support-pairs"
    assert question_answer(kb=kb, text="What is your refund policy?").reply.startswith("Refunds are paid")
