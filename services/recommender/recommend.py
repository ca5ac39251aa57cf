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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any, NamedTuple

import numpy as np
from django.db import connection
from django.db.models import Count, Q
from django.utils import timezone

from apps.recommender.models import Event, Item
from services.errors import NotFound, SuiteError
from services.metrics import RECOMMEND_SECONDS
from services.recommender import merch, ranking
from services.recommender.behaviour import FEATURES, Behaviour, ItemMeta, Scored, SourceConfig
from services.recommender.learned import rank_candidates, user_candidates
from services.recommender.served import ranker_served
from services.recommender.sources import IndexText, behaviour_current
from services.recommender.vectors import index_get

logger = logging.getLogger(__name__)
K_MAX = 100
SERVE_PER_SOURCE = SourceConfig().per_source  # candidates per source per request (more for deep pages and filters)
OFFSET_MAX = 400  # deepest page start: candidates are gathered down to offset + k
SESSION_MAX = 100  # recent items an anonymous session may send
EXCLUDE_MAX = 1000  # ids in one request's exclude list
POPULAR_CACHE_S = 30.0  # popularity is recounted at most this often per process
POPULAR_KEEP = 1000  # the most popular items kept in memory
TRENDING_DAYS = 7  # popularity counts events of this many days (all time when there are none)

_popular_lock = threading.Lock()
_popular: dict[str, object] = {"at": -1e9, "counts": {}, "order": []}


_timings: ContextVar[dict[str, float] | None] = ContextVar("recommender_timings", default=None)


@contextmanager
def timings_collect() -> Iterator[dict[str, float]]:
    """Seconds the recommendations computed in this context spend per section ("history", "candidates", of which
    "cards", and "ranker": the learned ranker's scores and reasons); the API sends them as a Server-Timing header."""
    bucket: dict[str, float] = {}
    token = _timings.set(bucket)
    try:
        yield bucket
    finally:
        _timings.reset(token)


@contextmanager
def _section(name: str) -> Iterator[None]:
    bucket = _timings.get()
    if bucket is None:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        bucket[name] = bucket.get(name, 0.0) + time.perf_counter() - started


CARD_FIELDS = ("pk", "external_id", "title", "category", "price", "in_stock")


class Card(NamedTuple):
    """What an answer shows of an item (read as plain values: building model instances cost most of a request; a
    named tuple is built ~4x faster than a frozen dataclass, and a request builds one per candidate)."""

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
    newest_forget()


def _seconds(value: object) -> float:
    """A datetime column as a plain cursor returns it (SQLite: naive UTC, or its text, as Django stores it with USE_TZ;
    PostgreSQL: an aware datetime) in seconds; NaN when unset."""
    if value is None:
        return np.nan
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:  # type: ignore[attr-defined]
        value = value.replace(tzinfo=dt_timezone.utc)  # type: ignore[attr-defined]
    return value.timestamp()  # type: ignore[attr-defined]


def _seconds_many(values: list) -> np.ndarray:
    """_seconds of many values (float64): SQLite's text in one numpy parse (5 us a value through datetime, measured)."""
    if values and all(value is None or isinstance(value, str) for value in values):
        parsed = np.array(["NaT" if value is None else value for value in values], dtype="datetime64[us]")
        return np.where(np.isnat(parsed), np.nan, parsed.astype(np.int64) / 1e6)
    return np.array([_seconds(value) for value in values], dtype=np.float64)


_USER = "\x00user\x00"  # stands for the user in a query compiled once (no user id holds NUL)
_compiled: dict[str, tuple[str, tuple]] = {}


def _user_rows(name: str, build: Callable[[str], Any], user: str) -> list[tuple]:
    """The rows of the query build(user) returns, its SQL compiled by the ORM once per process and run with each user
    through a plain cursor: compiling was most of these small per-request queries' time (the two below: ~2.5 ms of a
    ~14 ms request on the busy 2-core machine, measured). The SQL is the ORM's own, so the rows and their order are."""
    if name not in _compiled:
        _compiled[name] = build(_USER).query.sql_with_params()
    sql, params = _compiled[name]
    with connection.cursor() as cursor:
        cursor.execute(sql, [user if value == _USER else value for value in params])
        return cursor.fetchall()


