"""Retraining plug-in of the `recommender` task (pairs): the shop's events are its feedback and its traffic.

Base data and held-back set are interaction files (user_id,item_id,event,timestamp) over the live catalogue; the
events the shop sent are added to the base histories; training pairs are each interaction's item text → the
user's next distinct item's text; judged, like `recommender_eval`, by ranking each held-back user's last item
among all items (ndcg/recall/hit rate at k) with the serving code's profile. On promotion the new champion becomes
the pending encoder of the vector space "recommender" and a worker re-embeds the catalogue beside the old vectors
(services/vectors/store.py); requests keep the old ones until the new are complete, never embedding themselves.
"""
from __future__ import annotations

import csv
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.recommender.models import Event, Item
from apps.registry.models import AdapterVersion, Task
from services.errors import SuiteError
from services.recommender import ranking
from services.recommender.catalog import item_text
from services.recommender.evaluation import (Split, interactions_read, pairs_make, popularity_count, rankings_score,
                                             split_leave_last_out)
from services.registry.retraining import INCOMING_MAX, Example, RetrainData, Retrainer


class RecommenderRetrainer(Retrainer):
    name = "recommender"
    kind = Task.KIND_PAIRS
    gate_metric = "ndcg_at_k"  # gated on its ranking metric rather than the classifiers' macro-F1
    gate_guard_metric = "recall_at_k"

    def feedback(self) -> list[Example]:
        """Each interaction the shop sent: the item it was with, its type as the "label", counted by when it arrived."""
        rows = (Event.objects.order_by("received_at", "id")
                .values_list("item_external_id", "type", "user_id", "received_at"))
        return [Example(item, kind, f"user:{user}", at) for item, kind, user, at in rows.iterator()]

    def incoming(self, since: datetime | None) -> list[str]:
        """The texts of the items interacted with since `since`."""
        events = Event.objects.filter(received_at__gt=since) if since else Event.objects.all()
        pks = events.exclude(item=None).order_by("-received_at").values_list("item_id", flat=True)[:INCOMING_MAX]
        items = Item.objects.filter(pk__in=list(pks))
        return [item_text(title=i.title, description=i.description, category=i.category, tags=i.tags) for i in items]

    def data(self, *, task_row: Task, feedback: list[Example], until: datetime) -> RetrainData:
        return RecommenderData(task=task_row, until=until)

    def promoted(self, *, task_row: Task) -> None:
        from services.recommender.vectors import SPACE
        from services.vectors import encoder_switch_check

        encoder_switch_check(space=SPACE)  # new champion pending; a worker re-embeds the catalogue, then it switches


def recommender_task_ensure() -> Task:
    """The `recommender` task (pairs), gated on ndcg_at_k (guard: recall_at_k) from its creation on."""
    return RecommenderRetrainer().task_ensure()


class RecommenderData:
    """The recommender's data for one run: base + event histories for pairs; held-back users' last items to rank."""

    def __init__(self, *, task: Task, until: datetime, k: int | None = None) -> None:
        self.task, self.until, self.k = task, until, k or settings.RETRAIN_RECOMMENDER_K
        self.ids, self.texts = catalogue_live()
        if not self.ids:
            raise SuiteError("The catalogue is empty: import items before retraining the recommender.", field="items")
        rows_of = {external: row for row, external in enumerate(self.ids)}
        self.skipped: list[str] = []  # refused rows of both files (bad lines, items not in the catalogue): reported
        base = interactions_read(path=Path(task.retrain_data), rows_of=rows_of, skipped=self.skipped)
        history = histories_merge(base, events_history(rows_of=rows_of, until=until))
        held = interactions_read(path=Path(task.retrain_eval), rows_of=rows_of, skipped=self.skipped)
        self.split = split_leave_last_out(history=held)
        if not self.split.test:
            raise SuiteError(f"{task.retrain_eval}: no user with two distinct catalogue items to hold out.",
                             field="retrain_eval")
        self.training = Split(train=history, test={})
        # Popularity from everything known before the held-back items: the training histories and the held-back
        # users' earlier interactions; the same for every version judged, so counted once.
        self.popularity = popularity_count(split=self.training, n_items=len(self.ids)) + \
            popularity_count(split=self.split, n_items=len(self.ids))
        base_rows = [i for rows in base.values() for i in rows]
        self.reference_texts = [self.texts[i.item] for i in base_rows]
        self.train_labels = [i.type for i in base_rows]

    def train_file(self, *, folder: Path) -> tuple[Path, int, dict[str, Any]]:
        queries, items = pairs_make(split=self.training, texts=self.texts)
        if len(queries) < 4:
            raise SuiteError(f"Too few consecutive interactions to tune on: {len(queries)} pairs (at least 4).",
                             field="interactions")
        path = folder / "pairs.csv"
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["query", "item"])
            writer.writerows(zip(queries, items))
        return path, len(queries), {"text_col": "query", "label_col": "item", "kind": Task.KIND_PAIRS}

    def evaluate(self, *, version: AdapterVersion) -> dict[str, Any]:
        from services.ml.artifacts import artifact_embed

        vectors = artifact_embed(folder=version.path, texts=self.texts, base_path=version.base.path)  # (n_items, dim)
        scores = rankings_score(split=self.split, vectors=vectors, popularity=self.popularity, k=self.k)
        return {"ndcg_at_k": scores["ndcg"], "recall_at_k": scores["recall"], "hit_rate_at_k": scores["hit"],
                "k": self.k, "n": len(self.split.test)}


def catalogue_live() -> tuple[list[str], list[str]]:
    """(external ids, item texts) of the live catalogue, by pk."""
    rows = Item.objects.order_by("pk").values_list("external_id", "title", "description", "category", "tags")
    ids, texts = [], []
    for external, title, description, category, tags in rows.iterator():
        ids.append(external)
        texts.append(item_text(title=title, description=description, category=category, tags=tags or []))
    return ids, texts


def events_history(*, rows_of: dict[str, int], until: datetime) -> dict[str, list[ranking.Interaction]]:
    """user -> the interactions the shop sent (received up to `until`) with catalogue items, oldest first."""
    by_user: dict[str, list[ranking.Interaction]] = defaultdict(list)
    rows = (Event.objects.filter(received_at__lte=until).exclude(type=Event.NOT_INTERESTED).order_by("timestamp", "pk")
            .values_list("user_id", "item_external_id", "type", "timestamp"))
    for user, external, kind, at in rows.iterator():
        row = rows_of.get(external)
        if row is not None:
            by_user[user].append(ranking.Interaction(item=row, type=kind, at=at.timestamp()))
    return dict(by_user)


def histories_merge(*parts: dict[str, list[ranking.Interaction]]) -> dict[str, list[ranking.Interaction]]:
    """One history per user from several sources, oldest first (a stable sort keeps each source's order on ties)."""
    merged: dict[str, list[ranking.Interaction]] = defaultdict(list)
    for part in parts:
        for user, rows in part.items():
            merged[user].extend(rows)
    return {user: sorted(rows, key=lambda i: i.at) for user, rows in merged.items()}
