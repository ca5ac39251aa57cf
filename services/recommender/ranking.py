"""The recommender's arithmetic, Django-free: event weights, user profiles, scores and ranking metrics.

The serving path (services.recommender.recommend) and the offline evaluation (services.recommender.evaluation)
both call these, so the evaluated pipeline is the served one.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

EVENT_WEIGHTS = {"view": 1.0, "click": 2.0, "cart": 3.0, "purchase": 5.0}  # a purchase says more than a glance
HALF_LIFE_DAYS = 14.0  # an interaction two weeks older than the user's latest counts half as much
POPULARITY_WEIGHT = 0.05  # how much popularity (0..1, log-scaled) adds to the cosine of a candidate
PROFILE_EVENTS = 50  # the most recent interactions a profile is built from
VERBS = {"view": "viewed", "click": "clicked", "cart": "added to your cart", "purchase": "bought"}


@dataclass(frozen=True)
class Interaction:
    item: int  # the item's row id (its FAISS id)
    type: str  # view, click, cart or purchase
    at: float  # seconds since the epoch


def interactions_weights(interactions: Sequence[Interaction]) -> np.ndarray:
    """One weight per interaction: its event type's weight halved every HALF_LIFE_DAYS before the latest one."""
    if not interactions:
        return np.zeros(0, dtype=np.float32)
    latest = max(i.at for i in interactions)
    ages_days = np.array([(latest - i.at) / 86400.0 for i in interactions], dtype=np.float64)
    kinds = np.array([EVENT_WEIGHTS.get(i.type, 1.0) for i in interactions], dtype=np.float64)
    return (kinds * np.power(0.5, ages_days / HALF_LIFE_DAYS)).astype(np.float32)


def profile_build(*, vectors: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
    """The L2-normalised weighted mean of item vectors (n, dim) → (dim,), or None without any."""
    if len(vectors) == 0 or float(weights.sum()) <= 0:
        return None
    mean = (vectors * weights[:, None]).sum(axis=0) / weights.sum()  # (dim,)
    norm = float(np.linalg.norm(mean))
    return (mean / norm).astype(np.float32) if norm > 0 else None


def popularity_scaled(counts: np.ndarray) -> np.ndarray:
    """Popularity counts → 0..1 on a log scale (the best seller is 1)."""
    top = float(counts.max()) if len(counts) else 0.0
    if top <= 0:
        return np.zeros_like(counts, dtype=np.float32)
    return (np.log1p(counts) / math.log1p(top)).astype(np.float32)


def scores_combine(*, cosine: np.ndarray, popularity: np.ndarray) -> np.ndarray:
    """The ranking score of candidates: similarity to the profile plus a small popularity prior."""
    return cosine + POPULARITY_WEIGHT * popularity


def ndcg_at_k(*, ranked: Sequence[int], relevant: set[int], k: int) -> float:
    gains = sum(1.0 / math.log2(rank + 2) for rank, item in enumerate(ranked[:k]) if item in relevant)
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(k, len(relevant))))
    return gains / ideal if ideal else 0.0


def recall_at_k(*, ranked: Sequence[int], relevant: set[int], k: int) -> float:
    return len(set(ranked[:k]) & relevant) / len(relevant) if relevant else 0.0
