"""Retraining plug-ins of the support desk: `intent` (labelled feedback), `rerank` and `retrieval` (the KBs' material
+ feedback)."""
from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.registry.models import AdapterVersion, Task
from apps.support.models import Message, TrainingExample
from services.errors import SuiteError
from services.registry.retraining import (INCOMING_MAX, ClassifierRetrainer, Example, RetrainData, Retrainer,
                                          training_file_write)


def _customer_messages(since: datetime | None) -> list[str]:
    rows = Message.objects.filter(sender=Message.CUSTOMER)
    rows = rows.filter(created_at__gt=since) if since else rows
    return list(rows.order_by("-created_at").values_list("text", flat=True)[:INCOMING_MAX])


class IntentRetrainer(ClassifierRetrainer):
    name = "intent"

    def feedback(self) -> list[Example]:
        rows = TrainingExample.objects.filter(task="intent").exclude(label="").order_by("created_at", "id")
        return [Example(r.text, r.label, r.source, r.created_at) for r in rows]

    def incoming(self, since: datetime | None) -> list[str]:
        return _customer_messages(since)


class RerankData:
    """The `rerank` run's data, built from the database (no files): every KB's material pairs, split by query into
    training and held-back parts (services/support/rerank.py `material_split`), plus the feedback pairs.

    Feedback is judged on as well as trained on: the pairs of a customer's question that the hash rule holds back
    (`feedback_held_back`, the rule `retrieval` uses too) or that is a held-back material query join the held-back
    part, so the gate also reads how a version orders what customers really asked (a pick among offered answers, an
    answer marked wrong beside one marked right); the other feedback pairs are trained on. The held-back part is the
    same for the challenger and the champion of a run (both are judged on it); it follows the knowledge bases and the
    feedback, so a KB edit or new feedback changes it for later runs.
    """

    def __init__(self, *, feedback: list[Example]) -> None:
        from services.support.rerank import PairExample, feedback_held_back, material_pairs, material_split

        max_pairs = settings.SUPPORT_RERANK_MAX_PAIRS
        train, held = material_split(material_pairs(max_pairs=max_pairs), max_pairs=max_pairs)
        held_queries, held_texts = {p.query for p in held}, {p.text for p in held}
        trained: list[Example] = []
        self.n_held_feedback = 0  # feedback pairs in the held-back part
        for example in feedback:
            if example.text in held_texts:  # a held-back pair already (a customer asking an FAQ's exact question)
                continue
            if isinstance(example, PairExample) and (example.query in held_queries or feedback_held_back(example.query)):
                held.append(example.as_pair())
                held_texts.add(example.text)
                self.n_held_feedback += 1
            else:
                trained.append(example)
        self.base_texts, self.base_labels = [p.text for p in train], [p.label for p in train]
        self.held_texts, self.held_labels = [p.text for p in held], [p.label for p in held]
        self.feedback = trained[-max_pairs:]  # the newest: the gate judges on pairs no version trained on
        self.held_queries = [p.query for p in held]
        self._held = held
        self._retrieval: dict[str, float] | None = None
        self.reference_texts = sorted({p.query for p in train})  # what customers' questions are compared with
        self.train_labels = self.base_labels
        self.skipped: list[str] = []

    def train_file(self, *, folder: Path) -> tuple[Path, int, dict[str, Any]]:
        # Refused here, not when the data is built: a run with too few new examples (every hourly tick before the
        # desk has material) is skipped without failing.
        if not self.held_texts:
            raise SuiteError("No knowledge base has material to train and judge the rerank task on (import FAQ entries "
                             "or documents first).", field="task")
        path, n = training_file_write(base_texts=self.base_texts, base_labels=self.base_labels, feedback=self.feedback,
                                      folder=folder)
        return path, n, {}

    def evaluate(self, *, version: AdapterVersion) -> dict[str, Any]:
        """The classifier's numbers (accuracy, macro-F1, calibration) and, what the gate reads, how its P(relevant)
        orders each held-back query's candidates (`mrr`, `top1`)."""
        from services.ml.artifacts import artifact_evaluate
        from services.support.rerank import RELEVANT, ranking_metrics

        rows: list[dict[str, Any]] = []
        metrics = artifact_evaluate(folder=version.path, texts=self.held_texts, labels=self.held_labels,
                                    base_path=version.base.path, predictions=rows)
        # Two labels: P(relevant) is the predicted label's probability, or its complement.
        relevance = [r["probability"] if r["predicted"] == RELEVANT else 1.0 - r["probability"] for r in rows]
        return {**metrics, **ranking_metrics(queries=self.held_queries, labels=self.held_labels, relevance=relevance),
                **self._retrieval_baseline(), "n_held_back_feedback_pairs": self.n_held_feedback}

    def _retrieval_baseline(self) -> dict[str, float]:
        """`retrieval_mrr` / `retrieval_top1`: the same held-back candidates ordered by retrieval confidence alone
        (the same for every version: what a version must beat to help the ranking stage)."""
        from services.support.rerank import ranking_metrics, retrieval_relevance

        if self._retrieval is None:
            found = ranking_metrics(queries=self.held_queries, labels=self.held_labels,
                                    relevance=retrieval_relevance(self._held))
            self._retrieval = {"retrieval_mrr": found["mrr"], "retrieval_top1": found["top1"]}
        return self._retrieval


