"""Offline evaluation of the recommender: fit the whole pipeline on a training split, rank, compare with popularity.

    python manage.py recommender_eval --items items.csv --interactions interactions.csv [--protocol leave-last-out] [--k 10] [--register]

1. Read the files (services.tabular; bad rows are skipped, counted and listed in `detail`, as the import lists them).
2. leave-last-out: each user's latest interaction with an item they had not met before is the test item; the
   rest is training. Users with fewer than two distinct items are not tested (their history trains).
3. Train a pairs LoRA adapter on the training part only: query = the text of a user's previous item,
   positive = the next item's text (registry pair fine-tuning, on the default base), with the retraining run's knobs
   (RETRAIN_PAIRS; `pairs="all"`: the trainer's defaults, every pair every epoch, as before issue 17's item 5).
4. Embed every item with the tuned encoder, build each test user's profile from their training interactions
   (services.recommender.ranking: the serving code), score all items they have not seen in training, take k.
5. The popularity baseline ranks the same unseen items by training popularity in the same run.
Only with `register` is the adapter registered (task `recommender`) and offered for promotion through the gate
(ndcg_at_k): the serving champion is otherwise untouched. The split, pairs and ranking metrics are also what
retraining the recommender judges a version with (services/recommender/retraining.py).
"""
from __future__ import annotations

import shutil
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from services.errors import SuiteError
from services.recommender import ranking
from services.recommender.catalog import event_clean, item_clean, item_text
from services.tabular import KEEP, table_open

PROTOCOLS = ("leave-last-out",)
MAX_PAIRS = 20000  # training pairs kept (the latest ones): bounds the fine-tuning time
# The pairs adapter's knobs for the recommender (services/ml/training.py PairConfig fields; the trainer's defaults are
# left alone), used by retraining and by this evaluation, so that adapter + sources + ranker take no longer than the
# adapter alone did with every pair (issue 17, item 5): at most 8192 pairs per epoch (a fresh sample each epoch: 3
# epochs still see about as many pairs as MAX_PAIRS keeps; 256 steps an epoch instead of ~560 on 20,000 pairs), and
# the adapter on the top half of the layers, the lower ones run once per text and cached (a step runs and
# back-propagates through half the encoder; on a 448-pair sample of online_retail, 1 epoch, MiniLM, busy 2-core
# machine: MRR 0.443 against 0.444 with every layer). Validation checks per epoch stay the trainer's: a second one
# costs a pass over the validation pairs for no measured gain.
RETRAIN_PAIRS: dict[str, Any] = {"pair_budget": 8192, "adapt_top": 0.5}
PAIRS_CHOICES = ("retrain", "all")  # EvalRequest.pairs: RETRAIN_PAIRS, or the trainer's defaults (every pair)
SKIPPED_LISTED = 100  # refused rows listed in `detail` (all are counted): a big file's typos stay readable


@dataclass(frozen=True)
class EvalRequest:
    items: Path
    interactions: Path
    protocol: str = "leave-last-out"  # the only protocol so far
    k: int = 10  # cut-off of the ranking metrics
    epochs: int | None = None  # overrides PairConfig's epoch bound
    register: bool = False  # register the adapter and try to promote it (gate on ndcg_at_k)
    tune: bool = True  # False: no adapter training, the text source uses the untuned base model (a quick run)
    pairs: str = "retrain"  # "retrain": the retraining run's knobs (RETRAIN_PAIRS); "all": the trainer's defaults

    def __post_init__(self) -> None:
        if self.pairs not in PAIRS_CHOICES:
            raise SuiteError(f"Unknown pairs {self.pairs!r}; use one of {', '.join(PAIRS_CHOICES)}.", field="pairs")
        if self.protocol not in PROTOCOLS:
            raise SuiteError(f"Unknown protocol {self.protocol!r}; use one of {', '.join(PROTOCOLS)}.", field="protocol")
        if not 1 <= self.k <= 1000:
            raise SuiteError("`k` must be from 1 to 1000.", field="k")
        if self.register and not self.tune:
            raise SuiteError("`register` needs a tuned adapter: leave out --no-tune to register.", field="register")


@dataclass(frozen=True)
class Split:
    train: dict[str, list[ranking.Interaction]]  # user -> training interactions, oldest first
    test: dict[str, int]  # user -> held-out item row