def user_interactions(*, user: str) -> list[tuple[ranking.Interaction, str]]:
    """The user's latest interactions with catalogue items (not_interested left out), with each item's title (for reasons)."""
    rows = _user_rows("interactions", lambda u: (
        Event.objects.filter(user_id=u, item__isnull=False).exclude(type=Event.NOT_INTERESTED).order_by("-timestamp")
        .values_list("item_id", "type", "timestamp", "item__title")[:ranking.PROFILE_EVENTS]), user)
    return [(ranking.Interaction(item=int(pk), type=kind, at=_seconds(at)), title) for pk, kind, at, title in rows]


def user_dismissed(*, user: str) -> set[int]:
    """Items the user said they are not interested in (demoted in their recommendations)."""
    rows = _user_rows("dismissed", lambda u: (
        Event.objects.filter(user_id=u, type=Event.NOT_INTERESTED, item__isnull=False).values_list("item_id", flat=True)[:1000]),
        user)
    return {int(pk) for (pk,) in rows}


def session_interactions(*, items: Sequence[str]) -> list[tuple[ranking.Interaction, str]]:
    """An anonymous session's recent item ids (oldest first) as views a second apart; unknown ids are left out."""
    if len(items) > SESSION_MAX:
        raise SuiteError(f"At most {SESSION_MAX} recent items per session.", field="items")
    found = dict((e, (pk, t)) for e, pk, t in Item.objects.filter(external_id__in=list(items))
                 .values_list("external_id", "pk", "title"))
    now = time.time()
    out = []
    for n, external in enumerate(items):
        if external in found:
            pk, title = found[external]
            out.append((ranking.Interaction(item=pk, type="view", at=now - (len(items) - n)), title))
    return out


def offset_check(offset: object) -> int:
    try:
        value = int(str(offset))
    except (TypeError, ValueError):
        raise SuiteError(f"`offset` must be a whole number from 0 to {OFFSET_MAX}.", field="offset") from None
    if not 0 <= value <= OFFSET_MAX:
        raise SuiteError(f"`offset` must be from 0 to {OFFSET_MAX}.", field="offset")
    return value


def per_category_check(value: object) -> int | None:
    if value in (None, ""):
        return None
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        raise SuiteError("`per_category` must be a whole number from 1 to 100.", field="per_category") from None
    if not 1 <= number <= 100:
        raise SuiteError("`per_category` must be from 1 to 100.", field="per_category")
    return number


def exclude_check(value: object) -> list[str]:
    """The exclude list: a list of item ids, or one comma-separated string."""
    if value in (None, ""):
        return []
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise SuiteError("`exclude` must be a list of item ids (or one comma-separated string).", field="exclude")
    if len(items) > EXCLUDE_MAX:
        raise SuiteError(f"At most {EXCLUDE_MAX} ids in `exclude`.", field="exclude")
    return [v for v in items if v]


_fallback: dict[str, object] = {"counts": None, "model": None}


def _popularity_model() -> Behaviour:
    """Without a fitted snapshot: popularity alone (the cached counts) as the behaviour model."""
    counts, order = popularity_get()
    with _popular_lock:
        if _fallback["counts"] is counts:
            return _fallback["model"]  # type: ignore[return-value]
    keys = np.array(order, dtype=np.int64)
    scaled = ranking.popularity_scaled(np.array([counts[k] for k in order], dtype=np.float32))
    empty_ids, empty = np.full((len(keys), 0), -1, dtype=np.int32), np.zeros((len(keys), 0), dtype=np.float32)
    model = Behaviour(keys=keys, cooc_ids=empty_ids, cooc_scores=empty, ease_ids=empty_ids, ease_scores=empty,
                      popularity=scaled, trend=scaled, first_seen=np.full(len(keys), np.nan), reference=time.time())
    with _popular_lock:
        _fallback.update(counts=counts, model=model)
    return model


NEWEST_CACHE_S = 2.0  # the newest items (the "new" source's fresh part) are re-read after this long
_newest_lock = threading.Lock()
_newest_cache: dict[str, object] = {"at": -1e9, "pks": []}


