"""The catalogue and the event log: validate, upsert items idempotently, record events once each.

Bad fields raise SuiteError naming the field; bulk calls report per-row errors and keep the good rows.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from django.db import IntegrityError, transaction

from apps.recommender.models import Event, Item
from services.errors import NotFound, SuiteError
from services.timeparse import time_parse

PRICE_MAX = 1e12  # a price past this is a mistake or an attack, in any currency
ITEM_FIELDS = ("id", "title", "description", "category", "tags", "price", "in_stock", "updated_at")
EVENT_TYPES = {t for t, _ in Event.TYPES}
EVENT_ALIASES = {"add_to_cart": "cart", "buy": "purchase", "order": "purchase"}


@dataclass
class WriteReport:
    added: int = 0
    updated: int = 0  # items: changed rows; events: never (an event is immutable)
    unchanged: int = 0  # items sent again as they are; events already stored under their event id
    errors: list[str] = field(default_factory=list)  # "row N: `field` reason" (imports: "file:line: ...")
    reembed: list[int] = field(default_factory=list)  # item pks to embed: the store skips those whose vector is current

    def as_dict(self) -> dict[str, Any]:
        return {"added": self.added, "updated": self.updated, "unchanged": self.unchanged, "errors": self.errors}


def _hash(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def item_text(*, title: str, description: str = "", category: str = "", tags: Sequence[str] = ()) -> str:
    """What the encoder sees of an item; an item without any text still gets a (neutral) vector."""
    parts = [title.strip(), description.strip(), category.strip(), " ".join(t.strip() for t in tags if t.strip())]
    return ". ".join(p for p in parts if p) or "(untitled item)"


def _text(value: object, name: str, *, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise SuiteError(f"`{name}` must be a string.", field=name)
    text = str(value).strip()
    if len(text) > limit:
        raise SuiteError(f"`{name}` is longer than {limit} characters.", field=name)
    return text


def _number(value: object, name: str, *, maximum: float) -> float | None:
    """A finite number from 0 to maximum, or None when absent; 1e999, NaN, Infinity, -1 and true are refused.

    A non-finite number would be stored, then break every JSON answer holding it (strict JSON has no Infinity).
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise SuiteError(f"`{name}` must be a number.", field=name)
    try:
        number = float(value)
    except (ValueError, OverflowError):  # OverflowError: an int too large for a float
        raise SuiteError(f"`{name}` must be a number.", field=name) from None
    if not math.isfinite(number) or not 0 <= number <= maximum:
        raise SuiteError(f"`{name}` must be a number from 0 to {maximum:g}.", field=name)
    return number


def _when(value: object, name: str, *, required: bool) -> datetime | None:
    if value in (None, ""):
        if required:
            raise SuiteError(f"`{name}` is required.", field=name)
        return None
    try:
        return time_parse(value)  # ISO 8601, or Unix seconds as a number or as text ("1700000000")
    except ValueError:
        raise SuiteError(f"`{name}` {str(value)[:40]!r} must be an ISO 8601 date-time or epoch seconds.",
                         field=name) from None


def item_clean(data: object, *, external_id: str | None = None) -> dict[str, Any]:
    """A validated item dict from what a client sent (the URL's id wins over the body's)."""
    if not isinstance(data, dict):
        raise SuiteError("An item must be a JSON object.")
    item_id = _text(external_id if external_id is not None else data.get("id", data.get("item_id")), "id", limit=200)
    if not item_id:
        raise SuiteError("`id` is required.", field="id")
    tags = data.get("tags") or []
    if isinstance(tags, str):
        tags = [t for t in (s.strip() for s in tags.replace("|", ",").split(",")) if t]
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise SuiteError("`tags` must be a list of strings.", field="tags")
    price = _number(data.get("price"), "price", maximum=PRICE_MAX)
    in_stock = data.get("in_stock", True)
    if isinstance(in_stock, str):
        lowered = in_stock.strip().lower()
        if lowered not in {"true", "false", "1", "0", "yes", "no", ""}:
            raise SuiteError("`in_stock` must be true or false.", field="in_stock")
        in_stock = lowered in {"true", "1", "yes", ""}
    if not isinstance(in_stock, bool):
        raise SuiteError("`in_stock` must be true or false.", field="in_stock")
    return {"external_id": item_id, "title": _text(data.get("title"), "title", limit=500),
            "description": _text(data.get("description"), "description", limit=20000),
            "category": _text(data.get("category"), "category", limit=200), "tags": tags[:50], "price": price,
            "in_stock": in_stock, "updated_at": _when(data.get("updated_at"), "updated_at", required=False)}


