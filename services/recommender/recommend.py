"""Recommendations for a user and similar items, from the FAISS index of item texts plus popularity.

1. Profile: the user's latest PROFILE_EVENTS interactions, weighted by event type and recency (ranking.py),
   averaged over their item vectors.
2. Candidates: FAISS neighbours of the profile, plus the most popular items (of the category when filtered).
3. Filters: in stock, category, and (exclude_seen) nothing the user already interacted with.
4. Score: cosine to the profile + a small popularity prior; reason: the interacted item the candidate is
   closest to ("similar to X you bought") or "popular in C" / "trending now".
Users without usable history (unknown users included) get the popular items: never an error.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.db.models import Count, Q
from django.utils import timezone

from apps.recommender.models import Event, Item
from services.errors import NotFound, SuiteError
from services.metrics import RECOMMEND_SECONDS
from services.recommender import ranking
from services.recommender.vectors import index_get, vectors_of

logger = logging.getLogger(__name__)
K_MAX = 100
POPULAR_CACHE_S = 30.0  # popularity is recounted at most this often per process
POPULAR_KEEP = 1000  # the most popular items kept in memory
TRENDING_DAYS = 7  # popularity counts events of this many days (all time when there are none)

_popular_lock = threading.Lock()
_popular: dict[str, object] = {"at": -1e9, "counts": {}, "order": []}


CARD_FIELDS = ("pk", "external_id", "title", "category", "price", "in_stock")


@dataclass(frozen=True)
class Card:
    """What an answer shows of an item (read as plain values: building model instances cost most of a request)."""

    pk: int
    external_id: str
    title: str
    category: str
    price: float | None
    in_stock: bool


def cards_get(queryset: object) -> dict[int, Card]:
    return {row[0]: Card(*row) for row in queryset.values_list(*CARD_FIELDS)}  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Recommendation:
    item: Card
    score: float
    reason: str

    def as_dict(self) -> dict:
        i = self.item
        return {"id": i.external_id, "title": i.title, "category": i.category, "price": i.price, "in_stock": i.in_stock,
                "score": round(self.score, 5), "reason": self.reason}


def k_check(k: object, *, name: str = "k") -> int:
    try:
        value = int(str(k))
    except (TypeError, ValueError):
        raise SuiteError(f"`{name}` must be a whole number from 1 to {K_MAX}.", field=name) from None
    if not 1 <= value <= K_MAX:
        raise SuiteError(f"`{name}` must be from 1 to {K_MAX}.", field=name)
    return value


def popularity_get() -> tuple[dict[int, float], list[int]]:
    """({item pk: weighted event count}, pks most popular first), recent events first; cached per process.

    The first call counts in the caller's thread; later, stale counts are served while one background thread
    recounts (the count takes ~150 ms on 50k events: no customer request should wait for it).
    """
    now = time.monotonic()
    with _popular_lock:
        ready = _popular.get("ready", False)
        if ready and now - float(_popular["at"]) < POPULAR_CACHE_S:
            return _popular["counts"], _popular["order"]  # type: ignore[return-value]
        if ready:
            if not _popular.get("refreshing"):
                _popular["refreshing"] = True
                threading.Thread(target=_popularity_refresh, name="popularity-refresh", daemon=True).start()
            return _popular["counts"], _popular["order"]  # type: ignore[return-value]
    return _popularity_recount()


def _popularity_recount() -> tuple[dict[int, float], list[int]]:
    since = timezone.now() - timedelta(days=TRENDING_DAYS)
    counts = _popularity_count(Event.objects.filter(timestamp__gte=since, item__isnull=False))
    if not counts:
        counts = _popularity_count(Event.objects.filter(item__isnull=False))
    order = sorted(counts, key=lambda pk: (-counts[pk], pk))
    with _popular_lock:
        _popular.update(at=time.monotonic(), counts=counts, order=order, ready=True, refreshing=False)
    return counts, order


def _popularity_refresh() -> None:
    from django.db import connection

    try:
        _popularity_recount()
    except Exception:  # noqa: BLE001 - keep serving the old counts; the next stale read tries again
        logger.exception("popularity recount failed")
        with _popular_lock:
            _popular["refreshing"] = False
    finally:
        connection.close()  # this thread's own connection


def _popularity_count(events: object) -> dict[int, float]:
    rows = events.values("item_id").annotate(  # type: ignore[attr-defined]
        **{kind: Count("id", filter=Q(type=kind)) for kind in ranking.EVENT_WEIGHTS})
    counts = {r["item_id"]: sum(ranking.EVENT_WEIGHTS[k] * r[k] for k in ranking.EVENT_WEIGHTS) for r in rows}
    top = sorted(counts, key=lambda pk: -counts[pk])[:POPULAR_KEEP]
    return {pk: counts[pk] for pk in top}


def popularity_forget() -> None:
    with _popular_lock:
        _popular.update(at=-1e9, counts={}, order=[], ready=False, refreshing=False)


def user_interactions(*, user: str) -> list[tuple[ranking.Interaction, str]]:
    """The user's latest interactions with catalogue items, with each item's title (for reasons)."""
    rows = (Event.objects.filter(user_id=user, item__isnull=False).order_by("-timestamp")
            .values_list("item_id", "type", "timestamp", "item__title")[:ranking.PROFILE_EVENTS])
    return [(ranking.Interaction(item=pk, type=kind, at=at.timestamp()), title) for pk, kind, at, title in rows]


@RECOMMEND_SECONDS.labels(kind="user").time()
def recommendations_for(*, user: str, k: int = 10, category: str | None = None, exclude_seen: bool = True
                        ) -> tuple[list[Recommendation], str]:
    """(ranked recommendations, strategy: "personal" or "popular")."""
    k = k_check(k)
    history = user_interactions(user=user)
    seen = {i.item for i, _ in history}
    excluded = seen if exclude_seen else set()
    counts, order = popularity_get()
    pop_values = np.array(list(counts.values()), dtype=np.float32)
    pop_scale = dict(zip(counts, ranking.popularity_scaled(pop_values))) if counts else {}

    index = index_get()
    found, vectors = vectors_of(index=index, pks=[i.item for i, _ in history])
    by_pk = {i.item: (i, title) for i, title in history}
    profile = None
    if found:
        weights = ranking.interactions_weights([by_pk[pk][0] for pk in found])
        profile = ranking.profile_build(vectors=vectors, weights=weights)

    cosine: dict[int, float] = {}
    if profile is not None:
        want = (k + len(excluded)) * (8 if category else 3) + 20  # filters drop some: ask FAISS for more
        ids, scores = index.search(vectors=profile[None, :], k=min(want, max(len(index), 1)))
        cosine = {int(i): float(s) for i, s in zip(ids[0], scores[0]) if i >= 0}
    neighbours = set(cosine)  # what FAISS found: these get "similar to" reasons, the rest popularity ones
    n_popular = (2 if profile is not None else 4) * k + len(excluded)  # personal: popularity is only a prior
    candidates = list(cosine) + [pk for pk in order[:n_popular] if pk not in cosine]
    items = cards_get(Item.objects.filter(pk__in=candidates, in_stock=True))
    if category:
        items = {pk: i for pk, i in items.items() if i.category == category}
        if len(items) < k + len(excluded):  # the filter left too few: top up from the category's items
            more = Item.objects.filter(category=category, in_stock=True).exclude(pk__in=list(items) + list(excluded))
            items.update(cards_get(more.order_by("pk")[: k + len(excluded)]))
    ranked = []
    for pk, item in items.items():
        if pk in excluded:
            continue
        popularity = float(pop_scale.get(pk, 0.0))
        if profile is not None and pk not in cosine:
            cosine[pk] = float(np.dot(_vector(index, pk), profile)) if _has(index, pk) else 0.0
        score = ranking.scores_combine(cosine=np.float32(cosine.get(pk, 0.0)), popularity=np.float32(popularity))
        ranked.append((float(score), pk))
    ranked.sort(key=lambda pair: (-pair[0], pair[1]))
    chosen = ranked[:k]
    seen_vectors = {pk: vectors[n] for n, pk in enumerate(found)}
    out = [Recommendation(item=items[pk], score=score, reason=_reason(items[pk], pk, index, seen_vectors, by_pk, neighbours, counts))
           for score, pk in chosen]
    return out, ("personal" if profile is not None else "popular")


def _has(index: object, pk: int) -> bool:
    return index.vector(pk) is not None  # type: ignore[attr-defined]


def _vector(index: object, pk: int) -> np.ndarray:
    return index.vector(pk)  # type: ignore[attr-defined]  # under the index's lock: a sync may be writing


def _reason(item: Card, pk: int, index: object, seen_vectors: dict[int, np.ndarray], by_pk: dict, neighbours: set[int],
            popular: dict[int, float]) -> str:
    if seen_vectors and pk in neighbours and _has(index, pk):
        vector = _vector(index, pk)
        closest = max(seen_vectors, key=lambda s: float(np.dot(seen_vectors[s], vector)))
        interaction, title = by_pk[closest]
        return f"similar to {title or 'an item'} you {ranking.VERBS.get(interaction.type, 'viewed')}"
    if pk not in popular:  # reached through the category top-up, not popularity
        return f"new in {item.category}" if item.category else "new in the catalogue"
    return f"popular in {item.category}" if item.category else "trending now"


@RECOMMEND_SECONDS.labels(kind="similar").time()
def items_similar(*, external_id: str, k: int = 10) -> list[Recommendation]:
    """Items whose text is nearest this item's (in stock, itself excluded)."""
    k = k_check(k)
    item = Item.objects.filter(external_id=external_id).first()
    if item is None:
        raise NotFound(f"No item with id {external_id!r}.", field="id")
    index = index_get()
    if not _has(index, item.pk):
        return []
    query = _vector(index, item.pk)[None, :]
    ids, scores = index.search(vectors=query, k=min(3 * k + 1, max(len(index), 1)))
    score_of = {int(i): float(s) for i, s in zip(ids[0], scores[0]) if i >= 0 and i != item.pk}
    found = cards_get(Item.objects.filter(pk__in=list(score_of), in_stock=True))
    ranked = sorted((pk for pk in score_of if pk in found), key=lambda pk: (-score_of[pk], pk))[:k]
    return [Recommendation(item=found[pk], score=score_of[pk], reason=f"similar to {item.title or item.external_id}")
            for pk in ranked]
