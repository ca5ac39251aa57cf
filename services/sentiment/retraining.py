"""Retraining plug-in of the `sentiment` task: analysts' relabels are its feedback, scored headlines its traffic."""
from __future__ import annotations

from datetime import datetime

from apps.sentiment.models import Relabel, ScoredNews
from services.registry.retraining import INCOMING_MAX, ClassifierRetrainer, Example


class SentimentRetrainer(ClassifierRetrainer):
    name = "sentiment"

    def feedback(self) -> list[Example]:
        return [Example(r.text, r.label, r.source, r.created_at)
                for r in Relabel.objects.filter(task="sentiment").order_by("created_at", "id")]

    def incoming(self, since: datetime | None) -> list[str]:
        rows = ScoredNews.objects.filter(stored_at__gt=since) if since else ScoredNews.objects.all()
        return list(rows.order_by("-stored_at").values_list("headline", flat=True)[:INCOMING_MAX])