def catalogue_read(*, path: Path, skipped: list[str] | None = None, meta: list[tuple[str, float | None, bool]] | None = None
                   ) -> tuple[list[str], list[str]]:
    """(external ids, item texts) of the good rows (services.tabular, KEEP); refused rows are added to `skipped`.

    `meta`: filled with (category, price, in stock) of each good row, for the ranker's features.
    """
    table = table_open(path=path, policy=KEEP, field="items")
    ids, texts, first_line = [], [], {}
    for row in table:
        try:
            item = item_clean(row.values)
        except SuiteError as exc:
            table.refuse(row.line, exc.message)
            continue
        if item["external_id"] in first_line:
            table.refuse(row.line, f"item {item['external_id']!r} again (line {first_line[item['external_id']]} is used)")
            continue
        first_line[item["external_id"]] = row.line
        ids.append(item["external_id"])
        texts.append(item_text(title=item["title"], description=item["description"], category=item["category"], tags=item["tags"]))
        if meta is not None:
            meta.append((item["category"], item["price"], item["in_stock"]))
    if skipped is not None:
        skipped += table.errors
    return ids, texts


def interactions_read(*, path: Path, rows_of: dict[str, int], skipped: list[str] | None = None
                      ) -> dict[str, list[ranking.Interaction]]:
    """user -> interactions with known items, oldest first (file order breaks ties); refused rows go to `skipped`."""
    table = table_open(path=path, policy=KEEP, field="interactions")
    by_user: dict[str, list[tuple[float, int, ranking.Interaction]]] = defaultdict(list)
    for row in table:
        try:
            event = event_clean({**row.values, "event_id": row.values.get("event_id") or str(row.line)})
        except SuiteError as exc:
            table.refuse(row.line, exc.message)
            continue
        if event["type"] == "not_interested":  # a dismissal is no interaction: not part of a history
            continue
        item = rows_of.get(event["item_external_id"])
        if item is None:
            table.refuse(row.line, f"item {event['item_external_id']!r} is not in the catalogue")
            continue
        at = event["timestamp"].timestamp() if row.values.get("timestamp") else float(row.line)
        by_user[event["user_id"]].append((at, row.line, ranking.Interaction(item=item, type=event["type"], at=at)))
    if skipped is not None:
        skipped += table.errors
    return {user: [i for *_, i in sorted(rows, key=lambda r: (r[0], r[1]))] for user, rows in by_user.items()}


def split_leave_last_out(*, history: dict[str, list[ranking.Interaction]]) -> Split:
    train, test = {}, {}
    for user, rows in history.items():
        last = rows[-1].item
        before = [r for r in rows if r.item != last]
        if before and all(r.item != last for r in rows[:-1]):
            train[user], test[user] = rows[:-1], last
        else:
            train[user] = rows
    return Split(train=train, test=test)


def pairs_make(*, split: Split, texts: list[str]) -> tuple[list[str], list[str]]:
    """(queries, positives): each training interaction's item text → the next distinct item's text."""
    queries, items = [], []
    for rows in split.train.values():
        for before, after in zip(rows, rows[1:]):
            if before.item != after.item:
                queries.append(texts[before.item])
                items.append(texts[after.item])
    return queries[-MAX_PAIRS:], items[-MAX_PAIRS:]


def rankings_score(*, split: Split, vectors: np.ndarray | None, popularity: np.ndarray, k: int) -> dict[str, float]:
    """ndcg/recall/hit rate at k over the test users: by profile (+ popularity prior) or, without vectors, popularity alone."""
    from services.recommender.learned import blas_single

    with blas_single():  # thousands of small products: one BLAS thread is ~10x faster on a busy machine
        return _rankings_score(split=split, vectors=vectors, popularity=popularity, k=k)


def _rankings_score(*, split: Split, vectors: np.ndarray | None, popularity: np.ndarray, k: int) -> dict[str, float]:
    scaled = ranking.popularity_scaled(popularity)
    ndcg, recall = [], []
    for user, target in split.test.items():
        rows = split.train[user]
        seen = {r.item for r in rows}
        if vectors is None:
            scores = popularity.astype(np.float64).copy()
        else:
            weights = ranking.interactions_weights(rows)
            profile = ranking.profile_build(vectors=vectors[[r.item for r in rows]], weights=weights)
            cosine = vectors @ profile if profile is not None else np.zeros(len(vectors), dtype=np.float32)  # (n_items,)
            scores = ranking.scores_combine(cosine=cosine, popularity=scaled).astype(np.float64)
        scores[list(seen)] = -np.inf
        order = np.lexsort((np.arange(len(scores)), -scores))[:k]  # best first, ties by row
        ranked = [int(i) for i in order]
        ndcg.append(ranking.ndcg_at_k(ranked=ranked, relevant={target}, k=k))
        recall.append(ranking.recall_at_k(ranked=ranked, relevant={target}, k=k))
    n = max(len(ndcg), 1)
    return {"ndcg": round(sum(ndcg) / n, 5), "recall": round(sum(recall) / n, 5), "hit": round(sum(r > 0 for r in recall) / n, 5)}