def items_upsert(*, rows: Iterable[dict[str, Any]]) -> WriteReport:
    """Create or update cleaned items (item_clean's dicts); unchanged ones are left alone."""
    report = WriteReport()
    rows = list({row["external_id"]: row for row in rows}.values())  # the last of duplicates in one batch wins
    with transaction.atomic():
        existing = {i.external_id: i for i in Item.objects.filter(external_id__in=[r["external_id"] for r in rows])}
        new, changed = [], []
        for row in rows:
            content = _hash(row)
            text = item_text(title=row["title"], description=row["description"], category=row["category"], tags=row["tags"])
            text_hash = _hash(text)
            item = existing.get(row["external_id"])
            if item is None:
                new.append(Item(**row, content_hash=content, text_hash=text_hash))
            elif item.content_hash == content:
                report.unchanged += 1
                report.reembed.append(item.pk)  # the store embeds it only when its vector is missing (an embedding that failed)
            else:
                if item.text_hash != text_hash:  # a changed price or stock keeps the vector
                    report.reembed.append(item.pk)
                for name, value in row.items():
                    setattr(item, name, value)
                item.content_hash, item.text_hash = content, text_hash
                changed.append(item)
        Item.objects.bulk_create(new, batch_size=1000)
        if changed:
            Item.objects.bulk_update(changed, fields=[*(f for f in rows[0] if f != "external_id"), "content_hash", "text_hash"],
                                     batch_size=1000)
        report.added, report.updated = len(new), len(changed)
        if new:
            created = dict(Item.objects.filter(external_id__in=[i.external_id for i in new]).values_list("external_id", "pk"))
            report.reembed += list(created.values())
            waiting = Event.objects.filter(item__isnull=True, item_external_id__in=list(created))
            for external_id in set(waiting.values_list("item_external_id", flat=True)):  # events sent before their item
                waiting.filter(item_external_id=external_id).update(item_id=created[external_id])
    return report


def item_delete(*, external_id: str) -> int:
    """Delete one item and tombstone its vector in the same transaction (every host stops recommending it); its pk.

    Its events stay, with `item` unset and `item_external_id` kept: an item sent again under that id gets them back.
    """
    from services.recommender.vectors import items_forget  # that module imports this one

    with transaction.atomic():
        item = Item.objects.select_for_update().filter(external_id=external_id).first()
        if item is None:
            raise NotFound(f"No item with id {external_id!r}.", field="id")
        pk = item.pk
        items_forget(pks=[pk])
        item.delete()
    return pk


def event_clean(data: object) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise SuiteError("An event must be a JSON object.")
    user = _text(data.get("user_id", data.get("user")), "user_id", limit=200)
    if not user:
        raise SuiteError("`user_id` is required.", field="user_id")
    item = _text(data.get("item_id", data.get("item")), "item_id", limit=200)
    if not item:
        raise SuiteError("`item_id` is required.", field="item_id")
    kind = _text(data.get("type", data.get("event")), "type", limit=32).lower() or "view"
    kind = EVENT_ALIASES.get(kind, kind)
    if kind not in EVENT_TYPES:
        raise SuiteError(f"`type` must be one of {', '.join(sorted(EVENT_TYPES))}.", field="type")
    at = _when(data.get("timestamp"), "timestamp", required=False)
    event_id = _text(data.get("event_id"), "event_id", limit=200)
    if not event_id:
        if at is None:  # stamped on arrival, a retry would look like a second event
            raise SuiteError("`timestamp` is required when `event_id` is absent: together with the user, item and type "
                             "it identifies the event, so a retry is stored once.", field="timestamp")
        event_id = event_id_derive(user_id=user, item_id=item, kind=kind, at=at)
    return {"event_id": event_id, "user_id": user, "item_external_id": item, "type": kind,
            "timestamp": at or datetime.now(tz=timezone.utc)}


def event_id_derive(*, user_id: str, item_id: str, kind: str, at: datetime) -> str:
    """The id of an event sent without one: "h:" + the first 40 hex digits of SHA-256 over the JSON list
    [user_id, item_id, type, timestamp as ISO 8601 in UTC], so the same event sent twice, in any time format
    ("Z", "+01:00", Unix seconds), is stored once. (Two identical events in the same instant are one event.)"""
    return "h:" + _hash([user_id, item_id, kind, at.astimezone(timezone.utc).isoformat()])[:40]


def events_record(*, rows: Sequence[dict[str, Any]]) -> WriteReport:
    """Store cleaned events (event_clean's dicts) once each by event id; unknown items are kept, unlinked."""
    report = WriteReport()
    rows = list({row["event_id"]: row for row in rows}.values())
    seen_before = set(Event.objects.filter(event_id__in=[r["event_id"] for r in rows]).values_list("event_id", flat=True))
    fresh = [r for r in rows if r["event_id"] not in seen_before]
    items = dict(Item.objects.filter(external_id__in={r["item_external_id"] for r in fresh}).values_list("external_id", "pk"))
    objs = [Event(**r, item_id=items.get(r["item_external_id"])) for r in fresh]
    try:
        with transaction.atomic():
            Event.objects.bulk_create(objs, batch_size=1000)
        report.added = len(objs)
    except IntegrityError:  # a concurrent writer stored some of them first: go one by one
        for obj in objs:
            try:
                with transaction.atomic():
                    obj.save(force_insert=True)
                report.added += 1
            except IntegrityError:
                seen_before.add(obj.event_id)
    report.unchanged = len(rows) - report.added
    return report


def rows_clean(*, rows: Sequence[object], clean: Callable[[object], dict[str, Any]], label: Callable[[int], str]
               ) -> tuple[list[dict[str, Any]], list[str]]:
    """Clean each row; bad ones become "label: message" errors, good ones are returned."""
    good, errors = [], []
    for n, row in enumerate(rows):
        try:
            good.append(clean(row))
        except SuiteError as exc:
            errors.append(f"{label(n)}: {exc.message}")
    return good, errors
