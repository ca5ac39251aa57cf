"""What a retraining run trains on and is judged on, per kind of task (pipelines/retrain.py runs them).

- Classifiers (sentiment, intent): base data and held-back set are `text,label` files; the feedback examples
  (relabels, support feedback) are added to the base data, the newest label of a text winning; judged by
  accuracy and macro-F1 on the held-back set.
- Recommender (pairs): base data and held-back set are interaction files (user_id,item_id,event,timestamp) over
  the live catalogue; the events the shop sent are added to the base histories; training pairs are each
  interaction's item text → the user's next distinct item's text; judged, like `recommender_eval`, by ranking
  each held-back user's last item among all items (ndcg/recall/hit rate at k) with the serving code's profile.
"""
from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from django.conf import settings

from apps.registry.models import AdapterVersion, Task
from services.errors import SuiteError
from services.ml.artifacts import artifact_embed, artifact_evaluate
from services.ml.data import dataset_read
from services.recommender import ranking
from services.registry.retrain import Example, training_file_write


class RetrainData(Protocol):
    """One task's data for one run: built from the task's files and its feedback up to `until`."""

    reference_texts: list[str]  # training texts the incoming data is compared with (embedding drift)
    train_labels: list[str]  # the base data's labels (label drift)

    def train_file(self, *, folder: Path) -> tuple[Path, int, dict[str, Any]]:
        """Write the training file into `folder`: (path, examples in it, TrainRequest overrides)."""

    def evaluate(self, *, version: AdapterVersion) -> dict[str, Any]:
        """The version's metrics on the task's fixed held-back set (same numbers for any version: comparable)."""


@dataclass
class ClassifierData:
    task: Task
    feedback: list[Example]
    reference_texts: list[str] = field(init=False)
    train_labels: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.base = dataset_read(path=self.task.retrain_data)
        self.held_back = dataset_read(path=self.task.retrain_eval)
        self.reference_texts, self.train_labels = self.base.texts, self.base.labels

    def train_file(self, *, folder: Path) -> tuple[Path, int, dict[str, Any]]:
        path, n = training_file_write(base_texts=self.base.texts, base_labels=self.base.labels, feedback=self.feedback,
                                      folder=folder)
        return path, n, {}

    def evaluate(self, *, version: AdapterVersion) -> dict[str, Any]:
        return artifact_evaluate(folder=version.path, texts=self.held_back.texts, labels=self.held_back.labels,
                                 base_path=version.base.path)


@dataclass
class RecommenderData:
    task: Task
    until: datetime
    k: int = field(default_factory=lambda: settings.RETRAIN_RECOMMENDER_K)
    reference_texts: list[str] = field(init=False)
    train_labels: list[str] = field(init=False)

    def __post_init__(self) -> None:
        from services.recommender.evaluation import Split, interactions_read, popularity_count, split_leave_last_out

        self.ids, self.texts = catalogue_live()
        if not self.ids:
            raise SuiteError("The catalogue is empty: import items before retraining the recommender.", field="items")
        rows_of = {external: row for row, external in enumerate(self.ids)}
        base = interactions_read(path=Path(self.task.retrain_data), rows_of=rows_of)
        history = histories_merge(base, events_history(rows_of=rows_of, until=self.until))
        held = interactions_read(path=Path(self.task.retrain_eval), rows_of=rows_of)
        self.split = split_leave_last_out(history=held)
        if not self.split.test:
            raise SuiteError(f"{self.task.retrain_eval}: no user with two distinct catalogue items to hold out.",
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
        from services.recommender.evaluation import pairs_make

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
        from services.recommender.evaluation import rankings_score

        vectors = artifact_embed(folder=version.path, texts=self.texts, base_path=version.base.path)  # (n_items, dim)
        scores = rankings_score(split=self.split, vectors=vectors, popularity=self.popularity, k=self.k)
        return {"ndcg_at_k": scores["ndcg"], "recall_at_k": scores["recall"], "hit_rate_at_k": scores["hit"],
                "k": self.k, "n": len(self.split.test)}


def catalogue_live() -> tuple[list[str], list[str]]:
    """(external ids, item texts) of the live catalogue, by pk."""
    from apps.recommender.models import Item
    from services.recommender.catalog import item_text

    rows = Item.objects.order_by("pk").values_list("external_id", "title", "description", "category", "tags")
    ids, texts = [], []
    for external, title, description, category, tags in rows.iterator():
        ids.append(external)
        texts.append(item_text(title=title, description=description, category=category, tags=tags or []))
    return ids, texts


def events_history(*, rows_of: dict[str, int], until: datetime) -> dict[str, list[ranking.Interaction]]:
    """user -> the interactions the shop sent (received up to `until`) with catalogue items, oldest first."""
    from apps.recommender.models import Event

    by_user: dict[str, list[ranking.Interaction]] = defaultdict(list)
    rows = (Event.objects.filter(received_at__lte=until).order_by("timestamp", "pk")
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


def retrain_data(*, task: Task, feedback: list[Example], until: datetime) -> RetrainData:
    """The task's data for a run (errors name the file or field at fault)."""
    if task.kind == Task.KIND_PAIRS:
        return RecommenderData(task=task, until=until)
    return ClassifierData(task=task, feedback=feedback)


def embed_for(task: str) -> tuple[Any, str]:
    """(embed function, encoder name) for drift: the task's champion, or the default base while it has none."""
    from services.errors import NotFound
    from services.registry.serving import texts_embed
    from services.registry.versions import version_get

    try:
        champion = version_get(task_name=task)
    except NotFound:
        return (lambda texts: np.asarray(texts_embed(task=None, texts=texts))), "base"
    return (lambda texts: np.asarray(texts_embed(task=task, texts=texts))), f"{task} v{champion.version}"
