"""Train a LoRA adapter from a data file and register it (the work behind `train_adapter` and retraining).

    python manage.py train_adapter --task sentiment --data news.csv
"""
from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apps.registry.models import Task
from services.ml.data import dataset_read, pairs_read
from services.ml.artifacts import artifact_save, artifact_sha256
from services.ml.training import ClassifierConfig, PairConfig, classifier_train, pairs_train
from services.registry.versions import base_get, staging_root, version_register


@dataclass(frozen=True)
class TrainRequest:
    task: str  # registry task name (sentiment, intent, recommender, or a new one)
    data: str  # CSV or JSONL file
    text_col: str = "text"  # classifier: the text column; pairs: the query column
    label_col: str = "label"  # classifier: the label column; pairs: the item column
    base: str | None = None  # base model name; None = the default base
    epochs: int | None = None  # overrides the config's epoch bound
    kind: str | None = None  # "classifier" or "pairs"; None = the task's kind (classifier for new tasks)
    peft: str | None = None  # "lora", "adalora" or "ia3" (services.ml.training.PEFT_METHODS); None = the champion's, else LoRA
    created_by: str = "pipeline:train_adapter"
    staging_prefix: str = ""  # the staged folder's name prefix (default "<task>-"); lets a retrain run find what a killed run left
    config: dict[str, Any] | None = None  # training config fields a task's plug-in chooses (e.g. the recommender's pair budget)
    champion_if_first: bool = True  # False: a first version stays challenger until its run's baseline gate passes


def _champion_peft(task: Task | None) -> str | None:
    """The PEFT method of the task's champion (a retrain keeps an IA3 or AdaLoRA task on its method), None without one."""
    from services.errors import NotFound
    from services.registry.versions import version_get

    if task is None:
        return None
    try:
        champion = version_get(task_name=task.name)
    except NotFound:
        return None
    return (champion.train_config or {}).get("peft") or None


def _plugin_kind(task: str) -> str:
    """The kind of a task not registered yet: its retraining plug-in's (`retrieval`, `recommender` are pairs), else
    classifier."""
    from services.registry.retraining import retrainers

    plugin = retrainers().get(task)
    return plugin.kind if plugin is not None else Task.KIND_CLASSIFIER


def adapter_train(request: TrainRequest, *, progress: bool = True,
                  on_step: Callable[[int, int], None] | None = None,
                  on_registering: Callable[[], None] | None = None,
                  on_staged: Callable[[Path, str], dict[str, Any] | None] | None = None) -> dict[str, Any]:
    """Read, train, save, register; return the summary the command prints.

    1. Read the data file (errors name the file and line; nothing is registered on error).
    2. Train on the task's base model with the default config (seeded, early stopping).
    3. Save the artifact into a staging folder; `on_staged(folder, base path)` may add files of the task's own
       (the recommender's ranker), which the artifact's sha256 then covers like the adapter's, and returns metrics
       the version records beside the trainer's.
    4. Register it: a new version, `challenger`, and `champion` when it is the task's first.
    """
    started = time.monotonic()
    existing = Task.objects.filter(name=request.task).first()
    kind = request.kind or (existing.kind if existing else _plugin_kind(request.task))
    base = base_get(name=request.base)
    overrides: dict[str, Any] = dict(request.config or {})
    if request.epochs:
        overrides["epochs"] = request.epochs
    peft = request.peft or _champion_peft(existing)
    if peft:
        overrides["peft"] = peft
    if kind == Task.KIND_PAIRS:
        data = pairs_read(path=request.data, query_col=request.text_col, item_col=request.label_col)
        result = pairs_train(base_path=base.path, queries=data.queries, items=data.items,
                             config=PairConfig(**overrides), progress=progress, on_step=on_step)
    else:
        data = dataset_read(path=request.data, text_col=request.text_col, label_col=request.label_col)
        result = classifier_train(base_path=base.path, texts=data.texts, labels=data.labels,
                                  config=ClassifierConfig(**overrides), progress=progress, on_step=on_step)
    if on_registering is not None:
        on_registering()
    staging = staging_root()
    staging.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=request.staging_prefix or f"{request.task}-", dir=staging))
    try:
        sha = artifact_save(result=result, folder=staged, source=Path(request.data).name, base_name=base.name,
                            base_location=base.location)
        metrics = dict(result.metrics)
        if on_staged is not None:
            metrics.update(on_staged(staged, base.path) or {})
            sha = artifact_sha256(staged)
        version = version_register(  # copies the data file into the registry: the row records that copy, not request.data
            task_name=request.task, kind=kind, base=base, staged_dir=staged, sha256=sha, metrics=metrics,
            label_map=result.label_names, train_config=result.config.as_dict(), data_fingerprint=result.fingerprint,
            data_source=request.data, created_by=request.created_by, champion_if_first=request.champion_if_first,
        )
    finally:
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)
    return {
        "task": request.task,
        "version": version.version,
        "kind": kind,
        "accuracy": metrics.get("accuracy"),
        "macro_f1": metrics.get("macro_f1"),
        **{k: v for k, v in metrics.items() if k not in {"accuracy", "macro_f1"}},
        "n_train": metrics.get("n_train"),
        "n_val": metrics.get("n_val"),
        "seconds": round(time.monotonic() - started, 2),
        "champion": version.aliases.filter(name="champion").exists(),
    }
