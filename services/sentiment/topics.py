"""A headline's topics: the `topic` task's champion (a LoRA classifier), else the keyword lists of entities.py.

The topic task is an ordinary registry classifier, trained by `train_adapter --task topic`, gated and retrained
like `sentiment` (services/sentiment/retraining.py: TopicRetrainer). Its default label set is the one of the
public Twitter Financial News Topic data (TOPIC_LABELS, label id i → name i); a model trained on that data's
numeric ids serves the names all the same (topic_name).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from services.errors import NotFound, SuiteError

log = logging.getLogger("services.sentiment.topics")

TOPIC_TASK = "topic"
# Twitter Financial News Topic (zeroshot, MIT): label id i is TOPIC_LABELS[i].
TOPIC_LABELS = (
    "Analyst Update", "Fed | Central Banks", "Company | Product News", "Treasuries | Corporate Debt", "Dividend",
    "Earnings", "Energy | Oil", "Financials", "Currencies", "General News | Opinion", "Gold | Metals | Materials", "IPO",
    "Legal | Regulation", "M&A | Investments", "Macro", "Markets", "Politics", "Personnel Change", "Stock Commentary",
    "Stock Movement",
)
_BY_LOWER = {name.lower(): name for name in TOPIC_LABELS}


def topic_name(label: object) -> str:
    """A model's or a file's label as a topic name: '5' → 'Earnings', 'earnings' → 'Earnings', others unchanged."""
    text = str(label).strip()
    if text.isdigit() and int(text) < len(TOPIC_LABELS):
        return TOPIC_LABELS[int(text)]
    return _BY_LOWER.get(text.lower(), text)


@dataclass(frozen=True)
class TopicTags:
    topics: list[list[str] | None]  # per text: the model's topic; None: left to the keyword lists (news_store's)
    versions: list[int | None]  # per text: the topic model's version, None where it gave no topic


def classify_topic_champion(texts: list[str]) -> Any:
    """The registry's `topic` champion through the in-process micro-batcher (NotFound when there is none)."""
    from services.registry.serving import texts_classify

    return texts_classify(task=TOPIC_TASK, texts=texts)


def texts_topics(*, texts: Sequence[str], classify: Callable[[list[str]], Any] | None) -> TopicTags:
    """Tag `texts` with one call of the topic model; None (the keyword lists) where there is no model or it fails.

    1. No classifier, or the task has no champion (NotFound): every text is left to the keyword lists.
    2. One call for the batch; each text gets the argmax label as its topic.
    3. A call that fails (other than the model's worker being away) or a row of probabilities that are not numbers
       leaves those texts to the keyword lists: a headline is never lost for its topic.
    ServiceUnavailable (the worker is down) is raised: the consumer retries the batch, as for sentiment.
    """
    texts = list(texts)
    keywords = TopicTags(topics=[None] * len(texts), versions=[None] * len(texts))
    if classify is None or not texts:
        return keywords
    try:
        output = classify(texts)
        probs = np.asarray(output.probs, dtype=np.float64)  # (n, n_labels)
        if probs.ndim != 2 or probs.shape[0] != len(texts):
            raise ValueError(f"the topic model returned {probs.shape} probabilities for {len(texts)} texts")
    except NotFound:
        return keywords
    except Exception as exc:  # noqa: BLE001 - a broken topic model must not stop sentiment scoring
        from services.errors import ServiceUnavailable

        if isinstance(exc, ServiceUnavailable):
            raise
        log.warning("topic model failed on a batch of %d (%s: %s); keyword lists used", len(texts),
                    type(exc).__name__, str(exc)[:300])
        return keywords
    names = [topic_name(n) for n in output.label_names]
    topics, versions = [], []
    for row in probs.tolist():
        if all(math.isfinite(p) for p in row) and row:
            topics.append([names[int(np.argmax(row))]])
            versions.append(int(output.version))
        else:
            topics.append(None)
            versions.append(None)
    return TopicTags(topics=topics, versions=versions)


def topic_source() -> dict[str, Any]:
    """Which tags new headlines get: {"source": "model", "version": N, "text": "topics: model vN"} or the keyword lists."""
    from services.registry.versions import version_get

    try:
        version = version_get(task_name=TOPIC_TASK)
    except NotFound:
        return {"source": "keywords", "version": None, "text": "topics: keyword lists (no topic model registered)"}
    return {"source": "model", "version": version.version, "text": f"topics: model v{version.version}"}


def topic_names_known() -> list[str]:
    """The topic names an analyst may pick: the champion's labels, else the default set; names, never ids."""
    from services.registry.versions import version_get

    try:
        version = version_get(task_name=TOPIC_TASK)
    except NotFound:
        return list(TOPIC_LABELS)
    return [topic_name(n) for n in version.label_map or []] or list(TOPIC_LABELS)


def topic_files_write(*, source: str | Path, out_dir: str | Path, held_back: float = 0.1, seed: int = 0) -> dict[str, Any]:
    """A `text,label` topic file (ids or names) → train.csv and held-back.csv in `out_dir`, labels as topic names.

    The held-back part is drawn per label (two rows or more of each label with four or more rows), so the fixed
    evaluation set of retraining sees every topic. `train_adapter --task topic --data <out>/train.csv` and
    `retrain --task topic --base-data <out>/train.csv --held-back <out>/held-back.csv` read them.
    """
    import csv
    import random

    from services.ml.data import dataset_read

    if not 0 < held_back < 1:
        raise SuiteError(f"held_back must be a fraction between 0 and 1 (got {held_back}).", field="held_back")
    data = dataset_read(path=Path(source))
    by_label: dict[str, list[str]] = {}
    for text, label in zip(data.texts, data.labels):
        by_label.setdefault(topic_name(label), []).append(text)
    rng = random.Random(seed)
    train, held = [], []
    for label, texts in sorted(by_label.items()):
        rng.shuffle(texts)
        # each part needs two rows of a label it has (dataset_read refuses a label seen once)
        k = min(max(2, round(len(texts) * held_back)), len(texts) - 2) if len(texts) >= 4 else 0
        held += [(t, label) for t in texts[:k]]
        train += [(t, label) for t in texts[k:]]
    rng.shuffle(train)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train.csv", train), ("held-back.csv", held)):
        with (out / name).open("w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([("text", "label"), *rows])
    return {"train": str(out / "train.csv"), "held_back": str(out / "held-back.csv"), "train_rows": len(train),
            "held_back_rows": len(held), "labels": len(by_label)}
