"""Retraining plug-ins of the `sentiment` and `topic` tasks: analysts' relabels are their feedback, scored headlines
their traffic."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from apps.registry.models import Task
from apps.sentiment.models import Relabel, ScoredNews
from services.registry.retraining import INCOMING_MAX, ClassifierData, ClassifierRetrainer, Example, RetrainData
from services.sentiment.topics import TOPIC_TASK, topic_name


def _relabels(task: str) -> list[Example]:
    return [Example(r.text, r.label, r.source, r.created_at)
            for r in Relabel.objects.filter(task=task).order_by("created_at", "id")]


def _headlines(since: datetime | None) -> list[str]:
    rows = ScoredNews.objects.filter(stored_at__gt=since) if since else ScoredNews.objects.all()
    return list(rows.order_by("-stored_at").values_list("headline", flat=True)[:INCOMING_MAX])


class SentimentRetrainer(ClassifierRetrainer):
    name = "sentiment"

    def feedback(self) -> list[Example]:
        return _relabels("sentiment")

    def incoming(self, since: datetime | None) -> list[str]:
        return _headlines(since)


class TopicData(ClassifierData):
    """The topic task's files with their labels as topic names: the public data's ids ("5") read as "Earnings",
    so base rows, analysts' relabels (names) and the held-back set share one label set."""

    def __init__(self, *, task: Task, feedback: list[Example]) -> None:
        super().__init__(task=task, feedback=[replace(e, label=topic_name(e.label)) for e in feedback])
        self.base = replace(self.base, labels=[topic_name(label) for label in self.base.labels])
        self.held_back = replace(self.held_back, labels=[topic_name(label) for label in self.held_back.labels])
        self.train_labels = self.base.labels


class TopicRetrainer(ClassifierRetrainer):
    name = TOPIC_TASK

    def feedback(self) -> list[Example]:
        return _relabels(TOPIC_TASK)

    def incoming(self, since: datetime | None) -> list[str]:
        return _headlines(since)

    def data(self, *, task_row: Task, feedback: list[Example], until: datetime) -> RetrainData:
        return TopicData(task=task_row, feedback=feedback)
