"""Retraining plug-ins: one small base class (`Retrainer`), one subclass per retrainable task, in its product's room.

A plug-in says, for its task: what the feedback is, what the model saw in production (for drift), how the
training file and the held-back evaluation are built, and what happens on promotion. The run itself
(pipelines/retrain.py) is the same loop for every task. Plug-ins are listed in one place, the RETRAIN_PLUGINS
setting (dotted paths, imported lazily), the way AUTHENTICATION_BACKENDS are:

    RETRAIN_PLUGINS = ["services.<app>.retraining.<Task>Retrainer", ...]

`ClassifierRetrainer` holds what every text classifier shares (base `text,label` file plus feedback, accuracy and
macro-F1 on the held-back file); a classifier task's plug-in only names its feedback and its incoming texts.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from apps.registry.models import AdapterVersion, Task
from services.errors import SuiteError
from services.registry.gate import GatePolicy
from services.registry.versions import task_ensure

INCOMING_MAX = 2000  # newest incoming texts a plug-in returns for drift


@dataclass(frozen=True)
class Example:
    text: str
    label: str
    source: str  # who or what gave it ("analyst:ann", "agent_marked_wrong", ...)
    created_at: datetime


class RetrainData(Protocol):
    """One task's data for one run: built from the task's files and its feedback up to `until`."""

    reference_texts: list[str]  # training texts the incoming data is compared with (embedding drift)
    train_labels: list[str]  # the base data's labels (label drift)
    skipped: list[str]  # rows of the task's files left out ("file:line: reason"); the run records and reports them

    def train_file(self, *, folder: Path) -> tuple[Path, int, dict[str, Any]]:
        """Write the training file into `folder`: (path, examples in it, TrainRequest overrides)."""

    def evaluate(self, *, version: AdapterVersion) -> dict[str, Any]:
        """The version's metrics on the task's fixed held-back set (same numbers for any version: comparable)."""

    # Optional: `artifact_extend(folder, base_path)` adds files of the task's own to the staged artifact before it is
    # hashed and registered (the recommender's LightGBM ranker); the run calls it when the data object has it.


class Retrainer:
    """What one retrainable task contributes to the retraining loop; subclass it in the product's services room."""

    name: ClassVar[str] = ""  # the registry task name; also the beat schedule's `retrain <name>`
    kind: ClassVar[str] = Task.KIND_CLASSIFIER
    gate_metric: ClassVar[str | None] = None  # None: the Task model's default gate (macro_f1, guarded by accuracy)
    gate_guard_metric: ClassVar[str | None] = None
    # Further gates on the same held-back metrics (GatePolicy from services/registry/gate.py), all of which must pass
    # too: a task whose version carries more than the adapter (the recommender's ranker) gates that part as well.
    gates_also: ClassVar[tuple[GatePolicy, ...]] = ()
    # Whether a run needs the task's base data and held-back files (`retrain --base-data --held-back`); a plug-in that
    # builds both from the database (support's `rerank`, from the knowledge bases) says False.
    data_files: ClassVar[bool] = True
    # True: every version must also beat a baseline the plug-in measures in its held-back metrics (`baseline_refusal`)
    # before it is served, the first one included (registered as challenger only; promoted by the run when it passes).
    # For a signal added to something that already works alone (support's `rerank` on top of retrieval), where a
    # first version that is worse than going without it must not be served.
    baseline_gate: ClassVar[bool] = False
    # The default baseline_refusal: held-back metric `baseline_metrics[0]` must beat `baseline_metrics[1]` (what the
    # baseline scored on the same queries), named `baseline_name` in the refusal, which ends with `baseline_otherwise`.
    baseline_metrics: ClassVar[tuple[str, str] | None] = None
    baseline_name: ClassVar[str] = "the baseline"
    baseline_otherwise: ClassVar[str] = "the version is not served"

    def task_ensure(self) -> Task:
        """The task's row, created on first use; the plug-in's gate replaces the model default, not an admin's edit."""
        task = task_ensure(name=self.name, kind=self.kind)
        if self.gate_metric and task.gate_metric == Task._meta.get_field("gate_metric").default:
            fields = {"gate_metric": self.gate_metric}
            if self.gate_guard_metric is not None:
                fields["gate_guard_metric"] = self.gate_guard_metric
            Task.objects.filter(pk=task.pk).update(**fields)
            task.refresh_from_db()
        return task

    def feedback(self) -> list[Example]:
        """Every feedback example of the task, oldest first (counted as new by `created_at`)."""
        raise NotImplementedError

    def incoming(self, since: datetime | None) -> list[str]:
        """What the task's model saw in production since `since` (all when None), newest first, at most INCOMING_MAX."""
        raise NotImplementedError

    def data(self, *, task_row: Task, feedback: list[Example], until: datetime) -> RetrainData:
        """The run's training file, held-back evaluation and drift references (errors name the file or field)."""
        raise NotImplementedError

    def promoted(self, *, task_row: Task) -> None:
        """Called in the promoting process after the new champion is served there; by default nothing more."""

    def baseline_refusal(self, metrics: dict[str, Any]) -> str:
        """With `baseline_gate`: why a version with these held-back metrics must not be served ("" when it may)."""
        if self.baseline_metrics is None:
            return ""
        ours, theirs = self.baseline_metrics
        value, baseline = metrics.get(ours), metrics.get(theirs)
        if value is None or baseline is None:
            return f"the held-back evaluation has no {ours} or {theirs} to compare"
        if float(value) <= float(baseline):
            return (f"{ours} {float(value):.4f} does not beat {self.baseline_name} ({float(baseline):.4f}) on the held-back "
                    f"queries; {self.baseline_otherwise}")
        return ""


