"""Retention of support conversations: those idle longer than SUPPORT_RETENTION_DAYS are anonymised or deleted.

Run daily by the `support.conversations_retention` beat task (apps/support/tasks.py; its schedule is created after
migrate). 0 days keeps everything: how long support records may be kept is the operator's legal decision.
"""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.support.models import Conversation, KnowledgeGap, Message, TrainingExample
from services.errors import SuiteError
from services.support.masking import text_mask

ANONYMISED_PREFIX = "anonymised-"  # an anonymised conversation's token: no customer holds it, and it marks the row done
BATCH = 200  # conversations per transaction: a long backlog never holds one huge write lock


def _token_anonymous() -> str:
    return ANONYMISED_PREFIX + secrets.token_urlsafe(24)


def _texts_remask(*, messages: list[Message]) -> None:
    """Mask again (the masking may have learnt since) every text copied from these messages."""
    for message in messages:
        masked = text_mask(text=message.text)
        if masked != message.text:
            Message.objects.filter(pk=message.pk).update(text=masked)
    ids = [m.pk for m in messages]
    for gap in KnowledgeGap.objects.filter(message_id__in=ids):
        KnowledgeGap.objects.filter(pk=gap.pk).update(question=text_mask(text=gap.question))
    for example in TrainingExample.objects.filter(message_id__in=ids):
        TrainingExample.objects.filter(pk=example.pk).update(text=text_mask(text=example.text))


def conversation_retention_apply(*, days: int | None = None, action: str | None = None,
                                 now: datetime | None = None) -> dict[str, int | str]:
    """Anonymise or delete the conversations not updated for `days` (SUPPORT_RETENTION_DAYS; 0: none).

    1. Pick conversations idle since before the cut-off, not already anonymised, a batch at a time.
    2. Anonymise: every text (messages, their knowledge gaps and training examples) masked again, the customer's
       token replaced (their link stops working; nothing else identifies them), the agent link dropped. The
       conversation's `updated_at` is kept, so it is not picked again. Or delete: the texts copied out of it
       (gaps, training examples) are masked again, then the conversation and its messages are deleted.
    """
    days = settings.SUPPORT_RETENTION_DAYS if days is None else days
    action = action or settings.SUPPORT_RETENTION_ACTION
    if action not in ("anonymise", "delete"):
        raise SuiteError("`action` must be anonymise or delete.", field="action")
    if days <= 0:
        return {"action": action, "days": days, "conversations": 0}
    cutoff = (now or timezone.now()) - timedelta(days=days)
    stale = Conversation.objects.filter(updated_at__lt=cutoff).exclude(token__startswith=ANONYMISED_PREFIX)
    done = 0
    while True:
        with transaction.atomic():
            ids = list(stale.order_by("pk").values_list("pk", flat=True)[:BATCH])
            if not ids:
                break
            _texts_remask(messages=list(Message.objects.filter(conversation_id__in=ids)))
            if action == "delete":
                Conversation.objects.filter(pk__in=ids).delete()
            else:
                for pk in ids:  # update(), not save(): updated_at (auto_now) keeps the conversation's real age
                    Conversation.objects.filter(pk=pk).update(token=_token_anonymous(), agent=None)
            done += len(ids)
    return {"action": action, "days": days, "conversations": done}
