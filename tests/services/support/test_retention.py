"""Retention: conversations idle longer than SUPPORT_RETENTION_DAYS are anonymised or deleted by a daily beat task."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.support.models import Conversation, KnowledgeBase, KnowledgeGap, Message, TrainingExample
from services.support.retention import ANONYMISED_PREFIX, conversation_retention_apply

# Stored before the masking knew IBANs: retention masks it again.
OLD_TEXT = "Refund to DE89 3704 0044 0532 0130 00 please"


def _conversation(kb: KnowledgeBase, *, age_days: int, agent=None) -> Conversation:  # noqa: ANN001
    conversation = Conversation.objects.create(kb=kb, agent=agent)
    question = Message.objects.create(conversation=conversation, sender=Message.CUSTOMER, text=OLD_TEXT)
    Message.objects.create(conversation=conversation, sender=Message.BOT, text="Not sure", reply_to=question)
    KnowledgeGap.objects.create(kb=kb, question=OLD_TEXT, reason="low_confidence", message=question)
    TrainingExample.objects.create(text=OLD_TEXT, label="refund", source="gap_added", message=question)
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now() - timedelta(days=age_days))
    conversation.refresh_from_db()
    return conversation


@pytest.fixture
def kb(db) -> KnowledgeBase:  # noqa: ANN001
    return KnowledgeBase.objects.create(name="retention")


def test_zero_days_keeps_every_conversation(kb: KnowledgeBase, settings) -> None:  # noqa: ANN001
    settings.SUPPORT_RETENTION_DAYS = 0
    old = _conversation(kb, age_days=4000)
    assert conversation_retention_apply()["conversations"] == 0
    assert Conversation.objects.get(pk=old.pk).token == old.token


def test_old_conversations_are_anonymised_and_recent_ones_kept(kb: KnowledgeBase, settings, role_users) -> None:  # noqa: ANN001
    settings.SUPPORT_RETENTION_DAYS = 30
    old = _conversation(kb, age_days=31, agent=role_users["support_agent"])
    recent = _conversation(kb, age_days=29)
    assert conversation_retention_apply() == {"action": "anonymise", "days": 30, "conversations": 1}
    old_after = Conversation.objects.get(pk=old.pk)
    assert old_after.token.startswith(ANONYMISED_PREFIX) and old_after.token != old.token and old_after.agent is None
    assert old_after.updated_at == old.updated_at  # its age is kept: it is not picked again
    assert Message.objects.get(conversation=old, sender=Message.CUSTOMER).text == "Refund to [iban] please"
    assert KnowledgeGap.objects.get(message__conversation=old).question == "Refund to [iban] please"
    assert TrainingExample.objects.get(message__conversation=old).text == "Refund to [iban] please"
    assert Conversation.objects.get(pk=recent.pk).token == recent.token
    assert Message.objects.get(conversation=recent, sender=Message.CUSTOMER).text == OLD_TEXT
    assert conversation_retention_apply()["conversations"] == 0  # done once


def test_the_customer_link_stops_working_after_anonymisation(kb: KnowledgeBase, settings, client) -> None:  # noqa: ANN001
    settings.SUPPORT_RETENTION_DAYS = 7
    old = _conversation(kb, age_days=8)
    assert client.get(f"/api/support/conversations/{old.token}/messages").status_code == 200
    conversation_retention_apply()
    assert client.get(f"/api/support/conversations/{old.token}/messages").status_code == 404


def test_delete_removes_old_conversations_and_masks_what_was_copied_out(kb: KnowledgeBase, settings) -> None:  # noqa: ANN001
    settings.SUPPORT_RETENTION_DAYS = 30
    settings.SUPPORT_RETENTION_ACTION = "delete"
    old = _conversation(kb, age_days=90)
    recent = _conversation(kb, age_days=1)
    assert conversation_retention_apply()["conversations"] == 1
    assert not Conversation.objects.filter(pk=old.pk).exists()
    assert not Message.objects.filter(conversation_id=old.pk).exists()
    assert Conversation.objects.filter(pk=recent.pk).exists()
    texts = set(KnowledgeGap.objects.values_list("question", flat=True))
    assert texts == {"Refund to [iban] please", OLD_TEXT}  # the deleted one's gap masked again; the recent one untouched


def test_the_daily_beat_schedule_exists_after_migrate_and_its_task_runs(kb: KnowledgeBase, settings) -> None:  # noqa: ANN001
    from django_celery_beat.models import PeriodicTask

    from apps.support.tasks import conversations_retention

    schedule = PeriodicTask.objects.get(task="support.conversations_retention")
    assert schedule.enabled and schedule.crontab is not None
    settings.SUPPORT_RETENTION_DAYS = 30
    _conversation(kb, age_days=31)
    assert conversations_retention.apply().get()["conversations"] == 1