def _newest() -> list[int]:
    """The 1000 newest items in stock, re-read at most every NEWEST_CACHE_S (deleted ones drop out with the cards)."""
    now = time.monotonic()
    with _newest_lock:
        if now - float(_newest_cache["at"]) < NEWEST_CACHE_S:  # type: ignore[arg-type]
            return _newest_cache["pks"]  # type: ignore[return-value]
    pks = list(Item.objects.filter(in_stock=True).order_by("-created_at", "-pk").values_list("pk", flat=True)[:1000])
    with _newest_lock:
        _newest_cache.update(at=now, pks=pks)
    return pks


def newest_forget() -> None:
    with _newest_lock:
        _newest_cache.update(at=-1e9, pks=[])


_CARDS_SQL: dict[str, str] = {}


def cards_read(pks: Sequence[int]) -> list[tuple[Card, float]]:
    """(card, created_at in seconds) of these items, by one plain SQL query per 500 pks.

    Not the ORM: building the query and converting each value (created_at's datetime parsing above all) took ~85 % of
    this read, the largest part of a request (150 items on the busy 2-core machine: 5.8 ms through values_list, 0.8 ms
    by a cursor, measured). The values are the same; tests/apps/recommender/test_serving_speed.py compares them.
    """
    if not pks:
        return []
    if "select" not in _CARDS_SQL:
        quote = connection.ops.quote_name
        fields = [Item._meta.pk if name == "pk" else Item._meta.get_field(name) for name in (*CARD_FIELDS, "created_at")]
        columns = [quote(field.column) for field in fields]
        if connection.vendor == "sqlite":  # as text: sqlite3's datetime converter (Django's) was a third of this read
            columns[-1] = f"CAST({columns[-1]} AS TEXT)"
        columns = ", ".join(columns)
        _CARDS_SQL["select"] = f"SELECT {columns} FROM {quote(Item._meta.db_table)} WHERE {quote(Item._meta.pk.column)} IN "
    out = []
    with connection.cursor() as cursor:
        for start in range(0, len(pks), 500):  # under every backend's bound on parameters per query
            chunk = [int(k) for k in pks[start:start + 500]]
            cursor.execute(_CARDS_SQL["select"] + "(" + ", ".join(["%s"] * len(chunk)) + ")", chunk)
            rows = cursor.fetchall()
            created = _seconds_many([row[-1] for row in rows])
            out += [(Card(int(pk), external_id, title, category, None if price is None else float(price), bool(in_stock)),
                     float(at)) for (pk, external_id, title, category, price, in_stock, _), at in zip(rows, created)]
    return out


class _Meta:
    """meta_of for requests: the fields of the items a request looks at, read once per request.

    Read each time rather than cached: a deleted or sold-out item must not be shown by any host (a per-process cache
    saved ~2 ms of ~9 on 20k items but could show a deleted item, measured). `want` defers keys to the next read, so
    the history's and the candidates' items come in one query.
    """

    def __init__(self) -> None:
        self.cards: dict[int, Card] = {}
        self.created: dict[int, float] = {}
        self.pending: list[int] = []

    def want(self, keys: Sequence[int]) -> None:
        self.pending += [int(k) for k in keys]

    def load(self, keys: Sequence[int]) -> None:
        wanted, self.pending = self.pending + [int(k) for k in keys], []
        missing = list(dict.fromkeys(k for k in wanted if k not in self.cards))
        if not missing:
            return
        with _section("cards"):
            for card, created in cards_read(missing):
                self.cards[card.pk] = card
                self.created[card.pk] = created

    def __call__(self, keys: np.ndarray) -> ItemMeta:
        self.load(keys.tolist())
        cards = [self.cards.get(int(k)) for k in keys]
        return ItemMeta(category=[c.category if c else "" for c in cards],
                        price=np.array([c.price if c and c.price is not None else np.nan for c in cards], dtype=np.float64),
                        in_stock=np.array([1.0 if c and c.in_stock else 0.0 for c in cards], dtype=np.float32),
                        created=np.array([self.created.get(int(k), np.nan) for k in keys], dtype=np.float64))


