"""The `intent` plug-in: labelled support feedback is what it trains on; customers' messages are what its model saw."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.support.models import Conversation, KnowledgeBase, Message, TrainingExample
from services.registry.retraining import retrainer_get
from services.support.retraining import IntentRetrainer


@pytest.mark.django_db
def test_intent_feedback_is_the_labelled_examples_oldest_first_and_incoming_the_customers_messages() -> None:
    assert isinstance(retrainer_get("intent"), IntentRetrainer)
    TrainingExample.objects.create(text="where is my parcel", label="shipping", source="agent_marked_wrong")
    TrainingExample.objects.create(text="not a refund", label="", rejected="refund", source="customer_thumbs_down")
    TrainingExample.objects.create(text="money back please", label="refund", source="gap_added")
    TrainingExample.objects.create(text="other task", label="x", task="other", source="gap_added")
    feedback = IntentRetrainer().feedback()
    assert [(e.text, e.label, e.source) for e in feedback] == [("where is my parcel", "shipping", "agent_marked_wrong"),
                                                             ("money back please", "refund", "gap_added")]

    conversation = Conversation.objects.create(kb=KnowledgeBase.objects.create(name="kb"))
    said = ((Message.CUSTOMER, "old question"), (Message.BOT, "an answer"), (Message.CUSTOMER, "new question"))
    for sender, text in said:
        Message.objects.create(conversation=conversation, sender=sender, text=text)
    Message.objects.filter(text="old question").update(created_at=timezone.now() - timedelta(days=2))
    assert IntentRetrainer().incoming(None) == ["new question", "old question"]  # newest first
    assert IntentRetrainer().incoming(timezone.now() - timedelta(days=1)) == ["new question"]
