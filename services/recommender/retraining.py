"""Retraining plug-in of the `recommender` task (pairs): the shop's events are its feedback and its traffic.

Base data and held-back set are interaction files (user_id,item_id,event,timestamp) over the live catalogue; the
events the shop sent are added to the base histories; training pairs are each interaction's item text → the
user's next distinct item's text; judged, like `recommender_eval`, by ranking each held-back user's last item
among all items (ndcg/recall/hit rate at k) with the serving code's profile. On promotion the new champion becomes
the pending encoder of the vector space "recommender" and a worker re-embeds the catalogue beside the old vectors
(services/vectors/store.py); requests keep the old ones until the new are complete, never embedding themselves.

The learned ranker is part of the version (issue 17):
1. Before registration (`artifact_extend`), the catalogue is embedded with the staged adapter and the LambdaRank
   ranker is trained on the time split of the training histories with those vectors as its text feature
   (services/recommender/learned.py ranker_fit); it is saved in the artifact's `ranker/` folder (model.txt,
   ranker.json), which the artifact's sha256 covers, when its validation ndcg is at least the old formula's on the
   same users (otherwise the version has no ranker and serves the formula). Items the shop's users were shown
   (recorded impressions) and then ignored are the negatives its training keeps first.
2. `evaluate` also ranks each held-back user's merged candidates (sources fitted on the training histories and the
   held-back users' earlier items) the way serving would with that version: its ranker, or the formula without one:
   `ranker_ndcg_at_k`, `ranker_recall_at_k`, `ranker_hit_rate_at_k`, `ranker` (1: the version has a ranker).
3. The gate also asks `ranker_ndcg_at_k` to beat or match the champion's on the same held-back users (`gates_also`).
"""
from __future__ import annotations

import csv
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings

from apps.recommender.models import Event, Item
from apps.registry.models import AdapterVersion, Task
from services.errors import SuiteError
from services.recommender import ranking
from services.recommender.catalog import item_text
from services.recommender.evaluation import (RETRAIN_PAIRS, Split, interactions_read, pairs_make, popularity_count,
                                             rankings_score, split_leave_last_out)
from services.registry.gate import GatePolicy
from services.registry.retraining import INCOMING_MAX, Example, RetrainData, Retrainer


