"""Console features: search over conversations, labels, the satisfaction question at resolve, what was asked."""
from __future__ import annotations

import pytest

from apps.support.models import Conversation, Feedback

pytestmark = pytest.mark.django_db


@pytest.fixture
def chats(fixture_kb, settings, client):  # noqa: ANN001, ANN201
    settings.SUPPORT_CONFIDENCE_THRESHOLD = 0.45
    settings.SUPPORT_CUSTOMER_RATE = settings.SUPPORT_CONVERSATION_RATE = "1000/minute"

    def say(text: str, token: str | None = None) -> dict:
        return client.post("/api/support/messages", {"text": text, "conversation": token},
                           content_type="application/json").json()

    refund = say("What is your refund policy?")
    say("Can I pay with bitcoin?", refund["conversation"])  # handed off: low confidence
    person = say("I want to talk to a person")
    return {"refund": Conversation.objects.get(token=refund["conversation"]), "refund_token": refund["conversation"],
            "person": Conversation.objects.get(token=person["conversation"])}


def test_agents_search_conversations_by_words_and_label(chats, client, role_users) -> None:  # noqa: ANN001
    client.force_login(role_users["support_agent"])
    found = client.get("/api/support/console/conversations", {"q": "bitcoin"}).json()
    assert [c["id"] for c in found] == [chats["refund"].id]
    base = f"/api/support/console/conversations/{chats['person'].id}"
    detail = client.post(f"{base}/labels", {"labels": ["VIP", "billing", "vip"]}, content_type="application/json").json()
    assert detail["labels"] == ["billing", "vip"]
    assert [c["id"] for c in client.get("/api/support/console/conversations", {"label": "vip"}).json()] == [chats["person"].id]
    assert client.get("/api/support/console/conversations", {"label": "vi"}).json() == []
    bad = client.post(f"{base}/labels", {"labels": ["no spaces allowed"]}, content_type="application/json")
    assert bad.status_code == 400 and bad.json()["field"] == "labels"
    assert Conversation.objects.get(pk=chats["person"].pk).label_list == ["billing", "vip"]


def test_the_detail_summarises_what_the_customer_asked_before_the_handoff(chats, client, role_users) -> None:  # noqa: ANN001
    client.force_login(role_users["support_agent"])
    summary = client.get(f"/api/support/console/conversations/{chats['refund'].id}").json()["summary"]
    assert summary == {"asked": ["What is your refund policy?", "Can I pay with bitcoin?"], "handoff_reason": "low_confidence"}
    person = client.get(f"/api/support/console/conversations/{chats['person'].id}").json()["summary"]
    assert person == {"asked": ["I want to talk to a person"], "handoff_reason": "requested"}


def test_resolving_asks_the_customer_for_a_rating_once(chats, client, role_users) -> None:  # noqa: ANN001
    client.force_login(role_users["support_agent"])
    detail = client.post(f"/api/support/console/conversations/{chats['refund'].id}/resolve").json()
    assert detail["state"] == "resolved"
    ask = detail["messages"][-1]
    assert ask["sender"] == "bot" and [c["id"] for c in ask["choices"]] == [f"csat-{n}" for n in (5, 4, 3, 2, 1)]
    client.logout()
    rated = client.post("/api/support/choices", {"conversation": chats["refund_token"], "message": ask["id"],
                                                 "choice": "csat-4"}, content_type="application/json")
    assert rated.status_code == 201 and rated.json()["reply"] == "Thank you for your rating."
    assert rated.json()["state"] == "resolved"  # a rating does not reopen the conversation
    assert Conversation.objects.get(pk=chats["refund"].pk).csat == 4
    assert Feedback.objects.get(kind="picked").choice == "csat-4"
    again = client.post("/api/support/choices", {"conversation": chats["refund_token"], "message": ask["id"],
                                                  "choice": "csat-1"}, content_type="application/json")
    assert again.status_code == 409 and Conversation.objects.get(pk=chats["refund"].pk).csat == 4
