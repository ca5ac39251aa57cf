"""Scoring a batch when the model fails on some headlines: find them by halving, retry them alone, then give up."""
from __future__ import annotations

import numpy as np
import pytest

from services.errors import NotFound
from services.ml.runtime import ClassifyOutput
from services.sentiment.scoring import texts_score

NAMES = ["negative", "positive", "neutral"]


def model(*, poison: str = "boom", nan: str = "nan-row", calls: list[list[str]] | None = None):  # noqa: ANN201
    def classify(texts: list[str]) -> ClassifyOutput:
        if calls is not None:
            calls.append(list(texts))
        if any(poison in t for t in texts):
            raise RuntimeError(f"tokenizer crashed on {poison!r}")
        probs = np.array([[np.nan, 0.5, 0.5] if nan in t else [0.1, 0.8, 0.1] for t in texts], dtype=np.float32)
        return ClassifyOutput(["positive"] * len(texts), probs, NAMES, 4)

    return classify


def test_one_headline_the_model_fails_on_is_isolated_retried_and_reported() -> None:
    calls: list[list[str]] = []
    waits: list[float] = []
    texts = [f"fine {i}" for i in range(7)] + ["boom here"]
    out = texts_score(texts=texts, classify=model(calls=calls), retries=2, backoff_s=0.5, sleep=waits.append)

    assert out.failed() == [7] and all(s is not None for s in out.scores[:7]) and out.versions[:7] == [4] * 7
    assert "3 times" in out.errors[7] and "tokenizer crashed" in out.errors[7]
    assert waits == [0.5, 1.0]  # backoff doubles
    assert sum(1 for c in calls if c == ["boom here"]) == 3  # alone once, then two retries
    assert len(calls) <= 1 + 2 * 3 + 2  # the halving costs log2(n) calls, not one per headline


def test_probabilities_that_are_not_numbers_count_as_a_failure_of_that_headline() -> None:
    out = texts_score(texts=["ok", "nan-row", "ok too"], classify=model(), retries=1, backoff_s=0, sleep=lambda s: None)
    assert out.failed() == [1] and "not numbers" in out.errors[1]


def test_a_model_that_is_not_set_up_is_raised_not_blamed_on_the_headlines() -> None:
    def missing(texts: list[str]) -> ClassifyOutput:
        raise NotFound("No champion for task 'sentiment'.")

    with pytest.raises(NotFound):
        texts_score(texts=["a", "b"], classify=missing, retries=3, backoff_s=0, sleep=lambda s: None)
