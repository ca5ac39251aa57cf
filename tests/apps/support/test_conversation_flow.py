"""The conversation: follow-ups read with the previous question, "did you mean" choices learnt from, talk to a person."""
from __future__ import annotations

from pathlib import Path

import pytest

from apps.support.models import Conversation, Feedback, KnowledgeGap, Message, TrainingExample
from services.support.answering import question_answer
from services.support.knowledge import kb_ensure
from tests.helpers import run_json

pytestmark = pytest.mark.django_db

FAQ = """question,answer,intent,title
How do I reset my router?,Hold the router's reset button for 12 seconds.,router_reset,Router reset
How do I reset my password?,Open Settings > Security and choose Reset password.,password_reset,Password reset
How do I return an item?,Print the return label from your account and drop the parcel at a post office.,returns,Returns
When will my refund arrive?,A refund takes 5 to 7 working days after the return arrives.,returns,Refund times
"""


@pytest.fixture
def desk(bow_encoder, tmp_path: Path, settings):  # noqa: ANN001, ANN201
    settings.SUPPORT_CONFIDENCE_THRESHOLD = 0.45
    settings.SUPPORT_AMBIGUITY_MARGIN = 0.05
    settings.SUPPORT_HANDOFF_CONFIRM = False
    settings.SUPPORT_CUSTOMER_RATE = "1000/minute"
    settings.SUPPORT_CONVERSATION_RATE = "1000/minute"
    faq = tmp_path / "faq.csv"
    faq.write_text(FAQ, encoding="utf-8")
    run_json("support_import", faq=str(faq), no_progress=True)
    return settings


def _say(client, text: str, token: str | None = None) -> dict:  # noqa: ANN001
    response = client.post("/api/support/messages", {"text": text, "conversation": token}, content_type="application/json")
    assert response.status_code == 201, response.content
    return response.json()


def test_a_follow_up_is_read_with_the_previous_question(desk, client) -> None:  # noqa: ANN001
    kb = kb_ensure(name="default")
    alone = question_answer(kb=kb, text="and how long does that take?")
    assert alone.handoff and alone.reason == "low_confidence"
    first = _say(client, "How do I return an item?")
    follow = _say(client, "and how long does that take?", first["conversation"])
    assert follow["handoff"] is False and follow["intent"] == "returns"  # the subject came from the first question
    assert follow["citations"][0]["title"] in {"Returns", "Refund times"}
    # A question that names its own subject is read alone.
    own = question_answer(kb=kb, text="How do I reset my password?", context=["How do I return an item?"])
    assert own.query == "How do I reset my password?" and own.reply.startswith("Open Settings")


def test_close_candidates_are_offered_as_choices_and_the_pick_is_learnt(desk, client) -> None:  # noqa: ANN001
    body = _say(client, "How do I reset?")
    assert body["handoff"] is False and "more than one" in body["reply"]
    labels = {c["label"] for c in body["choices"]}
    assert labels == {"How do I reset my router?", "How do I reset my password?"}
    router = next(c for c in body["choices"] if "router" in c["label"])
    picked = client.post("/api/support/choices", {"conversation": body["conversation"], "message": body["message"],
                                                  "choice": router["id"]}, content_type="application/json")
    assert picked.status_code == 201, picked.content
    assert picked.json()["reply"] == "Hold the router's reset button for 12 seconds." and picked.json()["choices"] == []
    feedback = Feedback.objects.get(kind=Feedback.PICKED)
    assert feedback.message_id == body["message"] and feedback.choice == str(router["id"])
    example = TrainingExample.objects.get(task="rerank")
    assert (example.text, example.label, example.source) == ("How do I reset?", str(router["id"]), "customer_pick")
    history = client.get(f"/api/support/conversations/{body['conversation']}/messages").json()["messages"]
    assert [m["sender"] for m in history] == ["customer", "bot", "customer", "bot"]
    assert history[2]["text"] == "How do I reset my router?"
    again = client.post("/api/support/choices", {"conversation": body["conversation"], "message": body["message"],
                                                 "choice": router["id"]}, content_type="application/json")
    assert again.status_code == 409


def test_a_choice_that_was_not_offered_is_refused_naming_it(desk, client) -> None:  # noqa: ANN001
    body = _say(client, "How do I reset?")
    for payload, field in (({"message": body["message"], "choice": "999999"}, "choice"),
                           ({"message": 123456, "choice": "handoff"}, "message"),
                           ({"message": "x", "choice": "handoff"}, "message")):
        response = client.post("/api/support/choices", {"conversation": body["conversation"], **payload},
                               content_type="application/json")
        assert response.status_code == 400 and response.json()["field"] == field
    assert not Feedback.objects.exists()


def test_a_zero_margin_never_asks(desk) -> None:  # noqa: ANN001
    desk.SUPPORT_AMBIGUITY_MARGIN = 0.0
    answer = question_answer(kb=kb_ensure(name="default"), text="How do I reset?")
    assert answer.reason == "answered" and answer.choices == []


@pytest.mark.parametrize("text", ["Can I talk to a person?", "I want to speak with a real human", "agent",
                                  "connect me to someone please"])
def test_asking_for_a_person_hands_off_at_once(desk, client, text) -> None:  # noqa: ANN001
    body = _say(client, text)
    assert body["handoff"] is True and body["state"] == "queued" and "connecting you" in body["reply"]
    assert not KnowledgeGap.objects.exists()  # not a gap in the knowledge base


def test_an_intent_mapped_to_a_person_hands_off(desk) -> None:  # noqa: ANN001
    from services.support.answering import IntentGuess, handoff_requested

    assert handoff_requested(text="hmm", intent=IntentGuess(label="talk_to_human", prob=0.6, out_of_scope=False))
    assert not handoff_requested(text="hmm", intent=IntentGuess(label="refund", prob=0.9, out_of_scope=False))


def test_confirm_before_handoff_asks_first(desk, client) -> None:  # noqa: ANN001
    desk.SUPPORT_HANDOFF_CONFIRM = True
    body = _say(client, "Can I talk to a person?")
    assert body["handoff"] is False and body["state"] == "bot"
    assert [c["kind"] for c in body["choices"]] == ["handoff", "cancel"]
    picked = client.post("/api/support/choices", {"conversation": body["conversation"], "message": body["message"],
                                                  "choice": "handoff"}, content_type="application/json").json()
    assert picked["handoff"] is True and picked["state"] == "queued"
    assert Conversation.objects.get(token=body["conversation"]).state == Conversation.QUEUED
    declined = _say(client, "talk to a human")
    cancel = client.post("/api/support/choices", {"conversation": declined["conversation"], "message": declined["message"],
                                                  "choice": "cancel"}, content_type="application/json").json()
    assert cancel["handoff"] is False and cancel["state"] == "bot"
    assert Message.objects.filter(sender=Message.BOT, text__startswith="All right").count() == 1
