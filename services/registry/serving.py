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
from django.db import connection

from apps.registry.models import AdapterVersion
from services.ml.runtime import KIND_CLASSIFY, KIND_EMBED, AdapterRef, ClassifyOutput, InferenceRuntime, MicroBatcher
from services.errors import SuiteError
from services.registry.versions import base_default_ensure, base_get, version_get

# SUITE_RESOLVE_TTL_S, SUITE_BATCH_WAIT_MS, SUITE_BATCH_MAX and SUITE_MERGED_TASKS are settings (config/settings.py validates them),
# read when a runtime is made, not at import: a bad value names its variable, and tests may override them.
_lock = threading.Lock()
_batchers: dict[str, MicroBatcher] = {}  # base model path -> its batcher (which holds its runtime)
_task_base: dict[str, tuple[str, float]] = {}  # task -> (base path of its champion, when looked up)


def champion_ref(task: str) -> AdapterRef:
    """The resolver the runtime asks: the task's champion as an AdapterRef."""
    return version_ref(version_get(task_name=task))


def version_ref(version: AdapterVersion) -> AdapterRef:
    """One registered version as the runtime loads it."""
    return AdapterRef(task=version.task.name, version=version.version, path=version.path, sha256=version.sha256)


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
    return _batcher_for(_base_path_for(task))


def _thread_connection_close() -> None:
    """Close the calling thread's DB connection (a batcher's resolver opened it on that thread)."""
    connection.close()  # looked up when called: `connection` is the calling thread's


def _batcher_for(base_path: str) -> MicroBatcher:
    with _lock:
        batcher = _batchers.get(base_path)
        if batcher is None:
            max_batch = settings.SUITE_BATCH_MAX
            runtime = InferenceRuntime(base_path=base_path, resolver=champion_ref, resolve_ttl_s=settings.SUITE_RESOLVE_TTL_S,
                                       max_batch=max_batch, merged_tasks=settings.SUITE_MERGED_TASKS)
            batcher = _batchers[base_path] = MicroBatcher(runtime=runtime, max_wait_ms=settings.SUITE_BATCH_WAIT_MS,
                                                          max_batch=max_batch, on_exit=_thread_connection_close,
                                                          after_group=_thread_connection_close)
        return batcher


def texts_classify(*, task: str, texts: Sequence[str]) -> ClassifyOutput:
    """Labels and probabilities from the task's champion (micro-batched with concurrent callers)."""
    return batcher_get(task=task).submit(task=task, texts=texts, kind=KIND_CLASSIFY).result()


def texts_embed(*, task: str | None, texts: Sequence[str]) -> np.ndarray:
    """L2-normalised embeddings from the task's champion adapter, or the default base when task is None."""
    return batcher_get(task=task).submit(task=task, texts=texts, kind=KIND_EMBED).result()


def texts_embed_pinned(*, name: str, sha256: str, texts: Sequence[str]) -> np.ndarray:
    """L2-normalised embeddings by exactly the encoder an EncoderTag names: `<task>:v<N>` or `base:<name>`.

    Not "the champion now": the shared vector store compares queries with vectors made by one encoder version, so
    both are embedded by that version until the space switches (services/vectors/store.py). `sha256` must match
    the registered version's (or base's) hash: a version re-registered under the same number is refused.
    """
    if name.startswith("base:"):
        base = base_get(name=name.removeprefix("base:"))
        if sha256 not in (base.sha256, base.path):
            raise SuiteError(f"Base encoder {base.name!r} changed since its vectors were made (hash differs).", field="encoder")
        return _batcher_for(base.path).runtime.embed(task=None, texts=texts)
    task, sep, number = name.rpartition(":v")
    if not sep or not task or not number.isdigit():
        raise SuiteError(f"Encoder {name!r} is neither `<task>:v<N>` nor `base:<name>`.", field="encoder")
    version = version_get(task_name=task, version=int(number))
    if version.sha256 != sha256:
        raise SuiteError(f"Encoder {name!r} is registered with another hash than its vectors were made with.", field="encoder")
    return _batcher_for(version.base.path).runtime.embed_ref(ref=version_ref(version), texts=texts)


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
