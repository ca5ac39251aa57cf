"""Candidate sources from behaviour and the ranker's features, Django-free (serving and offline evaluation share them).

A worker fits `Behaviour` from every user's history (services/recommender/sources.py stores it); a request only
looks rows up in it:

1. item-to-item ("cooc"): what came after an item in users' histories (next-item transitions within `window`
   steps, the reverse direction at `backward_weight`), each pair decayed by its age (`half_life_days`), divided by
   how often the first item occurs: ~P(next = j | had i). The `neighbours` best per item are kept.
2. collaborative ("ease"): EASE (Steck 2019: a closed-form item-item linear model, one matrix inverse) for
   catalogues up to `ease_max_items` items; larger ones skip it (its column is zero).
3. popularity (weighted event counts, log-scaled), trending (counts decayed with `trend_half_life_days`),
   new items (first seen or created most recently).
Text neighbours of the user's profile are the fourth source; the caller gives them (FAISS in serving, the full
matrix offline) with a function for the cosine of any other candidate.

`candidates_score` merges the sources' candidates for one user and computes the ranker's FEATURES for each.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from services.errors import SuiteError
from services.recommender import ranking

DAY = 86400.0
FEATURES = ("text", "cooc", "ease", "popularity", "trend", "age_days", "related_recency", "category_affinity",
            "price_affinity", "in_stock")
SOURCES = ("text", "cooc", "ease", "popular", "trending", "new")  # candidate sources, in the order reasons prefer them
NEGATIVE_TYPES = frozenset({"not_interested"})  # events that say "not this": never part of a history or a count


@dataclass(frozen=True)
class SourceConfig:
    half_life_days: float = 30.0  # a transition this much older than the latest event counts half
    window: int = 3  # transitions: items up to this many steps later in a history (1/step weight)
    backward_weight: float = 0.5  # weight of the reverse direction (j then i counts for i → j at this weight)
    neighbours: int = 50  # kept per item for cooc and ease: bounds the stored size and a request's work
    ease_lambda: float = 50.0  # EASE's L2 penalty (larger: closer to popularity-free co-occurrence)
    ease_max_items: int = 5000  # EASE inverts an items × items matrix: skipped above this many items
    trend_half_life_days: float = 3.0  # trending: an event this much older than the latest counts half
    new_days: float = 30.0  # "new": first seen (or created) within this many days of the reference time
    per_source: int = 30  # candidates per source per request (50: ndcg@10 0.147 vs 0.138 on online_retail, within noise; 40% slower)

    def __post_init__(self) -> None:
        for name in ("half_life_days", "trend_half_life_days", "new_days", "ease_lambda"):
            if not getattr(self, name) > 0:
                raise SuiteError(f"`{name}` must be above 0 (got {getattr(self, name)!r}).", field=name)
        for name in ("window", "neighbours", "per_source"):
            if not 1 <= getattr(self, name) <= 1000:
                raise SuiteError(f"`{name}` must be a whole number from 1 to 1000 (got {getattr(self, name)!r}).", field=name)
        if not 0 <= self.backward_weight <= 1:
            raise SuiteError("`backward_weight` must be from 0 to 1.", field="backward_weight")
        if self.ease_max_items < 0:
            raise SuiteError("`ease_max_items` must be 0 (no EASE) or more.", field="ease_max_items")


@dataclass
class Behaviour:
    """What the workers fit: per item row, its neighbours by behaviour and its popularity; keys map rows to items."""

    keys: np.ndarray  # (n,) int64: the item key of each row (a pk in serving, the row itself offline)
    cooc_ids: np.ndarray  # (n, m) int32 rows, -1 = none
    cooc_scores: np.ndarray  # (n, m) float32
    ease_ids: np.ndarray  # (n, m) int32 rows, -1 = none ((n, 0) when EASE was skipped)
    ease_scores: np.ndarray  # (n, m) float32
    popularity: np.ndarray  # (n,) float32, 0..1 log-scaled weighted counts
    trend: np.ndarray  # (n,) float32, 0..1 log-scaled decayed counts
    first_seen: np.ndarray  # (n,) float64 seconds: first event or creation, NaN when neither is known
    reference: float  # seconds: the latest event's time (ages and decays count from it)
    n_events: int = 0
    row_of: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.row_of:
            self.row_of = {int(k): r for r, k in enumerate(self.keys.tolist())}
        order = np.lexsort((np.arange(len(self.keys)), -self.popularity))
        self.popular_rows = order  # most popular first
        self.trending_rows = np.lexsort((np.arange(len(self.keys)), -self.trend))
        seen = np.where(np.isnan(self.first_seen), -np.inf, self.first_seen)
        self.new_rows = np.lexsort((np.arange(len(self.keys)), -seen))

    def arrays(self) -> dict[str, np.ndarray]:
        return {"keys": self.keys, "cooc_ids": self.cooc_ids, "cooc_scores": self.cooc_scores, "ease_ids": self.ease_ids,
                "ease_scores": self.ease_scores, "popularity": self.popularity, "trend": self.trend,
                "first_seen": self.first_seen, "reference": np.array([self.reference]), "n_events": np.array([self.n_events])}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> Behaviour:
        return cls(keys=arrays["keys"], cooc_ids=arrays["cooc_ids"], cooc_scores=arrays["cooc_scores"],
                   ease_ids=arrays["ease_ids"], ease_scores=arrays["ease_scores"], popularity=arrays["popularity"],
                   trend=arrays["trend"], first_seen=arrays["first_seen"], reference=float(arrays["reference"][0]),
                   n_events=int(arrays["n_events"][0]))


def _events(histories: Mapping[str, Sequence[ranking.Interaction]], row_of: Mapping[int, int]
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(user index, item row, time, event weight) of every known positive event, by user then time."""
    users, rows, times, weights = [], [], [], []
    for n, history in enumerate(histories.values()):
        for i in sorted(history, key=lambda i: i.at):
            row = row_of.get(i.item)
            if row is None or i.type in NEGATIVE_TYPES:
                continue
            users.append(n)
            rows.append(row)
            times.append(i.at)
            weights.append(ranking.EVENT_WEIGHTS.get(i.type, 1.0))
    return (np.array(users, dtype=np.int64), np.array(rows, dtype=np.int64), np.array(times, dtype=np.float64),
            np.array(weights, dtype=np.float64))


