"""Merchandiser rules over every recommendation list: pinned items, boosted items, category quotas per page.

Rules are rows (apps.recommender.models.MerchRule, edited in the admin or with `rule_add`); each process reads the
active ones at most every RULES_CACHE_S. services/recommender/recommend.py applies them in this order:
1. boosts raise (or lower) an item's score by `weight` times the spread of the list's scores (1.0: to the top);
   boosted and pinned items are always among the candidates;
2. quotas cap a category's items per page (with the request's per_category, the lower cap wins);
3. pins put an item at a position of the first page, above every other rule (still never an item out of stock,
   excluded by the request, seen when exclude_seen, or outside the requested category).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from django.db import transaction

from services.errors import NotFound, SuiteError

RULES_CACHE_S = 5.0
KINDS = ("pin", "boost", "quota")


@dataclass(frozen=True)
class Rules:
    pins: list[tuple[int, int]] = field(default_factory=list)  # (position from 1, item pk), by position
    boosts: dict[int, float] = field(default_factory=dict)  # item pk -> weight
    quotas: dict[str, int] = field(default_factory=dict)  # category -> most items per page


def rule_check(*, kind: str, item: int | None, position: int | None, weight: float | None, category: str,
               max_per_page: int | None) -> None:
    """SuiteError naming the field when a rule cannot be applied as given."""
    if kind not in KINDS:
        raise SuiteError(f"`kind` must be one of {', '.join(KINDS)}.", field="kind")
    if kind in ("pin", "boost") and item is None:
        raise SuiteError(f"A {kind} rule needs the `item` it {kind}s.", field="item")
    if kind == "pin" and (position is None or not 1 <= position <= 100):
        raise SuiteError("A pin needs a `position` from 1 (first) to 100.", field="position")
    if kind == "boost" and (weight is None or not -1.0 <= weight <= 1.0 or weight == 0):
        raise SuiteError("A boost needs a `weight` from -1 to 1, not 0 (1: to the top, 0.1: a nudge, negative lowers).",
                         field="weight")
    if kind == "quota" and (not category or max_per_page is None or max_per_page < 0):
        raise SuiteError("A quota needs a `category` and `max_per_page` (0 or more).", field="max_per_page")


def rule_add(*, kind: str, item: str | None = None, position: int | None = None, weight: float | None = None,
             category: str = "", max_per_page: int | None = None, note: str = "") -> object:
    """Store an active rule (item: the shop's item id); returns the row."""
    from apps.recommender.models import Item, MerchRule

    pk = None
    if item is not None:
        pk = Item.objects.filter(external_id=item).values_list("pk", flat=True).first()
        if pk is None:
            raise NotFound(f"No item with id {item!r}.", field="item")
    rule_check(kind=kind, item=pk, position=position, weight=weight, category=category, max_per_page=max_per_page)
    with transaction.atomic():
        rule = MerchRule.objects.create(kind=kind, item_id=pk, position=position, weight=weight, category=category,
                                        max_per_page=max_per_page, note=note)
    rules_forget()
    return rule


_lock = threading.Lock()
_cached: dict[str, object] = {"at": -1e9, "rules": Rules()}


def rules_active() -> Rules:
    """The active rules, read at most every RULES_CACHE_S per process."""
    from apps.recommender.models import MerchRule

    now = time.monotonic()
    with _lock:
        if now - float(_cached["at"]) < RULES_CACHE_S:  # type: ignore[arg-type]
            return _cached["rules"]  # type: ignore[return-value]
    pins, boosts, quotas = [], {}, {}
    for kind, item, position, weight, category, cap in (MerchRule.objects.filter(active=True).order_by("pk")
                                                        .values_list("kind", "item_id", "position", "weight", "category",
                                                                     "max_per_page")):
        if kind == "pin" and item is not None and position:
            pins.append((int(position), int(item)))
        elif kind == "boost" and item is not None and weight:
            boosts[int(item)] = float(weight)
        elif kind == "quota" and category and cap is not None:
            quotas[category] = min(int(cap), quotas.get(category, int(cap)))
    rules = Rules(pins=sorted(pins), boosts=boosts, quotas=quotas)
    with _lock:
        _cached.update(at=now, rules=rules)
    return rules


def rules_forget() -> None:
    with _lock:
        _cached.update(at=-1e9, rules=Rules())


def scores_boost(*, keys: Sequence[int], scores: np.ndarray, boosts: dict[int, float]) -> np.ndarray:
    """Scores with each boosted item's raised by weight x (max - min) of the list's scores."""
    if not boosts or not len(scores):
        return scores
    spread = float(scores.max() - scores.min()) or 1.0
    out = scores.astype(np.float64).copy()
    for n, key in enumerate(keys):
        if key in boosts:
            out[n] += boosts[key] * spread * (1.0 + 1e-6)  # weight 1.0 lands strictly above the best
    return out


def pins_apply(*, ranked: list[int], pins: Sequence[tuple[int, int]]) -> list[int]:
    """The ranking with each pinned item moved to its position (positions from 1; past the end: appended)."""
    if not pins:
        return ranked
    pinned = {pk for _, pk in pins}
    out = [key for key in ranked if key not in pinned]
    for position, pk in sorted(pins):
        out.insert(min(position - 1, len(out)), pk)
    return out
