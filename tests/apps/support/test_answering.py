"""Answering: hybrid retrieval, citations, confidence threshold, handoff, intent from the registry, the customer API."""
from __future__ import annotations

import csv
import secrets
from pathlib import Path

import pytest

from apps.support.models import Conversation, KnowledgeGap, Message
from services.support.answering import question_answer
from services.support.knowledge import kb_ensure
from tests.helpers import run_json
from tests.services.conftest import sentiment_rows

pytestmark = pytest.mark.django_db


@pytest.fixture
def desk(settings):  # noqa: ANN001, ANN201
    """The shipped threshold; customers not throttled unless a test says so."""
    settings.SUPPORT_CONFIDENCE_THRESHOLD = 0.45
    settings.SUPPORT_CUSTOMER_RATE = "1000/minute"
    return settings


def test_an_faq_question_is_answered_with_its_citation_and_confidence(fixture_kb, desk) -> None:  # noqa: ANN001
    answer = question_answer(kb=kb_ensure(name="default"), text="What is your refund policy?")
    assert not answer.handoff and answer.reason == "answered"
    assert answer.reply.startswith("Refunds are paid within 30 days")
    assert answer.citations[0]["title"] == "Refunds" and answer.citations[0]["url"] == "https://help.example.com/refunds"
    assert answer.confidence >= 0.95 and answer.intent == "refund"


def test_product_codes_are_found_by_the_lexical_half_whatever_their_spelling(fixture_kb, desk) -> None:  # noqa: ANN001
    kb = kb_ensure(name="default")
    assert question_answer(kb=kb, text="xr200 battery").citations[0]["title"] == "XR-200 battery"
    reset = question_answer(kb=kb, text="QZ-77 reset button")
    assert reset.hits[0].item.kind == "passage" and reset.citations[0]["location"] == "section Factory reset"
    assert "12 seconds" in reset.hits[0].item.text


def test_a_question_below_the_threshold_says_so_and_hands_off(fixture_kb, desk) -> None:  # noqa: ANN001
    answer = question_answer(kb=kb_ensure(name="default"), text="Can I pay with bitcoin?")
    assert answer.handoff and answer.reason == "low_confidence" and answer.confidence < 0.45
    assert "not sure" in answer.reply


def test_an_empty_knowledge_base_hands_over_instead_of_failing(tiny_encoder, desk) -> None:  # noqa: ANN001
    answer = question_answer(kb=kb_ensure(name="empty"), text="Hello?")
    assert answer.handoff and answer.reason == "empty_kb" and answer.citations == []


@pytest.mark.django_db(transaction=True)  # the serving thread resolves the champion on its own connection
def test_the_intent_champion_labels_questions_and_a_low_probability_is_out_of_scope(fixture_kb, desk, tmp_path: Path) -> None:  # noqa: ANN001
    data = tmp_path / "intents.csv"
    with data.open("w", newline="") as f:
        csv.writer(f).writerows([("text", "label"), *zip(*sentiment_rows(90, seed=3))])
    run_json("train_adapter", task="intent", data=str(data), epochs=1)
    kb = kb_ensure(name="default")
    answer = question_answer(kb=kb, text="What is your refund policy?")
    assert answer.intent in {"bullish", "bearish", "neutral"} and 0 < answer.intent_prob <= 1
    desk.SUPPORT_INTENT_MIN_PROB = 1.0  # nothing is that sure: everything is out of scope
    answer = question_answer(kb=kb, text="What is your refund policy?")
    assert answer.handoff and answer.reason == "out_of_scope"


def test_a_customer_chats_anonymously_through_the_api_and_personal_data_is_masked(fixture_kb, desk, client) -> None:  # noqa: ANN001
    first = client.post("/api/support/messages", {"text": "How do I reset my password?"},
                        content_type="application/json")
    assert first.status_code == 201, first.content
    body = first.json()
    assert set(body) >= {"conversation", "reply", "citations", "confidence", "intent", "handoff"}
    assert len(body["conversation"]) >= 32 and body["handoff"] is False and "Security" in body["reply"]
    second = client.post("/api/support/messages", {"conversation": body["conversation"], "text": "Can I pay with bitcoin? I'm ann@example.com, +1 415 555 0100"},
                         content_type="application/json").json()
    assert second["conversation"] == body["conversation"] and second["handoff"] is True and second["state"] == "queued"
    conversation = Conversation.objects.get(token=body["conversation"])
    stored = list(conversation.messages.filter(sender=Message.CUSTOMER).values_list("text", flat=True))
    assert stored == ["How do I reset my password?", "Can I pay with bitcoin? I'm [email], [phone]"]
    assert KnowledgeGap.objects.get(reason="low_confidence").question == stored[1]
    history = client.get(f"/api/support/conversations/{body['conversation']}/messages").json()
    assert [m["sender"] for m in history["messages"]] == ["customer", "bot", "customer", "bot"]  # no suggestions, no notes
    assert client.get("/api/support/conversations/not-a-token/messages").status_code == 404


@pytest.mark.parametrize(("text", "field"), [("   ", "text"), ("x" * 2001, "text"), ("bin\x00ary\x01", "text"), (None, "text")],
                         ids=["empty", "overlong", "binary", "missing"])
def test_bad_messages_are_refused_naming_the_field(fixture_kb, desk, client, text, field) -> None:  # noqa: ANN001
    response = client.post("/api/support/messages", {"text": text}, content_type="application/json")
    assert response.status_code == 400 and response.json()["field"] == field
    assert not Message.objects.exists()


def test_customers_are_throttled_per_address(tiny_encoder, desk, client) -> None:  # noqa: ANN001
    desk.SUPPORT_CUSTOMER_RATE = "2/minute"
    address = {"REMOTE_ADDR": f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250)}"}  # fresh count
    codes = [client.post("/api/support/messages", {"text": "hi"}, content_type="application/json", **address).status_code
             for _ in range(3)]
    assert codes == [201, 201, 429]
