"""From a classifier's output to positive/neutral/negative probabilities and the score P(positive) − P(negative)."""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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


def scored_finite(scored: Scored) -> bool:
    """True when every probability is a number in [0, 1] (a NaN row would poison every aggregate it joins)."""
    probs = (scored.p_positive, scored.p_neutral, scored.p_negative)
    return all(math.isfinite(p) and -1e-6 <= p <= 1 + 1e-6 for p in probs) and math.isfinite(scored.score)


@dataclass
class BatchScores:
    scores: list[Scored | None]  # None where the model failed on that text
    versions: list[int | None]  # the model version that scored each text
    errors: list[str | None] = field(default_factory=list)  # why, where the model failed

    def failed(self) -> list[int]:
        return [i for i, s in enumerate(self.scores) if s is None]


def texts_score(*, texts: list[str], classify: Callable[[list[str]], Any], retries: int, backoff_s: float,
                sleep: Callable[[float], None] = time.sleep) -> BatchScores:
    """Score `texts` in one model call; when it fails, find the text(s) it fails on and retry those alone.

    1. One call for the whole batch; rows whose probabilities are not finite count as failures of theirs.
    2. A failing call of several texts is split in halves (so one bad headline costs log2(n) extra calls).
    3. A text failing alone is retried `retries` times, waiting backoff_s, 2·backoff_s, …; then it is
       reported failed with the last error (the caller dead-letters it).
    SuiteError from the model (ServiceUnavailable: its worker is down; NotFound: no champion; a wrong adapter)
    and an unusable label set (from probs_score) are raised, not blamed on the texts: every text would fail.
    """
    out = BatchScores(scores=[None] * len(texts), versions=[None] * len(texts), errors=[None] * len(texts))

    def attempt(idx: list[int]) -> list[int]:
        """Score texts[idx]; returns the indices that failed (their errors recorded)."""
        try:
            output = classify([texts[i] for i in idx])
            probs = np.asarray(output.probs, dtype=np.float64)
            if probs.ndim != 2 or probs.shape[0] != len(idx):
                raise ValueError(f"the model returned {probs.shape} probabilities for {len(idx)} texts")
        except SuiteError:  # ServiceUnavailable, no champion, a wrong adapter: the model's set-up, not this text
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the model raises is a failure on these texts
            reason = f"{type(exc).__name__}: {str(exc)[:300]}"
            for i in idx:
                out.errors[i] = reason
            return idx
        failed = []
        for i, scored in zip(idx, probs_score(probs=probs, label_names=list(output.label_names))):
            if scored_finite(scored):
                out.scores[i], out.versions[i], out.errors[i] = scored, int(output.version), None
            else:
                out.errors[i] = "the model returned probabilities that are not numbers in [0, 1]"
                failed.append(i)
        return failed

    def solve(idx: list[int]) -> None:
        failed = attempt(idx)
        if not failed:
            return
        if len(failed) > 1:
            half = len(failed) // 2
            solve(failed[:half])
            solve(failed[half:])
            return
        for n in range(retries):
            sleep(backoff_s * 2 ** n)
            if not attempt(failed):
                return
        out.errors[failed[0]] = f"the model failed on this headline {retries + 1} times ({out.errors[failed[0]]})"

    if texts:
        solve(list(range(len(texts))))
    return out
