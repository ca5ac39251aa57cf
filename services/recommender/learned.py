"""The learned ranker over the merged candidates (LightGBM LambdaRank), Django-free: train, save, load, score, reasons.

Training (`ranker_fit`), the same offline and on the worker:
1. Time split: each user's last interaction with an item they had not met before is the target; the earlier ones
   are the user's history (users without such an item only feed the sources).
2. The behaviour sources are fitted on the histories only (a target never leaks into its own features).
3. For each target user: the merged candidates and their FEATURES (services/recommender/behaviour.py); label 1 for
   the target, 0 for the others; users whose target no source proposed are left out (nothing to learn from).
   Candidates the user was shown before the target and did not interact with (recorded impressions, `shown`) are
   the negatives a training user always keeps; the other negatives are sampled.
4. LambdaRank on a share of the users, early-stopped on the rest (ndcg at k); the metrics are the held-out users'
   ndcg/recall at k of the ranker and of the old formula (text cosine + popularity prior) on the same candidates.
Reasons: the feature that adds most to an item's score (LightGBM's per-feature contributions) names it.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from services.errors import SuiteError
from services.recommender import ranking
from services.recommender.behaviour import (FEATURES, Behaviour, MetaOf, Scored, SourceConfig, behaviour_fit,
                                            candidates_score)

RANKER_DIR = "ranker"  # the folder of a `recommender` version's artifact that holds its ranker (model.txt, ranker.json)
REASON_OF = {"text": "similar", "cooc": "together", "ease": "together", "related_recency": "together",
             "popularity": "popular", "trend": "popular", "category_affinity": "popular", "age_days": "new"}


@dataclass(frozen=True)
class RankerConfig:
    rounds: int = 300  # most boosting rounds (early stopping usually ends sooner)
    learning_rate: float = 0.05
    leaves: int = 15  # small trees: a few thousand target users is the usual amount of supervision
    min_rows_leaf: int = 20  # lowered automatically for small data (at least 2)
    early_stop: int = 30  # rounds without a better held-out ndcg before stopping
    rounds_min: int = 30  # at least this many rounds: a small held-out set ties early and would stop at round 1
    max_users: int = 20000  # target users sampled for training: bounds the time on big shops
    valid_share: float = 0.2  # target users held out for early stopping and the metrics
    k: int = 10  # the cut-off ndcg is optimised and reported at
    negatives: int = 100  # non-target candidates kept per training user (a random sample): bounds the boosting time
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.rounds <= 5000:
            raise SuiteError("`rounds` must be from 1 to 5000.", field="rounds")
        if not 0 < self.learning_rate <= 1:
            raise SuiteError("`learning_rate` must be above 0 and at most 1.", field="learning_rate")
        if not 2 <= self.leaves <= 1024:
            raise SuiteError("`leaves` must be from 2 to 1024.", field="leaves")
        if not 0 < self.valid_share < 1:
            raise SuiteError("`valid_share` must be between 0 and 1.", field="valid_share")
        if not 1 <= self.rounds_min <= self.rounds:
            raise SuiteError("`rounds_min` must be from 1 to `rounds`.", field="rounds_min")
        if self.negatives < 1:
            raise SuiteError("`negatives` must be at least 1.", field="negatives")
        if self.min_rows_leaf < 1 or self.max_users < 10 or self.k < 1 or self.early_stop < 1:
            raise SuiteError("`min_rows_leaf`, `k` and `early_stop` must be at least 1 and `max_users` at least 10.",
                             field="min_rows_leaf")


class TextSpace:
    """Item text vectors for the text source: unit vectors by key, and a nearest-neighbour search."""

    def vectors(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # (found (n,) bool, vectors (n, dim))
        raise NotImplementedError

    def search(self, profile: np.ndarray, n: int) -> dict[int, float]:
        raise NotImplementedError


class MatrixText(TextSpace):
    """Offline: every item's vector in one matrix; key = row."""

    def __init__(self, matrix: np.ndarray) -> None:
        self.matrix = matrix.astype(np.float32)  # (n_items, dim)

    def vectors(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.ones(len(keys), dtype=bool), self.matrix[keys]

    def search(self, profile: np.ndarray, n: int) -> dict[int, float]:
        scores = self.matrix @ profile  # (n_items,); callers loop over users under blas_single() (see there)
        n = min(n, len(scores))
        top = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
        return {int(i): float(scores[i]) for i in top}


def user_candidates(*, model: Behaviour, history: Sequence[ranking.Interaction], text: TextSpace | None, meta_of: MetaOf,
                    now: float, exclude: set[int] = frozenset(), fresh_new: Sequence[int] = (),
                    config: SourceConfig | None = None, extra: Sequence[int] = ()) -> Scored:
    """The merged candidates of every source for one history (a user's or an anonymous session's), with features."""
    config = config or SourceConfig()
    positive = [i for i in history if i.type != "not_interested"]
    profile, seen_keys, seen_vectors = None, np.zeros(0, dtype=np.int64), None
    if text is not None and positive:
        keys = np.array([i.item for i in positive], dtype=np.int64)
        found, vectors = text.vectors(keys)
        if found.any():
            seen_keys, seen_vectors = keys[found], vectors[found]
            weights = ranking.interactions_weights([i for i, f in zip(positive, found) if f])
            profile = ranking.profile_build(vectors=seen_vectors, weights=weights)
    if profile is None:
        return candidates_score(model=model, history=history, text_top={}, text_of=None, meta_of=meta_of, now=now,
                                exclude=exclude, fresh_new=fresh_new, config=config, extra=extra)
    text_top = text.search(profile, config.per_source + len(exclude))  # type: ignore[union-attr]
    looked: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}

    def lookup(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # text_of and text_via ask for the same keys
        key = keys.tobytes()
        if key not in looked:
            looked[key] = text.vectors(keys)  # type: ignore[union-attr]
        return looked[key]

    # einsum, not BLAS: for a few hundred rows a threaded BLAS call costs ~10x more on a busy machine (measured)
    def text_of(keys: np.ndarray) -> np.ndarray:
        found, vectors = lookup(keys)
        return np.where(found, np.einsum("ij,j->i", vectors, profile), 0.0).astype(np.float32)

    def text_via(keys: np.ndarray) -> np.ndarray:
        found, vectors = lookup(keys)
        closest = np.argmax(np.einsum("ij,kj->ik", vectors, seen_vectors), axis=1)  # (c,)
        return np.where(found, seen_keys[closest], -1)

    return candidates_score(model=model, history=history, text_top=text_top, text_of=text_of, meta_of=meta_of, now=now,
                            exclude=exclude, fresh_new=fresh_new, config=config, text_via=text_via, extra=extra)


def blas_single() -> Any:
    """A context with BLAS on one thread: per-user loops make thousands of small products, which a threaded BLAS
    makes ~10x slower on a loaded 2-core machine (0.75 ms against 10 ms for one 2,209 x 384 product, measured)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def formula_scores(features: np.ndarray) -> np.ndarray:
    """The old ranking formula on the candidates: text cosine plus the small popularity prior."""
    return ranking.scores_combine(cosine=features[:, FEATURES.index("text")],
                                  popularity=features[:, FEATURES.index("popularity")])


class Ranker:
    """A trained LambdaRank booster with its config and metrics."""

    def __init__(self, booster: Any, *, metrics: dict[str, Any], config: dict[str, Any]) -> None:
        self.booster, self.metrics, self.config = booster, metrics, config

    def scores(self, features: np.ndarray) -> np.ndarray:
        if len(features) == 0:
            return np.zeros(0)
        return self.booster.predict(features, num_threads=1)

    def reasons(self, features: np.ndarray) -> list[str]:
        """Per row, the reason kind of its strongest positive feature: similar, together, popular or new."""
        if len(features) == 0:
            return []
        contributions = self.booster.predict(features, pred_contrib=True, num_threads=1)[:, :len(FEATURES)]  # (n, f)
        out = []
        for row in contributions:
            best = None
            for n in np.argsort(-row):
                name = FEATURES[int(n)]
                if name in REASON_OF and row[n] > 0:
                    best = REASON_OF[name]
                    break
            out.append(best or "popular")
        return out

    def save(self, folder: Path) -> str:
        """Write model.txt and ranker.json (features, config, metrics) into `folder`; returns the model's sha256."""
        folder.mkdir(parents=True, exist_ok=True)
        text = self.booster.model_to_string()
        (folder / "model.txt").write_text(text, encoding="utf-8")
        sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
        (folder / "ranker.json").write_text(json.dumps({"features": list(FEATURES), "config": self.config,
                                                        "metrics": self.metrics, "sha256": sha}, sort_keys=True, indent=1),
                                            encoding="utf-8")
        return sha

    @classmethod
    def load(cls, folder: Path) -> Ranker:
        import lightgbm as lgb

        meta = json.loads((folder / "ranker.json").read_text(encoding="utf-8"))
        if meta.get("features") != list(FEATURES):
            raise SuiteError(f"{folder}: the ranker was trained on other features ({meta.get('features')}); retrain it.",
                             field="ranker")
        text = (folder / "model.txt").read_text(encoding="utf-8")
        if hashlib.sha256(text.encode("utf-8")).hexdigest() != meta.get("sha256"):
            raise SuiteError(f"{folder}/model.txt differs from the hash recorded in ranker.json.", field="ranker")
        return cls(lgb.Booster(model_str=text), metrics=meta.get("metrics", {}), config=meta.get("config", {}))


def version_ranker_load(folder: Path) -> Ranker | None:
    """The ranker saved in a version's artifact folder (`ranker/`), None when the version has none."""
    sub = Path(folder) / RANKER_DIR
    return Ranker.load(sub) if (sub / "model.txt").exists() else None


def split_targets(histories: Mapping[str, Sequence[ranking.Interaction]]
                  ) -> tuple[dict[str, list[ranking.Interaction]], dict[str, int]]:
    """(histories without their target, {user: target key}): the leave-last-out split of services.recommender.evaluation."""
    before, targets = {}, {}
    for user, rows in histories.items():
        rows = sorted((r for r in rows if r.type != "not_interested"), key=lambda r: r.at)
        if not rows:
            continue
        last = rows[-1].item
        if len(rows) > 1 and all(r.item != last for r in rows[:-1]):
            before[user], targets[user] = rows[:-1], last
        else:
            before[user] = rows
    return before, targets


def groups_build(*, model: Behaviour, histories: Mapping[str, Sequence[ranking.Interaction]], targets: Mapping[str, int],
                 text: TextSpace | None, meta_of: MetaOf, now: float, config: SourceConfig,
                 shown: Mapping[str, Collection[int]] | None = None
                 ) -> tuple[list[np.ndarray], list[np.ndarray], int, list[np.ndarray]]:
    """(features per group, labels per group, users whose target no source proposed, per group: which candidates
    were shown to the user and not interacted with (`shown`: user -> keys shown before the target))."""
    features, labels, missed, hard = [], [], 0, []
    for user, target in targets.items():
        history = histories[user]
        scored = user_candidates(model=model, history=history, text=text, meta_of=meta_of, now=now,
                                 exclude={i.item for i in history}, config=config)
        hit = scored.keys == target
        if not hit.any():
            missed += 1
            continue
        features.append(scored.features)
        labels.append(hit.astype(np.float32))
        ignored = [k for k in (shown or {}).get(user, ()) if k != target]
        hard.append(np.isin(scored.keys, np.array(ignored, dtype=np.int64)) & ~hit)
    return features, labels, missed, hard


def _ndcg(scores: Sequence[np.ndarray], labels: Sequence[np.ndarray], k: int) -> tuple[float, float]:
    ndcg, recall = [], []
    for s, y in zip(scores, labels):
        order = np.lexsort((np.arange(len(s)), -s))[:k]
        hits = np.nonzero(y[order] > 0)[0]
        ndcg.append(1.0 / math.log2(hits[0] + 2) if len(hits) else 0.0)
        recall.append(1.0 if len(hits) else 0.0)
    n = max(len(ndcg), 1)
    return sum(ndcg) / n, sum(recall) / n


def ranker_train(*, features: list[np.ndarray], labels: list[np.ndarray], config: RankerConfig | None = None,
                 hard: list[np.ndarray] | None = None) -> Ranker:
    """LambdaRank on the groups (one per target user), early-stopped on a held-out share of them.

    `hard`: per group, the negatives a training user keeps before any sampled one (shown and ignored items).
    """
    import lightgbm as lgb

    config = config or RankerConfig()
    if len(features) < 4:
        raise SuiteError(f"Too few users whose next item a source proposed to train the ranker on: {len(features)} "
                         "(at least 4).", field="interactions")
    order = list(range(len(features)))
    rng = random.Random(config.seed)
    rng.shuffle(order)
    order = order[:config.max_users]
    n_valid = max(1, int(len(order) * config.valid_share))
    valid, train = order[:n_valid], order[n_valid:]
    sampled = np.random.default_rng(config.seed)
    kept_hard = 0
    for i in train:  # the held-out users keep every candidate: their metrics are those of serving
        shown = hard[i] if hard is not None else np.zeros(len(labels[i]), dtype=bool)
        negative = np.nonzero((labels[i] == 0) & ~shown)[0]
        ignored = np.nonzero((labels[i] == 0) & shown)[0][:config.negatives]
        kept_hard += len(ignored)
        room = config.negatives - len(ignored)
        if len(negative) > room:
            chosen = sampled.choice(negative, room, replace=False) if room > 0 else np.zeros(0, dtype=np.int64)
            keep = np.sort(np.r_[np.nonzero(labels[i] > 0)[0], ignored, chosen]).astype(np.int64)
            features[i], labels[i] = features[i][keep], labels[i][keep]
    rows = sum(len(features[i]) for i in train)
    min_leaf = max(2, min(config.min_rows_leaf, rows // 50))
    params = {"objective": "lambdarank", "metric": "ndcg", "eval_at": [config.k], "learning_rate": config.learning_rate,
              "num_leaves": config.leaves, "min_data_in_leaf": min_leaf, "min_sum_hessian_in_leaf": 1e-6,
              "lambdarank_truncation_level": max(config.k, 20), "verbosity": -1, "num_threads": 1, "seed": config.seed,
              "deterministic": True, "force_row_wise": True}

    def dataset(ids: list[int], reference: Any = None) -> Any:
        return lgb.Dataset(np.concatenate([features[i] for i in ids]), label=np.concatenate([labels[i] for i in ids]),
                           group=[len(features[i]) for i in ids], feature_name=list(FEATURES), reference=reference,
                           free_raw_data=False)

    train_set = dataset(train)
    valid_set = dataset(valid, reference=train_set)
    booster = lgb.train(params, train_set, num_boost_round=config.rounds, valid_sets=[valid_set],
                        callbacks=[lgb.early_stopping(config.early_stop, verbose=False)])
    if (booster.best_iteration or config.rounds) < min(config.rounds_min, config.rounds):
        booster = lgb.train(params, train_set, num_boost_round=min(config.rounds_min, config.rounds))
    ranker = Ranker(booster, metrics={}, config=asdict(config))
    valid_features, valid_labels = [features[i] for i in valid], [labels[i] for i in valid]
    ndcg, recall = _ndcg([ranker.scores(f) for f in valid_features], valid_labels, config.k)
    formula_ndcg, formula_recall = _ndcg([formula_scores(f) for f in valid_features], valid_labels, config.k)
    ranker.metrics = {"ndcg_at_k": round(ndcg, 5), "recall_at_k": round(recall, 5),
                      "formula_ndcg_at_k": round(formula_ndcg, 5), "formula_recall_at_k": round(formula_recall, 5),
                      "k": config.k, "n_train_users": len(train), "n_valid_users": len(valid), "n_shown_negatives": kept_hard,
                      "rounds": int(booster.best_iteration or booster.current_iteration()),
                      "importance": dict(zip(FEATURES, (float(round(v, 3)) for v in booster.feature_importance("gain"))))}
    return ranker


def ranker_fit(*, histories: Mapping[str, Sequence[ranking.Interaction]], keys: Sequence[int], text: TextSpace | None,
               meta_of: MetaOf, created: np.ndarray | None = None, sources: SourceConfig | None = None,
               config: RankerConfig | None = None, now: float | None = None,
               shown: Mapping[str, Sequence[tuple[float, int]]] | None = None) -> Ranker:
    """Time split of `histories`, sources fitted on the earlier part, LambdaRank on the held-out next items (see top).

    `shown`: user -> (seconds, key) of recorded impressions; those before the user's target that the user never
    interacted with are the training negatives kept first.
    """
    sources = sources or SourceConfig()
    before, targets = split_targets(histories)
    if len(targets) < 4:
        raise SuiteError(f"Too few users with a new item after their history to train the ranker on: {len(targets)} "
                         "(at least 4).", field="interactions")
    config = config or RankerConfig()
    if len(targets) > config.max_users:  # sampled before building features: a big shop's users would take hours
        chosen = random.Random(config.seed).sample(sorted(targets), config.max_users)
        targets = {user: targets[user] for user in chosen}
    model = behaviour_fit(histories=before, keys=keys, created=created, config=sources)
    ignored = shown_ignored(histories=histories, targets=targets, shown=shown) if shown else None
    with blas_single():
        features, labels, missed, hard = groups_build(model=model, histories=before, targets=targets, text=text,
                                                      meta_of=meta_of, now=model.reference if now is None else now,
                                                      config=sources, shown=ignored)
    ranker = ranker_train(features=features, labels=labels, config=config, hard=hard)
    ranker.metrics.update(n_targets=len(targets), n_unreachable=missed)
    return ranker


def shown_ignored(*, histories: Mapping[str, Sequence[ranking.Interaction]], targets: Mapping[str, int],
                  shown: Mapping[str, Sequence[tuple[float, int]]]) -> dict[str, set[int]]:
    """user -> keys shown to the user before their target's time that the user never interacted with."""
    out = {}
    for user in targets:
        rows = [r for r in histories[user] if r.type != "not_interested"]
        if not rows or user not in shown:
            continue
        at = max(r.at for r in rows)  # the target is the latest interaction
        touched = {r.item for r in histories[user]}
        keys = {key for when, key in shown[user] if when < at and key not in touched}
        if keys:
            out[user] = keys
    return out


def rank_candidates(*, scored: Scored, ranker: Ranker | None) -> np.ndarray:
    """Scores of the merged candidates: the ranker's, or the old formula's without one."""
    return ranker.scores(scored.features) if ranker is not None else formula_scores(scored.features)


RankFn = Callable[[Scored], np.ndarray]