def popularity_count(*, split: Split, n_items: int) -> np.ndarray:
    counts = np.zeros(n_items, dtype=np.float32)
    for rows in split.train.values():
        for r in rows:
            counts[r.item] += ranking.EVENT_WEIGHTS.get(r.type, 1.0)
    return counts


def _embed(model: Any, tokenizer: Any, texts: list[str], *, strip_urls: bool, max_length: int) -> np.ndarray:
    from services.ml.encoder import texts_prepare, texts_tokenize
    from services.ml.loop import ids_embed

    ids = texts_tokenize(tokenizer, texts_prepare(texts, strip_urls=strip_urls), max_length=max_length)
    pad_id = tokenizer.pad_token_id or 0
    return ids_embed(model, ids, pad_id=pad_id, device=torch.device("cpu"), dtype=torch.float32, normalize=True).numpy()


def _first_skipped(skipped: list[str]) -> str:
    return f" ({len(skipped)} rows skipped; the first: {skipped[0]})" if skipped else ""


def recommender_evaluate(request: EvalRequest, *, progress: bool = True) -> dict[str, Any]:
    """Run the evaluation; returns the contract's keys plus `detail` (base model score, pairs, registration)."""
    from services.ml.encoder import tokenizer_load
    from services.ml.training import PairConfig, pairs_train
    from services.registry.versions import base_get

    started = time.monotonic()
    skipped: list[str] = []  # every refused row, "file:line: reason": reported in `detail`, never dropped silently
    meta: list[tuple[str, float | None, bool]] = []
    ids, texts = catalogue_read(path=request.items, skipped=skipped, meta=meta)
    if not ids:
        raise SuiteError(f"{request.items}: no usable items{_first_skipped(skipped)}.", field="items")
    history = interactions_read(path=request.interactions, rows_of={external: row for row, external in enumerate(ids)},
                                skipped=skipped)
    split = split_leave_last_out(history=history)
    if not split.test:
        raise SuiteError(f"No user has two distinct items: nothing to hold out{_first_skipped(skipped)}.", field="interactions")
    queries, positives = pairs_make(split=split, texts=texts)
    base = base_get()
    knobs = dict(RETRAIN_PAIRS) if request.pairs == "retrain" else {}
    config = PairConfig(**knobs, **({"epochs": request.epochs} if request.epochs else {}))
    tokenizer = tokenizer_load(base.path)
    adapter_started = time.monotonic()
    result = None
    if request.tune:
        if len(queries) < 4:
            raise SuiteError("Too few consecutive interactions to tune on (at least 4 pairs).", field="interactions")
        result = pairs_train(base_path=base.path, queries=queries, items=positives, config=config, progress=progress)
        tuned = _embed(result.model, tokenizer, texts, strip_urls=config.strip_urls, max_length=config.max_length)
        with result.model.disable_adapter():
            untuned = _embed(result.model, tokenizer, texts, strip_urls=config.strip_urls, max_length=config.max_length)
    else:
        from services.ml.encoder import base_load

        untuned = _embed(base_load(base.path)[1], tokenizer, texts, strip_urls=config.strip_urls, max_length=config.max_length)
        tuned = untuned
    seconds_adapter = time.monotonic() - adapter_started
    popularity = popularity_count(split=split, n_items=len(ids))
    model_scores = rankings_score(split=split, vectors=tuned, popularity=popularity, k=request.k)
    base_scores = rankings_score(split=split, vectors=untuned, popularity=popularity, k=request.k)
    pop_scores = rankings_score(split=split, vectors=None, popularity=popularity, k=request.k)
    learned = learned_evaluate(split=split, vectors=tuned, meta=meta, k=request.k)
    ranker = learned.pop("ranker_model")
    detail: dict[str, Any] = {"base_ndcg_at_k": base_scores["ndcg"], "base_recall_at_k": base_scores["recall"],
                              "n_pairs": len(queries), "n_items": len(ids),
                              "pair_mrr": result.metrics.get("mrr") if result is not None else None, "tuned": request.tune,
                              "ranker": learned.pop("ranker_detail"),
                              "skipped": len(skipped), "skipped_rows": skipped[:SKIPPED_LISTED]}
    out = {"protocol": request.protocol, "k": request.k, "ndcg_at_k": model_scores["ndcg"], "recall_at_k": model_scores["recall"],
           "hit_rate_at_k": model_scores["hit"], "popularity_ndcg_at_k": pop_scores["ndcg"],
           "popularity_recall_at_k": pop_scores["recall"], "n_users": len(split.test)}
    for key, value in learned.items():
        out.setdefault(key, value)  # the existing keys above keep their meaning (whole-catalogue rankings)
    out["seconds_adapter"] = round(seconds_adapter, 2)
    out["seconds_retrain"] = round(seconds_adapter + out["seconds_sources"] + out["seconds_ranker"], 2)
    # How the adapter was trained (what a retrain of the same data would run): the knobs and the trainer's own
    # numbers, so two runs (--pairs retrain / all) on the same files compare retrain time with the adapter alone's.
    out.update(pairs=request.pairs, pair_budget=config.pair_budget, adapt_top=config.adapt_top,
               evals_per_epoch=config.evals_per_epoch,
               adapter_steps=result.metrics.get("steps") if result is not None else 0,
               adapter_epochs_run=result.metrics.get("epochs_run") if result is not None else 0,
               seconds_adapter_training=round(float(result.metrics.get("seconds", 0.0)), 2) if result is not None else 0.0)
    if request.register:
        detail.update(_register(result=result, base=base, metrics={**result.metrics, **out}, source=request.interactions,
                                ranker=ranker))
    out["seconds"] = round(time.monotonic() - started, 2)
    out["detail"] = detail
    return out


