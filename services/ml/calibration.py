"""Calibration of a classifier's probabilities: does a confidence of 0.8 mean right 80 % of the time?"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from services.errors import SuiteError

ECE_BINS = 15  # equal-width bins, as Guo et al. (2017) "On Calibration of Modern Neural Networks"


def _checked(probs: np.ndarray | Sequence[Sequence[float]], truth: np.ndarray | Sequence[int], bins: int) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64)
    truth = np.asarray(truth)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise SuiteError(f"probs must be a (n, n_labels) array with at least two labels, got shape {probs.shape}.", field="probs")
    if truth.ndim != 1 or len(truth) != len(probs):
        raise SuiteError(f"truth must hold one label index per row of probs ({len(probs)}), got shape {truth.shape}.", field="truth")
    if len(truth) and (not np.issubdtype(truth.dtype, np.integer) or truth.min() < 0 or truth.max() >= probs.shape[1]):
        raise SuiteError(f"truth must be label indices in [0, {probs.shape[1]}) (columns of probs).", field="truth")
    if bins < 1:
        raise SuiteError(f"bins={bins} is invalid: it must be a whole number >= 1.", field="bins")
    return probs, truth


def reliability_bins(*, probs: np.ndarray | Sequence[Sequence[float]], truth: np.ndarray | Sequence[int],
                     bins: int = ECE_BINS) -> list[dict[str, float]]:
    """Per equal-width confidence bin: its range, how many rows fall in it, their mean top-label confidence and accuracy.

    1. Each row's confidence is its largest probability (top label); it is right when that label is the truth.
    2. Bin b covers (b/bins, (b+1)/bins]; a confidence of exactly 0 goes to the first bin.
    3. Empty bins are listed with count 0 (confidence and accuracy 0), so the table always has `bins` rows.
    """
    probs, truth = _checked(probs, truth, bins)
    confidence = probs.max(axis=1)  # (n,)
    correct = (probs.argmax(axis=1) == truth).astype(np.float64)  # (n,)
    # ceil(conf * bins) - 1 puts conf in (b/bins, (b+1)/bins] into bin b; clip keeps 0 in bin 0 and 1 in the last.
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)  # (n,)
    table = []
    for b in range(bins):
        members = index == b
        count = int(members.sum())
        table.append({"low": b / bins, "high": (b + 1) / bins, "count": count,
                      "confidence": float(confidence[members].mean()) if count else 0.0,
                      "accuracy": float(correct[members].mean()) if count else 0.0})
    return table


def calibration_error(*, probs: np.ndarray | Sequence[Sequence[float]], truth: np.ndarray | Sequence[int],
                      bins: int = ECE_BINS) -> float:
    """Expected calibration error (top-label, `bins` equal-width bins): sum over bins of |B|/n * |accuracy(B) - confidence(B)|.

    `probs` is (n, n_labels), each row a distribution; `truth` the right column per row. 0 is perfectly calibrated;
    a model always 90 % sure and right 60 % of the time scores 0.3. No rows: 0.0.
    """
    table = reliability_bins(probs=probs, truth=truth, bins=bins)
    n = sum(row["count"] for row in table)
    if n == 0:
        return 0.0
    return float(sum(row["count"] / n * abs(row["accuracy"] - row["confidence"]) for row in table))


TEMPERATURE_BOUNDS = (0.05, 20.0)  # a temperature outside these says the logits are broken, not miscalibrated


def temperature_fit(*, logits: np.ndarray | Sequence[Sequence[float]], truth: np.ndarray | Sequence[int]) -> float:
    """The temperature T minimising the negative log-likelihood of softmax(logits / T) on held-out rows (Guo et al. 2017).

    One parameter, so it cannot change which label wins (accuracy stays), only how sure the model says it is.
    Fitted on log T (bounded: TEMPERATURE_BOUNDS) with SciPy's bounded scalar minimiser. 1.0 (no scaling) when there
    are no rows or the minimum sits on a bound (e.g. every row right: the likelihood keeps growing as T shrinks).
    """
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    logits = np.asarray(logits, dtype=np.float64)
    truth_arr = np.asarray(truth)
    _checked(logits, truth_arr, 1)  # the same shape rules as probabilities
    if len(truth_arr) == 0 or (logits.argmax(axis=1) == truth_arr).all():
        return 1.0  # no row wrong: the likelihood keeps growing as T shrinks, there is nothing to fit

    def nll(log_t: float) -> float:
        return float(-log_softmax(logits / np.exp(log_t), axis=1)[np.arange(len(truth_arr)), truth_arr].mean())

    low, high = np.log(TEMPERATURE_BOUNDS[0]), np.log(TEMPERATURE_BOUNDS[1])
    found = minimize_scalar(nll, bounds=(low, high), method="bounded", options={"xatol": 1e-4})
    if min(found.x - low, high - found.x) < 0.15 or nll(found.x) > nll(0.0):
        # No minimum inside the bounds: the rows cannot measure calibration (typically none is wrong, so sharper is always
        # "better"). Keep the model's own probabilities rather than make it near-certain of everything.
        return 1.0
    return float(np.exp(found.x))


def probs_temperature(*, logits: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / temperature), row-wise: (n, n_labels)."""
    from scipy.special import softmax

    return softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)
