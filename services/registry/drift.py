"""Drift of incoming data against a task's training data: label shares and embedding distributions.

Two measures, both cheap enough to run on every (even skipped) retraining run:

- label drift: total variation distance between the label shares of new examples and of the training data;
- embedding drift: on the task's encoder's embeddings of a sample of incoming texts and of training texts,
  (1) the cosine distance between the two centroids and (2) a classifier two-sample test: the cross-validated
  ROC AUC of a logistic regression told to tell incoming from training (0.5 = indistinguishable, 1.0 = apart;
  Lopez-Paz & Oquab, "Revisiting classifier two-sample tests", 2017). scikit-learn does the fitting.
"""
from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

SAMPLE = 256  # texts embedded per side: enough for a stable AUC (±0.05), a few seconds on a CPU
MIN_TEXTS = 10  # fewer on either side: no embedding verdict
DRIFT_AUC = 0.75  # a domain AUC above this is shown (and stored) as drifted


def label_drift(*, new: list[str], train: list[str]) -> dict[str, Any]:
    """Total variation distance between the label shares of new examples and of the training data (0 = same, 1 = disjoint)."""
    def shares(labels: list[str]) -> dict[str, float]:
        counts = Counter(labels)
        return {k: round(v / len(labels), 5) for k, v in sorted(counts.items())} if labels else {}

    new_s, train_s = shares(new), shares(train)
    keys = set(new_s) | set(train_s)
    tvd = 0.5 * sum(abs(new_s.get(k, 0.0) - train_s.get(k, 0.0)) for k in keys) if new_s and train_s else 0.0
    return {"label_tvd": round(tvd, 5), "new": new_s, "train": train_s}


def texts_sample(texts: Sequence[str], *, n: int = SAMPLE, seed: int = 0) -> list[str]:
    """Up to `n` distinct non-empty texts, drawn with a fixed seed (the same data gives the same sample)."""
    distinct = sorted({t for t in texts if t and t.strip()})
    if len(distinct) <= n:
        return distinct
    return random.Random(seed).sample(distinct, n)


def embedding_drift(*, new: np.ndarray, reference: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Centroid cosine distance and classifier-two-sample AUC between two sets of embeddings (n, dim) and (m, dim)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    out: dict[str, Any] = {"n_new": int(len(new)), "n_reference": int(len(reference))}
    if len(new) < MIN_TEXTS or len(reference) < MIN_TEXTS:
        out["note"] = f"too few texts to compare (at least {MIN_TEXTS} on each side)"
        return out
    a, b = new.mean(axis=0), reference.mean(axis=0)  # (dim,), (dim,)
    cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))
    x = np.concatenate([reference, new]).astype(np.float64)  # (m + n, dim)
    y = np.concatenate([np.zeros(len(reference)), np.ones(len(new))])  # (m + n,)
    folds = StratifiedKFold(n_splits=min(5, len(new), len(reference)), shuffle=True, random_state=seed)
    # Balanced classes: an imbalanced pair of sets would otherwise lean the classifier towards the bigger one.
    scores = cross_val_predict(LogisticRegression(C=1.0, max_iter=1000, class_weight="balanced"), x, y, cv=folds,
                               method="predict_proba")[:, 1]  # (m + n,)
    # Below 0.5 means "indistinguishable" too: with near-duplicate points on both sides, each held-out fold is
    # predicted as the class that is short of it in training, pushing the AUC under 0.5. Reported as 0.5.
    auc = max(float(roc_auc_score(y, scores)), 0.5)
    out.update({"centroid_cosine_distance": round(1.0 - cosine, 5), "domain_auc": round(auc, 4),
                "drifted": auc > DRIFT_AUC})
    return out


def texts_drift(*, new: Sequence[str], reference: Sequence[str], embed: Callable[[list[str]], np.ndarray],
                encoder: str) -> dict[str, Any]:
    """embedding_drift of two text sets, each sampled to SAMPLE and embedded with `embed` (L2-normalised rows)."""
    new_s, ref_s = texts_sample(new, seed=1), texts_sample(reference, seed=2)
    if len(new_s) < MIN_TEXTS or len(ref_s) < MIN_TEXTS:
        return {"n_new": len(new_s), "n_reference": len(ref_s), "encoder": encoder,
                "note": f"too few texts to compare (at least {MIN_TEXTS} on each side)"}
    return {**embedding_drift(new=embed(new_s), reference=embed(ref_s)), "encoder": encoder}
