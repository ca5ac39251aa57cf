""""Add to knowledge base": the agent writes or confirms the question and title (masked) before customers see them."""
from __future__ import annotations

import pytest

from apps.support.models import FaqEntry, KnowledgeBase, KnowledgeGap

QUESTION = "I am Jo, card 4111.1111.1111.1111, why was I charged twice? call +44 20 7946 0958"
FULL = {"answer": "Double charges are refunded within 3 days.", "question": "Why was I charged twice?",
        "title": "Charged twice", "confirmed": True}


@pytest.fixture
def gap(db) -> KnowledgeGap:  # noqa: ANN001
    kb = KnowledgeBase.objects.create(name="default")
    return KnowledgeGap.objects.create(kb=kb, question=QUESTION, reason="low_confidence")


def _add(client, gap: KnowledgeGap, body: dict):  # noqa: ANN001, ANN202
    return client.post(f"/api/support/console/gaps/{gap.pk}/add", body, content_type="application/json")


def test_the_console_offers_a_masked_question_and_title_to_confirm(client, role_users, gap: KnowledgeGap) -> None:  # noqa: ANN001
    client.force_login(role_users["support_agent"])
    offered = client.get("/api/support/console/gaps").json()[0]
    assert offered["suggested_question"] == "I am Jo, card [card], why was I charged twice? call [phone]"
    assert "4111" not in offered["suggested_title"] and len(offered["suggested_title"]) <= 80


@pytest.mark.parametrize("missing", ["question", "title", "answer", "confirmed"])
def test_a_missing_or_unconfirmed_field_is_a_400_naming_it_and_nothing_is_stored(client, role_users, gap: KnowledgeGap,
                                                                                  missing: str) -> None:
    client.force_login(role_users["support_agent"])
    response = _add(client, gap, {k: v for k, v in FULL.items() if k != missing})
    assert response.status_code == 400 and response.json()["field"] == missing
    blank = _add(client, gap, {**FULL, missing: "   " if missing != "confirmed" else False})
    assert blank.status_code == 400 and blank.json()["field"] == missing
    assert not FaqEntry.objects.exists()
    gap.refresh_from_db()
    assert gap.status == KnowledgeGap.OPEN


def test_confirmed_must_be_true_not_a_truthy_string(client, role_users, gap: KnowledgeGap) -> None:  # noqa: ANN001
    client.force_login(role_users["support_agent"])
    assert _add(client, gap, {**FULL, "confirmed": "yes"}).json()["field"] == "confirmed"


def test_what_is_stored_is_masked_even_when_the_agent_left_personal_data_in(db, fixture_kb, client, role_users) -> None:  # noqa: ANN001
    kb = KnowledgeBase.objects.get(name="default")
    gap = KnowledgeGap.objects.create(kb=kb, question=QUESTION, reason="low_confidence")
    client.force_login(role_users["support_agent"])
    body = {**FULL, "question": "Charged twice on DE89 3704 0044 0532 0130 00?", "title": "Jo (jo@example.com) was charged twice",
            "answer": "Call us on +44 20 7946 0958."}
    assert _add(client, gap, body).status_code == 201
    entry = FaqEntry.objects.get(source="console")
    assert (entry.question, entry.title, entry.answer) == ("Charged twice on [iban]?", "Jo ([email]) was charged twice",
                                                           "Call us on [phone].")