# --- text classifiers: the shared part -------------------------------------------------------------------

def training_file_write(*, base_texts: list[str], base_labels: list[str], feedback: list[Example],
                        folder: Path) -> tuple[Path, int]:
    """Base data plus feedback as one `text,label` CSV; a relabelled text keeps only its newest label."""
    rows: dict[str, str] = dict(zip(base_texts, base_labels))
    for example in feedback:
        rows[example.text] = example.label
    path = folder / "retrain.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows.items())
    return path, len(rows)


class ClassifierData:
    """Base `text,label` file plus the feedback (newest label of a text wins); judged by accuracy and macro-F1."""

    def __init__(self, *, task: Task, feedback: list[Example]) -> None:
        from services.ml.data import dataset_read
        from services.registry.paths import data_file_path

        self.task, self.feedback = task, feedback
        self.base = dataset_read(path=data_file_path(task.retrain_data_file, field="retrain_data"))
        self.held_back = dataset_read(path=data_file_path(task.retrain_eval_file, field="retrain_eval"))
        self.reference_texts, self.train_labels = self.base.texts, self.base.labels
        self.skipped: list[str] = []  # read with the STOP policy: a bad row fails the run, naming it, so none is skipped

    def train_file(self, *, folder: Path) -> tuple[Path, int, dict[str, Any]]:
        path, n = training_file_write(base_texts=self.base.texts, base_labels=self.base.labels, feedback=self.feedback,
                                      folder=folder)
        return path, n, {}

    def evaluate(self, *, version: AdapterVersion) -> dict[str, Any]:
        from services.ml.artifacts import artifact_evaluate

        return artifact_evaluate(folder=version.path, texts=self.held_back.texts, labels=self.held_back.labels,
                                 base_path=version.base.path)


class ClassifierRetrainer(Retrainer):
    """A text classifier task: a subclass names the task and writes `feedback` and `incoming`."""

    kind = Task.KIND_CLASSIFIER

    def data(self, *, task_row: Task, feedback: list[Example], until: datetime) -> RetrainData:
        return ClassifierData(task=task_row, feedback=feedback)


# --- the registered plug-ins -----------------------------------------------------------------------------

def retrainers() -> dict[str, Retrainer]:
    """name -> plug-in, in RETRAIN_PLUGINS order; a bad entry raises ImproperlyConfigured naming RETRAIN_PLUGINS.

    Read on every call (cheap once imported) so that a changed setting (a test's override) is seen at once.
    """
    found: dict[str, Retrainer] = {}
    for path in settings.RETRAIN_PLUGINS:
        try:
            cls = import_string(path)
        except ImportError as exc:
            raise ImproperlyConfigured(f"RETRAIN_PLUGINS: cannot import {path!r}: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, Retrainer)) or not cls.name:
            raise ImproperlyConfigured(f"RETRAIN_PLUGINS: {path!r} is not a Retrainer subclass with a task name.")
        if cls.name in found:
            raise ImproperlyConfigured(f"RETRAIN_PLUGINS: two plug-ins retrain task {cls.name!r}.")
        found[cls.name] = cls()
    return found


def retrainer_get(name: str) -> Retrainer:
    """The plug-in of task `name`; SuiteError (field `task`) naming the retrainable tasks when it has none."""
    plugins = retrainers()
    if name not in plugins:
        raise SuiteError(f"Task {name!r} has no feedback source to retrain from (retrainable: {', '.join(plugins)}).",
                         field="task")
    return plugins[name]
