"""Handed-off conversations go to the least busy available agent, the team covering the intent first."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from apps.support.models import Conversation, KnowledgeBase
from services.errors import SuiteError
from services.support.assignment import agent_available_set, conversation_assign, teams_parse

pytestmark = pytest.mark.django_db


@pytest.fixture
def agents(role_users, django_user_model):  # noqa: ANN001, ANN201
    support = role_users["support_agent"].groups.first()
    people = {}
    for name in ("ann", "ben", "cat"):
        user = django_user_model.objects.create_user(name, password="pw")
        user.groups.add(support)
        people[name] = user
    billing = Group.objects.create(name="billing")
    people["cat"].groups.add(billing)
    return people


def _queued(intent: str = "") -> Conversation:
    kb = KnowledgeBase.objects.get_or_create(name="default")[0]
    return Conversation.objects.create(kb=kb, state=Conversation.QUEUED, last_intent=intent)


def test_the_team_of_the_intent_gets_it_else_the_least_busy_available_agent(agents, settings) -> None:  # noqa: ANN001
    settings.SUPPORT_TEAMS = "billing:refund|payment"
    assert conversation_assign(conversation=_queued("refund")) is None  # nobody available
    for name in ("ann", "ben", "cat"):
        agent_available_set(agent=agents[name], available=True)
    assert conversation_assign(conversation=_queued("refund")) == agents["cat"]  # the billing team
    assert conversation_assign(conversation=_queued("router_reset")) == agents["ann"]
    assert conversation_assign(conversation=_queued("router_reset")) == agents["ben"]  # ann has one already
    agent_available_set(agent=agents["cat"], available=False)
    assert conversation_assign(conversation=_queued("refund")) in (agents["ann"], agents["ben"])  # team away: anyone


def test_a_held_or_assigned_conversation_is_left_alone(agents) -> None:  # noqa: ANN001
    agent_available_set(agent=agents["ann"], available=True)
    held = _queued()
    held.state, held.agent = Conversation.AGENT, agents["ben"]
    held.save()
    assert conversation_assign(conversation=held) is None and held.agent == agents["ben"]


def test_a_handoff_through_the_api_is_assigned_and_presence_is_per_agent(agents, client, settings, tiny_encoder) -> None:  # noqa: ANN001
    settings.SUPPORT_CUSTOMER_RATE = "1000/minute"
    client.force_login(agents["ben"])
    assert client.get("/api/support/console/presence").json() == {"available": False}
    assert client.post("/api/support/console/presence", {"available": True}, content_type="application/json").json() == {"available": True}
    bad = client.post("/api/support/console/presence", {"available": "yes"}, content_type="application/json")
    assert bad.status_code == 400 and bad.json()["field"] == "available"
    client.logout()
    body = client.post("/api/support/messages", {"text": "I want to talk to a person"}, content_type="application/json").json()
    assert body["state"] == "queued"
    assert Conversation.objects.get(token=body["conversation"]).agent == agents["ben"]


def test_bad_team_settings_are_refused_naming_the_setting() -> None:
    assert teams_parse(value="billing:refund|payment, tech:router") == {"refund": "billing", "payment": "billing",
                                                                         "router": "tech"}
    with pytest.raises(SuiteError) as caught:
        teams_parse(value="billing")
    assert caught.value.field == "SUPPORT_TEAMS"