def _register(*, result: Any, base: Any, metrics: dict[str, Any], source: Path, ranker: Any = None) -> dict[str, Any]:
    """Register the adapter under task `recommender` (gate: ndcg_at_k) and ask the gate to promote it; the ranker
    fitted on the same vectors goes into the artifact's `ranker/` folder when it beat the formula on its validation
    users (as a retrain run's does), so the version serves it."""
    from apps.registry.models import Task
    from services.ml.artifacts import artifact_save
    from services.recommender.retraining import recommender_task_ensure
    from services.registry.versions import staging_root, version_promote, version_register

    recommender_task_ensure()
    staging = staging_root()
    staging.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix="recommender-", dir=staging))
    try:
        sha = artifact_save(result=result, folder=staged, source=source.name, base_name=base.name, base_location=base.location)
        if ranker is not None and ranker.metrics["ndcg_at_k"] >= ranker.metrics["formula_ndcg_at_k"]:
            from services.ml.artifacts import artifact_sha256
            from services.recommender.learned import RANKER_DIR

            ranker.save(staged / RANKER_DIR)
            sha = artifact_sha256(staged)
            metrics = {**metrics, "ranker": 1}
        numeric = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        version = version_register(task_name="recommender", kind=Task.KIND_PAIRS, base=base, staged_dir=staged, sha256=sha,
                                   metrics=numeric, label_map=[], train_config=result.config.as_dict(),
                                   data_fingerprint=result.fingerprint, data_source=str(source.resolve()),
                                   created_by="pipeline:recommender_eval")
    finally:
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)
    outcome = version_promote(task_name="recommender", version=version.version, actor="pipeline:recommender_eval")
    champion = version.aliases.filter(name="champion").exists()
    return {"version": version.version, "champion": champion, "promotion": outcome.reason if not champion or outcome.promoted else "first version"}


LEARNED_METHODS = ("popularity", "text", "cooc", "ease", "trending", "new", "formula", "ranker")


