"""Serve the registry's champions: one inference runtime (and micro-batcher) per base model per process.

Pages call `texts_classify` / `texts_embed` in-process; the Celery `inference` tasks call the same
functions, so both paths run the same code and give the same scores.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np
from django.conf import settings

from apps.registry.models import AdapterVersion
from services.ml.runtime import KIND_CLASSIFY, KIND_EMBED, AdapterRef, ClassifyOutput, InferenceRuntime, MicroBatcher
from services.registry.versions import base_default_ensure, version_get

# SUITE_RESOLVE_TTL_S, SUITE_BATCH_WAIT_MS and SUITE_BATCH_MAX are settings (config/settings.py validates them),
# read when a runtime is made, not at import: a bad value names its variable, and tests may override them.
_lock = threading.Lock()
_batchers: dict[str, MicroBatcher] = {}  # base model path -> its batcher (which holds its runtime)
_task_base: dict[str, tuple[str, float]] = {}  # task -> (base path of its champion, when looked up)


def champion_ref(task: str) -> AdapterRef:
    """The resolver the runtime asks: the task's champion as an AdapterRef."""
    version: AdapterVersion = version_get(task_name=task)
    return AdapterRef(task=task, version=version.version, path=version.path, sha256=version.sha256)


def _base_path_for(task: str | None) -> str:
    if task is None:
        return base_default_ensure().path
    now = time.monotonic()
    cached = _task_base.get(task)
    if cached and now - cached[1] < settings.SUITE_RESOLVE_TTL_S:
        return cached[0]
    path = version_get(task_name=task).base.path
    _task_base[task] = (path, now)
    return path


def batcher_get(*, task: str | None) -> MicroBatcher:
    """The process's micro-batcher for the base model that serves `task` (created on first use)."""
    base_path = _base_path_for(task)
    with _lock:
        batcher = _batchers.get(base_path)
        if batcher is None:
            max_batch = settings.SUITE_BATCH_MAX
            runtime = InferenceRuntime(base_path=base_path, resolver=champion_ref, resolve_ttl_s=settings.SUITE_RESOLVE_TTL_S,
                                       max_batch=max_batch)
            batcher = _batchers[base_path] = MicroBatcher(runtime=runtime, max_wait_ms=settings.SUITE_BATCH_WAIT_MS,
                                                          max_batch=max_batch)
        return batcher


def texts_classify(*, task: str, texts: Sequence[str]) -> ClassifyOutput:
    """Labels and probabilities from the task's champion (micro-batched with concurrent callers)."""
    return batcher_get(task=task).submit(task=task, texts=texts, kind=KIND_CLASSIFY).result()


def texts_embed(*, task: str | None, texts: Sequence[str]) -> np.ndarray:
    """L2-normalised embeddings from the task's champion adapter, or the default base when task is None."""
    return batcher_get(task=task).submit(task=task, texts=texts, kind=KIND_EMBED).result()


def serving_reset() -> None:
    """Drop every runtime of this process (tests; a worker after its registry folder moved)."""
    with _lock:
        for batcher in _batchers.values():
            batcher.close()
        _batchers.clear()
        _task_base.clear()


def serving_refresh(*, task: str | None = None) -> None:
    """Forget this process's cached champion of `task` (None: of every task): the next call asks the registry.

    Other processes pick a promotion up within SUITE_RESOLVE_TTL_S by themselves; the process that promoted calls this so
    that its own next call (e.g. re-embedding the catalogue right after) already uses the new champion.
    """
    with _lock:
        batchers = list(_batchers.values())
        if task is None:
            _task_base.clear()
        else:
            _task_base.pop(task, None)
    for batcher in batchers:
        batcher.runtime.refresh(task)
