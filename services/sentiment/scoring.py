"""From a classifier's output to positive/neutral/negative probabilities and the score P(positive) − P(negative)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.errors import SuiteError

# Label names seen in financial sentiment data, mapped to the three labels the monitor shows.
# Numeric labels follow the public Twitter financial news set: 0 bearish, 1 bullish, 2 neutral.
CANONICAL = {
    "positive": "positive", "pos": "positive", "bullish": "positive", "bull": "positive", "1": "positive",
    "neutral": "neutral", "neu": "neutral", "none": "neutral", "2": "neutral",
    "negative": "negative", "neg": "negative", "bearish": "negative", "bear": "negative", "0": "negative",
}


@dataclass(frozen=True)
class Scored:
    label: str  # positive / neutral / negative
    p_positive: float
    p_neutral: float
    p_negative: float
    score: float  # p_positive - p_negative


def label_canonical(name: str) -> str:
    """'bullish' → 'positive', '0' → 'negative' …; SuiteError for a label the monitor cannot place."""
    found = CANONICAL.get(str(name).strip().lower())
    if found is None:
        raise SuiteError(f"The sentiment model's label {name!r} is not one of {sorted(CANONICAL)}; retrain with "
                         "positive/neutral/negative (or bullish/bearish/neutral) labels.", field="label")
    return found


def probs_score(*, probs: np.ndarray, label_names: list[str]) -> list[Scored]:
    """Rows of class probabilities (n, n_labels) in `label_names` order → one Scored per row."""
    columns = {"positive": [], "neutral": [], "negative": []}
    for i, name in enumerate(label_names):
        columns[label_canonical(name)].append(i)
    probs = np.asarray(probs, dtype=np.float64)  # (n, n_labels)
    three = np.stack([probs[:, columns[k]].sum(axis=1) for k in ("positive", "neutral", "negative")], axis=1)  # (n, 3)
    out = []
    for pos, neu, neg in three.tolist():
        label = ("positive", "neutral", "negative")[int(np.argmax([pos, neu, neg]))]
        out.append(Scored(label=label, p_positive=pos, p_neutral=neu, p_negative=neg, score=pos - neg))
    return out