def _top(matrix: sp.csr_matrix, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The m largest positive entries of each row: (ids (n, m) int32 with -1 padding, scores (n, m) float32)."""
    n = matrix.shape[0]
    ids = np.full((n, m), -1, dtype=np.int32)
    scores = np.zeros((n, m), dtype=np.float32)
    indptr, indices, data = matrix.indptr, matrix.indices, matrix.data
    for r in range(n):
        start, end = indptr[r], indptr[r + 1]
        if start == end:
            continue
        values, cols = data[start:end], indices[start:end]
        keep = values > 0
        values, cols = values[keep], cols[keep]
        if len(values) > m:
            part = np.argpartition(-values, m - 1)[:m]
            values, cols = values[part], cols[part]
        order = np.lexsort((cols, -values))
        ids[r, :len(order)] = cols[order]
        scores[r, :len(order)] = values[order]
    return ids, scores


def cooc_fit(*, users: np.ndarray, rows: np.ndarray, times: np.ndarray, n_items: int, reference: float,
             config: SourceConfig) -> sp.csr_matrix:
    """Item → next item scores (n, n): decayed transitions within the window, divided by the first item's count."""
    decay = np.power(0.5, (reference - times) / (config.half_life_days * DAY))
    src_all, dst_all, val_all = [], [], []
    for step in range(1, config.window + 1):
        if len(rows) <= step:
            break
        same = (users[:-step] == users[step:]) & (rows[:-step] != rows[step:])
        src_all.append(rows[:-step][same])
        dst_all.append(rows[step:][same])
        val_all.append(decay[step:][same] / step)
    if not src_all or not sum(len(s) for s in src_all):
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    src, dst, val = np.concatenate(src_all), np.concatenate(dst_all), np.concatenate(val_all)
    forward = sp.coo_matrix((val, (src, dst)), shape=(n_items, n_items)).tocsr()  # duplicates summed
    both = (forward + config.backward_weight * forward.T).tocsr()
    occurrences = np.bincount(rows, weights=decay, minlength=n_items)  # (n,)
    return (sp.diags(1.0 / (occurrences + 1.0)) @ both).tocsr().astype(np.float32)


def ease_fit(*, users: np.ndarray, rows: np.ndarray, n_items: int, config: SourceConfig) -> np.ndarray | None:
    """EASE's item-item weights B (n, n) (zero diagonal) from the binary user × item matrix; None above the size bound."""
    if n_items > config.ease_max_items or len(rows) == 0:
        return None
    n_users = int(users.max()) + 1
    x = sp.csr_matrix((np.ones(len(rows), dtype=np.float64), (users, rows)), shape=(n_users, n_items))
    x.data[:] = 1.0  # binary: repeats do not count twice
    gram = (x.T @ x).toarray()  # (n, n)
    gram[np.diag_indices(n_items)] += config.ease_lambda
    inverse = np.linalg.inv(gram)
    weights = inverse / (-np.diag(inverse))[None, :]
    weights[np.diag_indices(n_items)] = 0.0
    return weights.astype(np.float32)


def behaviour_fit(*, histories: Mapping[str, Sequence[ranking.Interaction]], keys: Sequence[int],
                  created: np.ndarray | None = None, config: SourceConfig | None = None) -> Behaviour:
    """Fit every behaviour source on these histories (item = a key in `keys`; events of unknown items are ignored).

    `created`: (n,) seconds each item was created (NaN unknown), so a new item without events is "new".
    """
    config = config or SourceConfig()
    keys_array = np.asarray(list(keys), dtype=np.int64)
    n = len(keys_array)
    row_of = {int(k): r for r, k in enumerate(keys_array.tolist())}
    users, rows, times, weights = _events(histories, row_of)
    reference = float(times.max()) if len(times) else float(np.nanmax(created)) if created is not None and len(created) and \
        not np.all(np.isnan(created)) else 0.0
    cooc = cooc_fit(users=users, rows=rows, times=times, n_items=n, reference=reference, config=config)
    cooc_ids, cooc_scores = _top(cooc, config.neighbours)
    ease = ease_fit(users=users, rows=rows, n_items=n, config=config)
    if ease is None:
        ease_ids, ease_scores = np.full((n, 0), -1, dtype=np.int32), np.zeros((n, 0), dtype=np.float32)
    else:
        ease_ids, ease_scores = _top(sp.csr_matrix(ease), config.neighbours)
    counts = np.bincount(rows, weights=weights, minlength=n)
    recent = np.bincount(rows, weights=weights * np.power(0.5, (reference - times) / (config.trend_half_life_days * DAY)),
                         minlength=n)
    first = np.full(n, np.nan)
    if len(rows):
        order = np.lexsort((times, rows))
        starts = np.r_[True, rows[order][1:] != rows[order][:-1]]
        first[rows[order][starts]] = times[order][starts]
    if created is not None:
        first = np.fmin(first, np.asarray(created, dtype=np.float64))
    return Behaviour(keys=keys_array, cooc_ids=cooc_ids, cooc_scores=cooc_scores, ease_ids=ease_ids, ease_scores=ease_scores,
                     popularity=ranking.popularity_scaled(counts.astype(np.float32)),
                     trend=ranking.popularity_scaled(recent.astype(np.float32)), first_seen=first, reference=reference,
                     n_events=int(len(rows)), row_of=row_of)


@dataclass(frozen=True)
class ItemMeta:
    """What the features need of items, one entry per key asked for."""

    category: list[str]
    price: np.ndarray  # float64, NaN unknown
    in_stock: np.ndarray  # float32 1/0
    created: np.ndarray  # float64 seconds, NaN unknown


MetaOf = Callable[[np.ndarray], ItemMeta]


@dataclass
class Scored:
    """One user's merged candidates: keys (c,), FEATURES (c, f), and for reasons the history key behind each."""

    keys: np.ndarray
    features: np.ndarray
    via: dict[str, np.ndarray]  # "cooc" / "ease" / "text" → (c,) key of the history item behind the score, -1 none
    sources: dict[str, np.ndarray]  # source → (c,) bool: proposed it
    categories: list[str]


def _spread(ids: np.ndarray, scores: np.ndarray, history_rows: np.ndarray, weights: np.ndarray, recency: np.ndarray,
            history_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Neighbour scores summed over a history: (rows, score, key of the strongest contributor, its best recency)."""
    if ids.shape[1] == 0 or len(history_rows) == 0:
        empty = np.zeros(0)
        return empty.astype(np.int64), empty, empty.astype(np.int64), empty
    neighbour = ids[history_rows]  # (h, m)
    value = scores[history_rows] * weights[:, None]  # (h, m)
    owner = np.repeat(np.arange(len(history_rows)), ids.shape[1])
    neighbour, value = neighbour.ravel(), value.ravel()
    keep = neighbour >= 0
    neighbour, value, owner = neighbour[keep], value[keep], owner[keep]
    if not len(neighbour):
        empty = np.zeros(0)
        return empty.astype(np.int64), empty, empty.astype(np.int64), empty
    unique, inverse = np.unique(neighbour, return_inverse=True)
    total = np.bincount(inverse, weights=value, minlength=len(unique))
    order = np.lexsort((-value, inverse))
    first = np.r_[True, inverse[order][1:] != inverse[order][:-1]]
    via = np.empty(len(unique), dtype=np.int64)
    via[inverse[order][first]] = history_keys[owner[order][first]]
    best_recency = np.zeros(len(unique))
    np.maximum.at(best_recency, inverse, recency[owner])
    return unique.astype(np.int64), total, via, best_recency


def _top_keys(scores: Mapping[int, float], n: int) -> list[int]:
    return [k for k, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def candidates_score(*, model: Behaviour, history: Sequence[ranking.Interaction], text_top: Mapping[int, float],
                     text_of: Callable[[np.ndarray], np.ndarray] | None, meta_of: MetaOf, now: float,
                     exclude: set[int] = frozenset(), fresh_new: Sequence[int] = (), config: SourceConfig | None = None,
                     text_via: Callable[[np.ndarray], np.ndarray] | None = None, extra: Sequence[int] = ()) -> Scored:
    """Merge every source's candidates for one user (or session) and compute the FEATURES of each.

    history: the user's interactions (item = key), any order; text_top: {key: cosine} the text source proposes;
    text_of: cosine to the profile of any keys (None: no profile); fresh_new: keys of items created after the model
    was fitted (newest first); exclude: keys never proposed (seen, excluded by the request); extra: keys always
    among the candidates (unless excluded; a merchandiser's boosted and pinned items).
    """
    config = config or SourceConfig()
    per = config.per_source
    positive = [i for i in history if i.type not in NEGATIVE_TYPES]
    known = [i for i in positive if i.item in model.row_of]
    history_keys = np.array([i.item for i in known], dtype=np.int64)
    history_rows = np.array([model.row_of[i.item] for i in known], dtype=np.int64)
    weights = ranking.interactions_weights(known).astype(np.float64)
    latest = max((i.at for i in positive), default=now)
    recency = np.array([math.pow(0.5, (latest - i.at) / (ranking.HALF_LIFE_DAYS * DAY)) for i in known])

    behaviour: dict[str, tuple[dict[int, float], dict[int, int], dict[int, float]]] = {}
    for name, ids, scores in (("cooc", model.cooc_ids, model.cooc_scores), ("ease", model.ease_ids, model.ease_scores)):
        rows, total, via, rec = _spread(ids, scores, history_rows, weights, recency, history_keys)
        keys = model.keys[rows] if len(rows) else np.zeros(0, dtype=np.int64)
        behaviour[name] = (dict(zip(keys.tolist(), total.tolist())), dict(zip(keys.tolist(), via.tolist())),
                           dict(zip(keys.tolist(), rec.tolist())))

    def pick(keys: Sequence[int]) -> list[int]:
        out = []
        for k in keys:
            if k not in exclude:
                out.append(int(k))
                if len(out) >= per:
                    break
        return out

    proposed: dict[str, list[int]] = {
        "text": pick(_top_keys(text_top, len(text_top))),
        "cooc": pick(_top_keys({k: v for k, v in behaviour["cooc"][0].items() if v > 0}, per + len(exclude))),
        "ease": pick(_top_keys({k: v for k, v in behaviour["ease"][0].items() if v > 0}, per + len(exclude))),
        "popular": pick(model.keys[model.popular_rows[:per + len(exclude)]].tolist()),
        "trending": pick(model.keys[model.trending_rows[:per + len(exclude)]].tolist()),
        "new": pick(list(fresh_new) + model.keys[model.new_rows[:per + len(exclude)]].tolist()),
    }
    order: dict[int, None] = {}
    for name in SOURCES:
        for k in proposed[name]:
            order.setdefault(k, None)
    for k in extra:
        if k not in exclude:
            order.setdefault(int(k), None)
    keys = np.array(list(order), dtype=np.int64)
    c = len(keys)
    features = np.zeros((c, len(FEATURES)), dtype=np.float32)
    position = {k: n for n, k in enumerate(order)}  # every proposed key is in `order`: no np.isin (6 per request)
    sources = {name: np.zeros(c, dtype=bool) for name in SOURCES}
    for name in SOURCES:
        sources[name][[position[k] for k in proposed[name]]] = True
    via = {name: np.full(c, -1, dtype=np.int64) for name in ("cooc", "ease", "text")}
    if c == 0:
        return Scored(keys=keys, features=features, via=via, sources=sources, categories=[])
    rows = np.array([model.row_of.get(int(k), -1) for k in keys])
    known_rows = rows >= 0
    col = {name: n for n, name in enumerate(FEATURES)}
    if text_of is not None:
        features[:, col["text"]] = text_of(keys)
        if text_via is not None:
            via["text"] = text_via(keys)
    related = np.zeros(c)
    for name in ("cooc", "ease"):
        total, by, rec = behaviour[name]
        features[:, col[name]] = [total.get(int(k), 0.0) for k in keys]
        via[name] = np.array([by.get(int(k), -1) for k in keys], dtype=np.int64)
        related = np.maximum(related, [rec.get(int(k), 0.0) for k in keys])
    features[:, col["related_recency"]] = related
    features[known_rows, col["popularity"]] = model.popularity[rows[known_rows]]
    features[known_rows, col["trend"]] = model.trend[rows[known_rows]]
    meta = meta_of(keys)
    first = np.full(c, np.nan)
    first[known_rows] = model.first_seen[rows[known_rows]]
    first = np.fmin(first, meta.created)
    age = np.where(np.isnan(first), 0.0, np.maximum(now - first, 0.0) / DAY)
    features[:, col["age_days"]] = np.log1p(age)
    features[:, col["in_stock"]] = meta.in_stock
    # The user's tastes: category shares and typical price of what they interacted with (weighted as the profile).
    if positive:
        own = meta_of(np.array([i.item for i in positive], dtype=np.int64))
        own_weights = ranking.interactions_weights(positive).astype(np.float64)
        shares: dict[str, float] = {}
        for category, w in zip(own.category, own_weights):
            if category:
                shares[category] = shares.get(category, 0.0) + w
        total_w = float(own_weights.sum()) or 1.0
        features[:, col["category_affinity"]] = [shares.get(cat, 0.0) / total_w if cat else 0.0 for cat in meta.category]
        prices = own.price[np.isfinite(own.price)]
        if len(prices):
            typical = float(np.median(prices))
            price = np.where(np.isfinite(meta.price), np.maximum(meta.price, 0), np.nan)  # NaN: unknown (LightGBM's missing)
            features[:, col["price_affinity"]] = -np.abs(np.log1p(price) - math.log1p(max(typical, 0)))
        else:
            features[:, col["price_affinity"]] = np.nan
    else:
        features[:, col["price_affinity"]] = np.nan
    return Scored(keys=keys, features=features, via=via, sources=sources, categories=meta.category)


def meta_from_arrays(*, categories: Sequence[str], prices: np.ndarray | None = None, in_stock: np.ndarray | None = None,
                     created: np.ndarray | None = None) -> MetaOf:
    """A meta_of over row-indexed arrays (offline: key = row)."""
    n = len(categories)
    price_all = np.full(n, np.nan) if prices is None else np.asarray(prices, dtype=np.float64)
    stock_all = np.ones(n, dtype=np.float32) if in_stock is None else np.asarray(in_stock, dtype=np.float32)
    created_all = np.full(n, np.nan) if created is None else np.asarray(created, dtype=np.float64)

    def meta_of(keys: np.ndarray) -> ItemMeta:
        return ItemMeta(category=[categories[int(k)] for k in keys], price=price_all[keys], in_stock=stock_all[keys],
                        created=created_all[keys])

    return meta_of