def pages_diversify(*, keys: Sequence[int], category_of: dict[int, str], per_category: int | None, page: int,
                    caps: dict[str, int] | None = None) -> list[int]:
    """Re-order a ranking so each page of `page` items holds at most `per_category` of one category (and at most
    caps[c] of category c: a merchandiser's quotas; the lower cap wins).

    Pages fill in rank order with the best items under the caps; a page the remaining categories cannot fill under
    the caps is completed with the best remaining items (never an empty or short page). Items without a category
    are never capped.
    """
    caps = caps or {}

    def cap(category: str) -> float:
        return min(per_category if per_category else float("inf"), caps.get(category, float("inf")))

    remaining, out = list(keys), []
    while remaining:
        counts: dict[str, int] = {}
        chosen, rest = [], []
        for key in remaining:
            category = category_of.get(key, "")
            if len(chosen) < page and (not category or counts.get(category, 0) < cap(category)):
                chosen.append(key)
                counts[category] = counts.get(category, 0) + 1
            else:
                rest.append(key)
        if len(chosen) < page:
            fill = page - len(chosen)
            chosen, rest = chosen + rest[:fill], rest[fill:]
        out += chosen
        remaining = rest
    return out


@RECOMMEND_SECONDS.labels(kind="user").time()
def recommendations_for(*, user: str | None = None, session: Sequence[str] | None = None, k: int = 10, offset: int = 0,
                        category: str | None = None, exclude_seen: bool = True, exclude: Sequence[str] = (),
                        per_category: int | None = None) -> tuple[list[Recommendation], str]:
    """(ranked recommendations, strategy: "personal", "session" or "popular") for a user or an anonymous session.

    1. History: the user's latest interactions, or the session's item ids (oldest first); the user's
       not_interested items are demoted to the end.
    2. Candidates and features from every source (services/recommender/learned.py user_candidates): text
       neighbours of the profile, the behaviour snapshot's item-to-item, EASE, popular, trending and new items.
    3. Score: the ranker registered with the recommender version whose vectors this process serves (without a tuned
       version: the worker's snapshot ranker when it passed its gate), else the old formula (services/recommender/served.py).
    4. Filters (in stock, category, seen, the exclude list), diversity (per_category per page of k), the page
       (offset, k); reasons from each item's strongest feature.
    """
    k = k_check(k)
    offset = offset_check(offset)
    if session is None and not user:
        raise SuiteError("`user` is required.", field="user")
    with _section("history"):
        if session is not None:
            history = session_interactions(items=session)
            dismissed: set[int] = set()
        else:
            history = user_interactions(user=user)
            dismissed = user_dismissed(user=user)
    seen = {i.item for i, _ in history}
    excluded = set(seen) if exclude_seen else set()
    if exclude:
        excluded |= set(Item.objects.filter(external_id__in=list(exclude)).values_list("pk", flat=True))
    snapshot = behaviour_current()
    model = snapshot.model if snapshot is not None else _popularity_model()
    index = index_get()
    ranker = ranker_served(tag=index.tag, snapshot=snapshot).ranker  # the served version's own (served.py)
    need = offset + k
    per_source = min(1000, max(SERVE_PER_SOURCE, need * (4 if category else 1) * (2 if per_category else 1) + len(dismissed)))
    config = SourceConfig(per_source=per_source)
    meta = _Meta()
    titles = {i.item: title for i, title in history}
    meta_keys = [i.item for i, _ in history]
    fresh_new = _newest()[:per_source]
    rules = merch.rules_active()
    pinned = [pk for _, pk in rules.pins]
    meta.want(meta_keys + pinned)  # read with the candidates' cards (one query)
    with _section("candidates"):
        scored = user_candidates(model=model, history=[i for i, _ in history], text=IndexText(index), meta_of=meta,
                                 now=time.time(), exclude=excluded, fresh_new=fresh_new, config=config,
                                 extra=list(rules.boosts) + pinned)
    keys = scored.keys.tolist()
    with _section("ranker" if ranker is not None else "formula"):
        ranked_scores = rank_candidates(scored=scored, ranker=ranker)
    scores = merch.scores_boost(keys=keys, scores=ranked_scores, boosts=rules.boosts)
    keep = [n for n, key in enumerate(keys) if (card := meta.cards.get(key)) is not None and card.in_stock
            and (not category or card.category == category)]
    order = sorted(keep, key=lambda n: (keys[n] in dismissed, -float(scores[n]), keys[n]))
    ranked = [keys[n] for n in order]
    position = {key: n for n, key in zip(order, ranked)}
    if category and len(ranked) < need:  # the filter left too few: top up from the category's items
        more = (Item.objects.filter(category=category, in_stock=True).exclude(pk__in=list(excluded) + ranked)
                .order_by("pk").values_list(*CARD_FIELDS)[:need - len(ranked)])
        for row in more:
            meta.cards[row[0]] = Card(*row)
            ranked.append(row[0])
    if per_category or rules.quotas:
        ranked = pages_diversify(keys=ranked, category_of={key: meta.cards[key].category for key in ranked},
                                 per_category=per_category, page=k, caps=rules.quotas)
    shown_pins = [(p, pk) for p, pk in rules.pins if pk in position and pk not in dismissed]  # kept by the filters above
    ranked = merch.pins_apply(ranked=ranked, pins=shown_pins)
    pinned_shown = {pk for _, pk in shown_pins}
    chosen = ranked[offset:offset + k]
    rows = [position[key] for key in chosen if key in position]
    with _section("ranker" if ranker is not None else "formula"):
        kinds = dict(zip([keys[n] for n in rows], ranker.reasons(scored.features[rows]) if ranker is not None and rows else []))
    out = []
    for key in chosen:
        n = position.get(key)
        kind = "featured" if key in pinned_shown else kinds.get(key) or _reason_kind(scored, n, key, model,
                                                                                      has_profile=bool(titles))
        out.append(Recommendation(item=meta.cards[key], score=float(scores[n]) if n is not None else 0.0,
                                  reason=_reason(kind, meta.cards[key], scored, n, titles, history)))
    personal = bool(history) and (scored.features[:, FEATURES.index("text")].any() or
                                  scored.features[:, FEATURES.index("cooc")].any() or
                                  scored.features[:, FEATURES.index("ease")].any())
    strategy = "session" if session is not None and personal else "personal" if personal else "popular"
    return out, strategy


