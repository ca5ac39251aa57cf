"""Retraining plug-in of the `intent` task: labelled support feedback trains it, customers' messages are its traffic."""
from __future__ import annotations

from datetime import datetime

from apps.support.models import Message, TrainingExample
from services.registry.retraining import INCOMING_MAX, ClassifierRetrainer, Example


class IntentRetrainer(ClassifierRetrainer):
    name = "intent"

    def feedback(self) -> list[Example]:
        rows = TrainingExample.objects.filter(task="intent").exclude(label="").order_by("created_at", "id")
        return [Example(r.text, r.label, r.source, r.created_at) for r in rows]

    def incoming(self, since: datetime | None) -> list[str]:
        rows = Message.objects.filter(sender=Message.CUSTOMER)
        rows = rows.filter(created_at__gt=since) if since else rows
        return list(rows.order_by("-created_at").values_list("text", flat=True)[:INCOMING_MAX])
