"""The agents' console API: take over, reply, notes, canned responses, resolve, feedback, knowledge gaps, access."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from apps.support.models import CannedResponse, Conversation, FaqEntry, KnowledgeGap, Message, TrainingExample
from tests.helpers import run_json

pytestmark = pytest.mark.django_db


@pytest.fixture
def chat(fixture_kb, settings, client) -> dict:  # noqa: ANN001
    """One conversation: an answered question, then one the bot hands off."""
    settings.SUPPORT_CONFIDENCE_THRESHOLD = 0.45
    settings.SUPPORT_CUSTOMER_RATE = "1000/minute"
    first = client.post("/api/support/messages", {"text": "What is your refund policy?"}, content_type="application/json").json()
    second = client.post("/api/support/messages", {"conversation": first["conversation"], "text": "Can I pay with bitcoin?"},
                         content_type="application/json").json()
    return {"token": first["conversation"], "answered": first, "handed_off": second,
            "conversation": Conversation.objects.get(token=first["conversation"])}


def test_an_agent_takes_over_replies_notes_and_resolves_and_the_customer_sees_only_replies(chat, client, role_users) -> None:  # noqa: ANN001
    agent = role_users["support_agent"]
    client.force_login(agent)
    listing = client.get("/api/support/console/conversations").json()
    assert [c["id"] for c in listing] == [chat["conversation"].id] and listing[0]["state"] == "queued"
    detail = client.get(f"/api/support/console/conversations/{chat['conversation'].id}").json()
    assert detail["suggestion"]["citations"] and detail["suggestion"]["confidence"] is not None
    base = f"/api/support/console/conversations/{chat['conversation'].id}"
    assert client.post(f"{base}/take-over").json()["state"] == "agent"
    client.post(f"{base}/note", {"text": "Customer asks about crypto; call 0044 20 7946 0958"}, content_type="application/json")
    detail = client.post(f"{base}/reply", {"text": "We accept cards and PayPal."}, content_type="application/json").json()
    assert [m["sender"] for m in detail["messages"]][-2:] == ["note", "agent"]
    assert detail["messages"][-2]["text"].endswith("[phone]")
    # While the agent holds it, the bot only suggests.
    client.logout()
    held = client.post("/api/support/messages", {"conversation": chat["token"], "text": "What is your refund policy?"},
                       content_type="application/json").json()
    assert held["reply"] is None and held["state"] == "agent"
    assert Message.objects.filter(conversation=chat["conversation"], sender="suggestion").count() == 2
    seen = client.get(f"/api/support/conversations/{chat['token']}/messages").json()["messages"]
    assert "note" not in {m["sender"] for m in seen} and "suggestion" not in {m["sender"] for m in seen}
    assert seen[-2]["text"] == "We accept cards and PayPal."
    client.force_login(agent)
    assert client.post(f"{base}/hand-back").json()["state"] == "bot"
    assert client.post(f"{base}/resolve").json()["state"] == "resolved"
    assert client.get("/api/support/console/conversations").json() == []


def test_canned_responses_fill_their_placeholders(chat, client, role_users) -> None:  # noqa: ANN001
    canned = CannedResponse.objects.create(name="greeting", text="Hi, I'm {agent} from the {kb} team, about {topic}. {unknown}")
    client.force_login(role_users["support_agent"])
    assert client.get("/api/support/console/canned").json()[0]["name"] == "greeting"
    text = client.post(f"/api/support/console/conversations/{chat['conversation'].id}/canned", {"canned": canned.id},
                       content_type="application/json").json()["text"]
    assert text.startswith("Hi, I'm agent from the default team, about ") and text.endswith("{unknown}")


def test_feedback_becomes_intent_training_data_and_a_gap_answered_becomes_an_faq(chat, client, role_users,
                                                                                 tmp_path: Path) -> None:  # noqa: ANN001
    answered = chat["answered"]["message"]
    assert client.post("/api/support/feedback", {"conversation": chat["token"], "message": answered, "rating": "up"},
                       content_type="application/json").status_code == 201
    assert client.post("/api/support/feedback", {"conversation": "wrong-token", "message": answered, "rating": "up"},
                       content_type="application/json").status_code == 404
    assert not TrainingExample.objects.exists()  # a customer's thumbs label nothing until an agent confirms
    client.force_login(role_users["support_agent"])
    assert client.post(f"/api/support/console/messages/{answered}/right").status_code == 201
    up = TrainingExample.objects.get(source="agent_confirmed")
    assert (up.text, up.label, up.task) == ("What is your refund policy?", "refund", "intent") and up.created_at
    assert client.post(f"/api/support/console/messages/{answered}/wrong").status_code == 201
    wrong = TrainingExample.objects.get(source="agent_marked_wrong")
    assert wrong.rejected == "refund" and wrong.label == ""
    gaps = client.get("/api/support/console/gaps").json()
    assert {g["reason"] for g in gaps} == {"low_confidence", "marked_wrong"}
    gap = next(g for g in gaps if g["reason"] == "low_confidence")
    assert gap["suggested_question"] == "Can I pay with bitcoin?"  # offered to the agent to confirm or rewrite
    added = client.post(f"/api/support/console/gaps/{gap['id']}/add", {
        "answer": "We take cards and PayPal, not bitcoin.", "intent": "payment", "question": gap["suggested_question"],
        "title": "Paying with bitcoin", "confirmed": True}, content_type="application/json")
    assert added.status_code == 201 and added.json()["status"] == "added"
    assert client.post(f"/api/support/console/gaps/{gap['id']}/add", {"answer": "again"},
                       content_type="application/json").status_code == 400
    assert FaqEntry.objects.get(intent="payment").question == "Can I pay with bitcoin?"
    assert KnowledgeGap.objects.get(pk=gap["id"]).faq is not None
    client.logout()
    again = client.post("/api/support/messages", {"text": "Can I pay with bitcoin?"}, content_type="application/json").json()
    assert again["handoff"] is False and again["reply"] == "We take cards and PayPal, not bitcoin."  # indexed at once
    out = tmp_path / "feedback.csv"
    assert run_json("support_training_export", out=str(out)) == {"out": str(out), "rows": 2, "rejected": 1}
    rows = list(csv.DictReader(out.open()))
    assert [(r["label"], r["source"]) for r in rows] == [("refund", "agent_confirmed"), ("payment", "gap_added")]


def test_the_console_needs_the_support_role_and_the_widget_does_not(client, role_users) -> None:  # noqa: ANN001
    assert client.get("/api/support/console/conversations").status_code in (401, 403)
    assert client.get("/support/").status_code == 302
    assert client.get("/support/widget/").status_code == 200
    client.force_login(role_users["risk_analyst"])
    assert client.get("/api/support/console/conversations").status_code == 403
    assert client.get("/support/").status_code == 403
    client.force_login(role_users["support_agent"])
    assert client.get("/support/").status_code == 200
    assert client.get("/api/support/console/gaps").status_code == 200