def _reason_kind(scored: Scored, n: int | None, key: int, model: Behaviour, *, has_profile: bool) -> str:
    """Without a ranker: similar (a text neighbour), together (item-to-item), popular, else new."""
    if n is None:
        return "new"
    f = scored.features[n]
    if has_profile and scored.sources["text"][n] and f[FEATURES.index("text")] > 0:
        return "similar"
    if f[FEATURES.index("cooc")] > 0 or f[FEATURES.index("ease")] > 0:
        return "together"
    if key in model.row_of and model.popularity[model.row_of[key]] > 0:
        return "popular"
    return "new"


def _reason(kind: str, item: Card, scored: Scored, n: int | None, titles: dict[int, str],
            history: list[tuple[ranking.Interaction, str]]) -> str:
    verb = {i.item: ranking.VERBS.get(i.type, "viewed") for i, _ in history}
    if n is not None and kind == "similar":
        via = int(scored.via["text"][n])
        if via in titles:
            return f"similar to {titles[via] or 'an item'} you {verb.get(via, 'viewed')}"
    if n is not None and kind == "together":
        cooc, ease = scored.features[n, FEATURES.index("cooc")], scored.features[n, FEATURES.index("ease")]
        via = int(scored.via["cooc" if cooc >= ease else "ease"][n])
        if via in titles:
            return f"bought together with {titles[via] or 'an item you chose'}"
    if kind == "new":
        return f"new in {item.category}" if item.category else "new in the catalogue"
    if kind == "featured":
        return f"featured in {item.category}" if item.category else "featured"
    return f"popular in {item.category}" if item.category else "trending now"


def impression_record(*, user: str | None, items: Sequence[str], offset: int, strategy: str) -> str:
    """Queue what was shown (services/recommender/impressions.py); returns the request id."""
    from services.recommender.impressions import impression_record as record

    served = ranker_served(tag=index_get().tag, snapshot=behaviour_current())
    return record(user=user, items=items, offset=offset, strategy=strategy, ranker=served.name if served.ranker is not None else "")


def _has(index: object, pk: int) -> bool:
    return index.vector(pk) is not None  # type: ignore[attr-defined]


def _vector(index: object, pk: int) -> np.ndarray:
    return index.vector(pk)  # type: ignore[attr-defined]  # under the index's lock: a sync may be writing


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
