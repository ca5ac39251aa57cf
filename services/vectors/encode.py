"""Text vectors for a task: the task's champion adapter, else the default base; or exactly one encoder version.

This is the one place that decides which encoder embeds texts for a task (support's knowledge bases, the
recommender's catalogue, retraining's drift check) and the tag that names it in the vector store (services/vectors/store.py).
Callers reach these functions through this module's attributes (`encode.texts_embed_for`), so a test's stand-in
encoder, set here, is the one every room uses.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from services.errors import NotFound
from services.vectors.index import EncoderTag

Progress = Callable[[int, int], None]  # (done, total)
EMBED_BATCH = 128  # texts per call: bounded memory, and a progress bar can follow


def encoder_tag_for(*, task: str | None) -> EncoderTag:
    """The tag of the encoder texts_embed_for(task=task) uses now: `<task>:v<N>` (its champion) or `base:<name>`.

    1. The task's champion, when the task is given and has one: its version's hash and its base's width.
    2. Otherwise the default base (registered on first use): its weights' hash (its path when unhashed).
    No model is loaded: the dimension is the base's registered `embedding_size`.
    """
    from services.registry.versions import base_default_ensure, version_get

    if task:
        try:
            version = version_get(task_name=task)
        except NotFound:
            pass
        else:
            return EncoderTag(name=f"{task}:v{version.version}", sha256=version.sha256, dim=version.base.embedding_size)
    base = base_default_ensure()
    return EncoderTag(name=f"base:{base.name}", sha256=base.sha256 or base.path, dim=base.embedding_size)


def texts_embed_for(*, task: str | None, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
    """L2-normalised float32 vectors (n, dim) of `texts`: the task's champion, else the default base.

    1. Embed EMBED_BATCH texts at a time through the registry's serving runtime (micro-batched, cached models).
    2. A task without a champion (or task None) is served by the default base.
    3. Report (done, total) after each batch.
    """
    texts = list(texts)
    parts = []
    for start in range(0, len(texts), EMBED_BATCH):
        parts.append(_embed(task=task, texts=texts[start:start + EMBED_BATCH]))
        if progress:
            progress(min(start + EMBED_BATCH, len(texts)), len(texts))
    if not parts:
        return np.zeros((0, encoder_tag_for(task=task).dim), dtype=np.float32)
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def texts_embed_tagged(*, tag: EncoderTag, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
    """L2-normalised float32 vectors (n, tag.dim) of `texts` by EXACTLY the encoder `tag` names (a pinned version).

    The shared vector store embeds documents and queries only through this, so a query is compared with vectors of
    the same encoder even while a promotion is being re-embedded (the champion "now" may already be another one).
    1. `<task>:v<N>`: that adapter version, whatever the task's champion is; `base:<name>`: that base encoder.
    2. EMBED_BATCH texts at a time, reporting (done, total).
    """
    from services.registry.serving import texts_embed_pinned

    texts = list(texts)
    parts = []
    for start in range(0, len(texts), EMBED_BATCH):
        parts.append(texts_embed_pinned(name=tag.name, sha256=tag.sha256, texts=texts[start:start + EMBED_BATCH]))
        if progress:
            progress(min(start + EMBED_BATCH, len(texts)), len(texts))
    if not parts:
        return np.zeros((0, tag.dim), dtype=np.float32)
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def _embed(*, task: str | None, texts: list[str]) -> np.ndarray:
    from services.registry.serving import texts_embed

    if task:
        try:
            return texts_embed(task=task, texts=texts)
        except NotFound:  # no champion yet: the base, as encoder_tag_for says
            pass
    return texts_embed(task=None, texts=texts)