class RecommenderRetrainer(Retrainer):
    name = "recommender"
    kind = Task.KIND_PAIRS
    gate_metric = "ndcg_at_k"  # gated on its ranking metric rather than the classifiers' macro-F1
    gate_guard_metric = "recall_at_k"
    # The version's ranker (or the formula, when it has none) ranks the held-back users' candidates at least as well
    # as the champion's: the same rule as the other gates (services/registry/gate.py), on the same users.
    gates_also = (GatePolicy(metric="ranker_ndcg_at_k", min_gain=0.0, guard_metric=""),)

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
        self.ids, self.texts, self.meta = catalogue_live(meta=True)
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
        self._vectors: dict[str, np.ndarray] = {}  # artifact sha256 -> its item vectors (the staged one's, reused)
        self._served_model: Any = None  # the sources the held-back users' candidates come from (fitted once)
        self.ranker_info: dict[str, Any] = {}  # what artifact_extend did: seconds, note, the ranker's own metrics
        from services.recommender.impressions import impressions_shown

        self.shown = impressions_shown(key_of=rows_of, until=until)  # shown-and-ignored items: the ranker's negatives

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
        return path, len(queries), {"text_col": "query", "label_col": "item", "kind": Task.KIND_PAIRS,
                                    "config": dict(RETRAIN_PAIRS)}

    def artifact_extend(self, folder: Path, base_path: str) -> dict[str, Any]:
        """Train the ranker on the staged adapter's item vectors and save it into the artifact (`ranker/`).

        Returns the metrics the version records about it (`ranker`: 1 when saved, its validation ndcg, seconds).
        """
        from services.ml.artifacts import artifact_embed, artifact_sha256
        from services.recommender.learned import RANKER_DIR, MatrixText, RankerConfig, ranker_fit

        started = time.monotonic()
        vectors = artifact_embed(folder=folder, texts=self.texts, base_path=base_path)  # (n_items, dim)
        embedded = time.monotonic()
        ranker, note = None, ""
        try:
            ranker = ranker_fit(histories=self.training.train, keys=range(len(self.ids)), text=MatrixText(vectors),
                                meta_of=self.meta.meta_of, created=self.meta.created, sources=self.sources(),
                                config=RankerConfig(k=self.k), shown=self.shown)
        except SuiteError as exc:  # too little data to learn from: the version serves the formula
            note = exc.message
        if ranker is not None and ranker.metrics["ndcg_at_k"] < ranker.metrics["formula_ndcg_at_k"]:
            note = (f"not kept: validation ndcg {ranker.metrics['ndcg_at_k']} below the formula's "
                    f"{ranker.metrics['formula_ndcg_at_k']}")
            ranker = None
        if ranker is not None:
            ranker.save(folder / RANKER_DIR)
        self.ranker_info = {"seconds_embed": round(embedded - started, 2),
                            "seconds_ranker": round(time.monotonic() - embedded, 2), "note": note,
                            "metrics": ranker.metrics if ranker is not None else {}}
        self._vectors[artifact_sha256(folder)] = vectors  # what the registered version will hash to: evaluate reuses it
        out: dict[str, Any] = {"ranker": int(ranker is not None), "seconds_ranker": self.ranker_info["seconds_ranker"]}
        if ranker is not None:
            out.update(ranker_valid_ndcg_at_k=ranker.metrics["ndcg_at_k"],
                       ranker_valid_formula_ndcg_at_k=ranker.metrics["formula_ndcg_at_k"],
                       ranker_shown_negatives=ranker.metrics["n_shown_negatives"])
        return out

    def sources(self) -> Any:
        from services.recommender.behaviour import SourceConfig

        return SourceConfig(per_source=max(SourceConfig().per_source, self.k))

    def evaluate(self, *, version: AdapterVersion) -> dict[str, Any]:
        from services.ml.artifacts import artifact_embed

        vectors = self._vectors.get(version.sha256)
        if vectors is None:
            vectors = artifact_embed(folder=version.path, texts=self.texts, base_path=version.base.path)  # (n_items, dim)
        scores = rankings_score(split=self.split, vectors=vectors, popularity=self.popularity, k=self.k)
        out = {"ndcg_at_k": scores["ndcg"], "recall_at_k": scores["recall"], "hit_rate_at_k": scores["hit"],
               "k": self.k, "n": len(self.split.test)}
        out.update(self.served_score(version=version, vectors=vectors))
        return out

    def served_score(self, *, version: AdapterVersion, vectors: np.ndarray) -> dict[str, Any]:
        """The held-back users' merged candidates ranked as serving ranks them with `version` (its ranker, else the
        formula): ranker_{ndcg,recall,hit_rate}_at_k, and `ranker` 1/0."""
        from services.recommender.behaviour import behaviour_fit
        from services.recommender.learned import (MatrixText, blas_single, rank_candidates, user_candidates,
                                                  version_ranker_load)

        ranker = version_ranker_load(Path(version.path))
        sources = self.sources()
        if self._served_model is None:
            self._served_model = behaviour_fit(histories=histories_merge(self.training.train, self.split.train),
                                               keys=range(len(self.ids)), created=self.meta.created, config=sources)
        model, text = self._served_model, MatrixText(vectors)
        ndcg, recall = [], []
        with blas_single():
            for user, target in self.split.test.items():
                rows = self.split.train[user]
                scored = user_candidates(model=model, history=rows, text=text, meta_of=self.meta.meta_of,
                                         now=model.reference, exclude={r.item for r in rows}, config=sources)
                score = rank_candidates(scored=scored, ranker=ranker)
                order = np.lexsort((scored.keys, -score))[:self.k]  # best first, ties by row
                ranked = [int(i) for i in scored.keys[order]]
                ndcg.append(ranking.ndcg_at_k(ranked=ranked, relevant={target}, k=self.k))
                recall.append(ranking.recall_at_k(ranked=ranked, relevant={target}, k=self.k))
        n = max(len(ndcg), 1)
        return {"ranker_ndcg_at_k": round(sum(ndcg) / n, 5), "ranker_recall_at_k": round(sum(recall) / n, 5),
                "ranker_hit_rate_at_k": round(sum(r > 0 for r in recall) / n, 5), "ranker": int(ranker is not None)}


class CatalogueMeta:
    """The ranker's item fields over catalogue rows (row = position by pk, as catalogue_live orders them)."""

    def __init__(self, rows: list[tuple[str, float | None, bool, float]]) -> None:
        from services.recommender.behaviour import meta_from_arrays

        self.created = np.array([r[3] for r in rows], dtype=np.float64)  # (n,) seconds
        self.meta_of = meta_from_arrays(categories=[r[0] for r in rows],
                                        prices=np.array([np.nan if r[1] is None else r[1] for r in rows], dtype=np.float64),
                                        in_stock=np.array([r[2] for r in rows], dtype=np.float32), created=self.created)


def catalogue_live(*, meta: bool = False) -> Any:
    """(external ids, item texts) of the live catalogue, by pk; with `meta`, also its CatalogueMeta."""
    rows = Item.objects.order_by("pk").values_list("external_id", "title", "description", "category", "tags", "price",
                                                   "in_stock", "created_at")
    ids, texts, fields = [], [], []
    for external, title, description, category, tags, price, in_stock, created in rows.iterator():
        ids.append(external)
        texts.append(item_text(title=title, description=description, category=category, tags=tags or []))
        fields.append((category or "", price, bool(in_stock), created.timestamp() if created else np.nan))
    return (ids, texts, CatalogueMeta(fields)) if meta else (ids, texts)


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