class RerankRetrainer(ClassifierRetrainer):
    """The ranking stage's cross-encoder: trained from the knowledge bases themselves, so it needs no data files;
    feedback pairs (picks, answers marked wrong, answered knowledge gaps) count as its new examples."""

    name = "rerank"
    data_files = False
    # Gated on how it orders the held-back queries' candidates (what serving uses), not on thresholded labels: with
    # ~4 irrelevant pairs per relevant one, accuracy and macro-F1 mostly measure the 0.5 cut-off, so no guard.
    gate_metric = "mrr"
    gate_guard_metric = ""
    # Its score is added to retrieval's, which already ranks well alone: a version is served only when its P(relevant)
    # orders the held-back candidates better than retrieval confidence does (first version included), else answering
    # would pay a cross-encoder pass per candidate for a worse order.
    baseline_gate = True
    baseline_metrics = ("mrr", "retrieval_mrr")
    baseline_name = "retrieval alone"
    baseline_otherwise = "the ranking stage goes on without the cross-encoder"

    def feedback(self) -> list[Example]:
        from services.support.rerank import feedback_examples

        return feedback_examples()

    def incoming(self, since: datetime | None) -> list[str]:
        return _customer_messages(since)

    def data(self, *, task_row: Task, feedback: list[Example], until: datetime) -> RetrainData:
        return RerankData(feedback=feedback)


class RetrievalData:
    """The `retrieval` run's data, built from the database (no files): positive (query, item text) pairs of every KB's
    material and the relevant feedback pairs, split by query into training and held-back parts
    (services/support/retrieval_task.py `retrieval_split`); judged by dense search over each KB's items."""

    def __init__(self, *, feedback: list[Example] | None = None, until: datetime | None = None) -> None:
        """`feedback`: the relevant feedback examples (`relevant_examples`, read here when None), up to `until`."""
        from services.support.retrieval_task import held_back_candidates, relevant_examples, retrieval_split

        feedback = relevant_examples() if feedback is None else feedback
        feedback = [e for e in feedback if until is None or e.created_at <= until]  # the run's examples
        self.train, self.held = retrieval_split(feedback=feedback, max_pairs=settings.SUPPORT_RERANK_MAX_PAIRS)
        self.candidates = held_back_candidates(self.held)
        self.reference_texts = sorted({p.query for p in self.train})  # what customers' questions are compared with
        self.train_labels = [str(p.item_id) for p in self.train]  # label drift: which items are asked about
        self.skipped: list[str] = []
        self._base: dict[str, dict[str, Any]] = {}  # base path -> the untuned base's figures (the same every version)

    def train_file(self, *, folder: Path) -> tuple[Path, int, dict[str, Any]]:
        # Refused here, not when the data is built: an hourly tick before the desk has material is skipped, not failed.
        if not self.held or len(self.train) < 4:
            raise SuiteError("Too little knowledge base material to tune the retrieval encoder on and judge it by "
                             f"({len(self.train)} training pairs, {len(self.held)} held back): import documents with "
                             "titled sections, or collect customer feedback first.", field="task")
        path = folder / "pairs.csv"
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["query", "item"])
            writer.writerows((p.query, p.text) for p in self.train)
        return path, len(self.train), {"text_col": "query", "label_col": "item", "kind": Task.KIND_PAIRS}

    def evaluate(self, *, version: AdapterVersion) -> dict[str, Any]:
        """`mrr_at_10` / `recall_at_10` of dense search by the version over each held-back query's KB items, and the
        untuned base's `base_mrr_at_10` / `base_recall_at_10` on the same queries (what the baseline gate reads)."""
        from services.ml.artifacts import artifact_runtime
        from services.support.retrieval_task import dense_metrics

        runtime = artifact_runtime(folder=version.path, base_path=version.base.path)
        tuned = dense_metrics(embed=lambda texts: runtime.embed(task="evaluate", texts=texts), held=self.held,
                              candidates=self.candidates)
        return {**tuned, **self._base_figures(runtime=runtime, key=str(version.base.path)),
                "n_held_back_pairs": len(self.held)}

    def _base_figures(self, *, runtime: Any, key: str) -> dict[str, Any]:
        """The untuned base encoder's `base_mrr_at_10` / `base_recall_at_10` (computed once per base: the same for
        every version of the run)."""
        from services.support.retrieval_task import dense_metrics

        if key not in self._base:
            base = dense_metrics(embed=lambda texts: runtime.embed(task=None, texts=texts), held=self.held,
                                 candidates=self.candidates)
            self._base[key] = {f"base_{k}": v for k, v in base.items() if k != "n_queries"}
        return self._base[key]


class RetrievalRetrainer(Retrainer):
    """The `retrieval` bi-encoder: a pairs adapter tuned on the knowledge bases' material and the relevant feedback
    pairs; a KB whose `embed_task` names it is embedded (items and questions) by its champion."""

    name = "retrieval"
    kind = Task.KIND_PAIRS
    data_files = False
    gate_metric = "mrr_at_10"
    gate_guard_metric = "recall_at_10"
    # A champion re-embeds every KB that chose it: a version is served only when its dense search ranks the held-back
    # queries' items better than the untuned base encoder does (first version included).
    baseline_gate = True
    baseline_metrics = ("mrr_at_10", "base_mrr_at_10")
    baseline_name = "the untuned base encoder"
    baseline_otherwise = "knowledge bases keep their vectors"

    def feedback(self) -> list[Example]:
        """The relevant feedback pairs: the customer's question, the item id as its "label"."""
        from services.support.retrieval_task import relevant_examples

        return relevant_examples()

    def incoming(self, since: datetime | None) -> list[str]:
        return _customer_messages(since)

    def data(self, *, task_row: Task, feedback: list[Example], until: datetime) -> RetrainData:
        return RetrievalData(feedback=feedback, until=until)  # the feedback the run read: not read a second time
