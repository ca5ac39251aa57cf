"""Claiming a conversation: a take-over is never overwritten by a bot answer or by a second agent (real threads)."""
from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import connection, connections

from apps.support.models import Conversation, KnowledgeBase, Message
from services.errors import Conflict
from services.support import conversations
from services.support.answering import Answer
from services.support.retrieval import Hit, Item

pytestmark = pytest.mark.django_db(transaction=True)  # the threads use their own connections: rows must be committed

WAIT = 10.0  # seconds; generous for a loaded CI machine, never reached when the code is right


def _answered(*, kb: KnowledgeBase, text: str, context: object = ()) -> Answer:  # noqa: ARG001
    """A confident answer with one hit (so a suggestion can be stored), without an encoder."""
    item = Item(id=0, kind="faq", pk=1, title="Refunds", url="", location="", text="Refunds are paid within 30 days.",
                question="What is your refund policy?", intent="refund")
    return Answer(reply=item.text, confidence=0.9, handoff=False, reason="answered", intent="refund",
                  hits=[Hit(item=item, fused=1.0, dense=0.9, lexical=1.0)])


def _in_thread(target: Callable[[], object], errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - reported by the test, not swallowed
            errors.append(exc)
        finally:
            connections.close_all()  # this thread's connection; the test database cannot be dropped while one is open

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def users(django_user_model) -> tuple:  # noqa: ANN001
    return (django_user_model.objects.create_user("alice", password="pw-alice"),
            django_user_model.objects.create_user("bob", password="pw-bob"))


@pytest.mark.parametrize("transaction_mode", ["IMMEDIATE", "DEFERRED"])
def test_an_agent_taking_over_while_the_bot_answers_keeps_the_conversation(
        transaction_mode: str, users: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bot looked the conversation up (state bot); the take-over commits before it writes: the bot only suggests.

    DEFERRED stands for databases whose transactions do not lock at BEGIN (PostgreSQL): there a bot that read
    "bot" and saved the whole row afterwards put the conversation back to the bot and dropped the agent.
    """
    if connection.vendor == "sqlite":
        monkeypatch.setitem(connection.settings_dict["OPTIONS"], "transaction_mode", transaction_mode)
    elif transaction_mode == "DEFERRED":
        pytest.skip("the transaction mode is an SQLite option")
    monkeypatch.setattr(conversations, "question_answer", _answered)
    kb = KnowledgeBase.objects.create(name="default")
    conversation = Conversation.objects.create(kb=kb)
    looked_up, go_on = threading.Event(), threading.Event()
    get = conversations.conversation_get

    def get_then_wait(**kwargs: object) -> Conversation:
        found = get(**kwargs)
        looked_up.set()
        go_on.wait(WAIT)
        return found

    monkeypatch.setattr(conversations, "conversation_get", get_then_wait)
    errors: list[BaseException] = []
    exchanges: list[conversations.Exchange] = []
    customer = _in_thread(lambda: exchanges.append(conversations.message_receive(
        kb=kb, token=conversation.token, text="What is your refund policy? Mail me at jo@example.com")), errors)
    try:
        assert looked_up.wait(WAIT)
        agent = _in_thread(lambda: conversations.conversation_take_over(
            conversation=Conversation.objects.get(pk=conversation.pk), agent=users[0]), errors)
        agent.join(WAIT)
        assert not agent.is_alive(), "the take-over waited for the bot's answer"
    finally:
        go_on.set()
        customer.join(WAIT)
    assert not customer.is_alive() and errors == []
    conversation.refresh_from_db()
    assert (conversation.state, conversation.agent) == (Conversation.AGENT, users[0])
    assert conversation.last_intent == "refund"
    question = Message.objects.get(conversation=conversation, sender=Message.CUSTOMER)
    assert question.text.endswith("[email]")  # the customer's message is kept, masked
    assert not Message.objects.filter(conversation=conversation, sender=Message.BOT).exists()
    assert Message.objects.get(conversation=conversation, sender=Message.SUGGESTION).reply_to == question
    assert exchanges[0].reply is None and exchanges[0].conversation.state == Conversation.AGENT


def test_of_two_agents_taking_over_at_once_exactly_one_wins(users: tuple) -> None:
    kb = KnowledgeBase.objects.create(name="default")
    conversation = Conversation.objects.create(kb=kb, state=Conversation.QUEUED)
    both_loaded = threading.Barrier(2, timeout=WAIT)
    errors: list[BaseException] = []

    def take_over(agent: object) -> None:
        mine = Conversation.objects.get(pk=conversation.pk)  # each console loaded the conversation while it was queued
        both_loaded.wait()
        conversations.conversation_take_over(conversation=mine, agent=agent)

    threads = [_in_thread(lambda agent=agent: take_over(agent), errors) for agent in users]
    for thread in threads:
        thread.join(WAIT)
    assert len(errors) == 1 and isinstance(errors[0], Conflict), errors
    conversation.refresh_from_db()
    winner = conversation.agent
    assert conversation.state == Conversation.AGENT and winner in users
    assert errors[0].status_code == 409 and errors[0].message == f"{winner.username} already holds this conversation."


def test_a_second_agent_taking_over_gets_409_naming_the_holder(role_users, client) -> None:  # noqa: ANN001
    kb = KnowledgeBase.objects.create(name="default")
    conversation = Conversation.objects.create(kb=kb, state=Conversation.QUEUED)
    base = f"/api/support/console/conversations/{conversation.pk}/take-over"
    client.force_login(role_users["support_agent"])
    assert client.post(base).json()["state"] == "agent"
    assert client.post(base).status_code == 200  # taking over again is harmless
    client.force_login(role_users["admin"])
    refused = client.post(base)
    assert refused.status_code == 409
    body = refused.json()
    assert (body["error"], body["field"]) == ("conflict", "conversation")
    assert body["detail"] == "agent already holds this conversation."
    conversation.refresh_from_db()
    assert conversation.agent == role_users["support_agent"]