def learned_evaluate(*, split: Split, vectors: np.ndarray, meta: list[tuple[str, float | None, bool]], k: int
                     ) -> dict[str, Any]:
    """Each candidate source alone, the old formula and the learned ranker on the same held-out items.

    Keys `<method>_{ndcg,recall,hit_rate,coverage}_at_k` (coverage: the share of the catalogue that appears in some
    user's top k), `seconds_sources` and `seconds_ranker` (fitting them on the training part), `ranker_detail`,
    `ranker_model` (the fitted Ranker or None: registration saves it with the adapter).
    A source alone ranks by its own score, then by popularity (where it has nothing to say, the best sellers fill
    the k places, as serving would).
    """
    from services.recommender.behaviour import FEATURES, SourceConfig, behaviour_fit, meta_from_arrays
    from services.recommender.learned import (MatrixText, RankerConfig, blas_single, formula_scores, ranker_fit,
                                              user_candidates)

    n_items = len(vectors)
    meta_of = meta_from_arrays(categories=[m[0] for m in meta],
                               prices=np.array([np.nan if m[1] is None else m[1] for m in meta], dtype=np.float64),
                               in_stock=np.array([m[2] for m in meta], dtype=np.float32))
    sources = SourceConfig(per_source=max(SourceConfig().per_source, k))
    text = MatrixText(vectors)
    started = time.monotonic()
    model = behaviour_fit(histories=split.train, keys=range(n_items), config=sources)
    seconds_sources = time.monotonic() - started
    started = time.monotonic()
    ranker, ranker_detail = None, {}
    try:
        ranker = ranker_fit(histories=split.train, keys=range(n_items), text=text, meta_of=meta_of, sources=sources,
                            config=RankerConfig(k=k))
        ranker_detail = ranker.metrics
    except SuiteError as exc:  # too little data to learn from: reported, and the ranker's keys are absent
        ranker_detail = {"error": exc.message}
    seconds_ranker = time.monotonic() - started
    col = {name: n for n, name in enumerate(FEATURES)}
    metrics: dict[str, dict[str, list[float]]] = {m: {"ndcg": [], "recall": []} for m in LEARNED_METHODS}
    shown: dict[str, set[int]] = {m: set() for m in LEARNED_METHODS}
    with blas_single():
        ranked_all = _methods_rank(split=split, model=model, text=text, meta_of=meta_of, ranker=ranker, sources=sources, k=k,
                                   col=col, user_candidates=user_candidates, formula_scores=formula_scores)
    for target, by_method in ranked_all:
        for method, ranked in by_method.items():
            metrics[method]["ndcg"].append(ranking.ndcg_at_k(ranked=ranked, relevant={target}, k=k))
            metrics[method]["recall"].append(ranking.recall_at_k(ranked=ranked, relevant={target}, k=k))
            shown[method].update(ranked)
    out: dict[str, Any] = {}
    for method in LEARNED_METHODS:
        values = metrics[method]
        if not values["ndcg"]:
            continue
        n = len(values["ndcg"])
        out[f"{method}_ndcg_at_k"] = round(sum(values["ndcg"]) / n, 5)
        out[f"{method}_recall_at_k"] = round(sum(values["recall"]) / n, 5)
        out[f"{method}_hit_rate_at_k"] = round(sum(r > 0 for r in values["recall"]) / n, 5)
        out[f"{method}_coverage_at_k"] = round(len(shown[method]) / max(n_items, 1), 5)
    out.update(seconds_sources=round(seconds_sources, 2), seconds_ranker=round(seconds_ranker, 2), ranker_detail=ranker_detail,
               ranker_model=ranker)
    return out


def _methods_rank(*, split: Split, model: Any, text: Any, meta_of: Any, ranker: Any, sources: Any, k: int,
                  col: dict[str, int], user_candidates: Any, formula_scores: Any) -> list[tuple[int, dict[str, list[int]]]]:
    """Per test user: (target, {method: its top k rows})."""
    out = []
    for user, target in split.test.items():
        rows = split.train[user]
        scored = user_candidates(model=model, history=rows, text=text, meta_of=meta_of, now=model.reference,
                                 exclude={r.item for r in rows}, config=sources)
        f = scored.features
        popular = f[:, col["popularity"]]
        by = {"popularity": popular, "text": f[:, col["text"]], "cooc": f[:, col["cooc"]], "ease": f[:, col["ease"]],
              "trending": f[:, col["trend"]], "new": -f[:, col["age_days"]], "formula": formula_scores(f)}
        if ranker is not None:
            by["ranker"] = ranker.scores(f)
        ranked = {}
        for method, score in by.items():
            order = np.lexsort((scored.keys, -popular, -score))[:k]  # best first; popularity, then the row break ties
            ranked[method] = [int(i) for i in scored.keys[order]]
        out.append((target, ranked))
    return out
