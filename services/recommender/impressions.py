"""Impressions: every list of recommendations shown, recorded without a database write in the request.

A request pushes one JSON row onto the Redis list IMPRESSIONS_KEY (~0.2 ms; a row insert cost 23 ms on the busy
SQLite demo, most of a request); the beat's `recommender.impressions_drain` moves them into the Impression table
every RECOMMENDER_IMPRESSIONS_DRAIN_S in bulk. Without Redis the row is written at once (the request never fails for
it). A worker killed between taking a batch off the list and writing it loses that batch (at most DRAIN_BATCH rows):
impressions are for measurement, not bookkeeping.
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone

logger = logging.getLogger(__name__)
IMPRESSIONS_KEY = "suite:recommender:impressions"
DRAIN_BATCH = 2000


def _row(data: dict) -> object:
    from apps.recommender.models import Impression

    return Impression(request_id=data["request_id"], user_id=data["user_id"], items=data["items"], offset=data["offset"],
                      strategy=data["strategy"], ranker=data["ranker"],
                      shown_at=datetime.fromtimestamp(data["shown_at"], tz=timezone.utc))


def impression_record(*, user: str | None, items: Sequence[str], offset: int, strategy: str, ranker: str = "") -> str:
    """Record what was shown (for click-through and position-debiased training); returns the request id."""
    from services.kafka_lag import redis_client

    data = {"request_id": uuid.uuid4().hex, "user_id": user or "", "items": list(items), "offset": offset,
            "strategy": strategy, "ranker": ranker, "shown_at": time.time()}
    try:
        redis_client().rpush(IMPRESSIONS_KEY, json.dumps(data))
    except Exception:  # noqa: BLE001 - Redis away: write the row now rather than lose it or fail the request
        logger.warning("impressions: Redis unreachable, writing the row directly", exc_info=True)
        _row(data).save()
    return data["request_id"]


def impressions_drain(*, most: int = 50 * DRAIN_BATCH) -> int:
    """Move up to `most` queued impressions into the database (beat `recommender.impressions_drain`); returns how many."""
    from apps.recommender.models import Impression
    from services.kafka_lag import redis_client

    client, moved = redis_client(), 0
    while moved < most:
        pipe = client.pipeline()  # MULTI/EXEC: no other drainer takes the same rows
        pipe.lrange(IMPRESSIONS_KEY, 0, DRAIN_BATCH - 1)
        pipe.ltrim(IMPRESSIONS_KEY, DRAIN_BATCH, -1)
        rows, _ = pipe.execute()
        if not rows:
            break
        Impression.objects.bulk_create([_row(json.loads(r)) for r in rows], ignore_conflicts=True)
        moved += len(rows)
    return moved


SHOWN_MAX = 50_000  # newest impressions the ranker's training reads (negatives: shown, then ignored); bounds memory


def impressions_shown(*, key_of: Mapping[str, int], until: datetime | None = None) -> dict[str, list[tuple[float, int]]]:
    """user -> (seconds shown, key) of the newest SHOWN_MAX impressions of known users (anonymous sessions left out),
    items by `key_of` (external id -> key; unknown items left out)."""
    from apps.recommender.models import Impression

    rows = Impression.objects.exclude(user_id="")
    if until is not None:
        rows = rows.filter(shown_at__lte=until)
    out: dict[str, list[tuple[float, int]]] = {}
    for user, items, at in rows.order_by("-shown_at").values_list("user_id", "items", "shown_at")[:SHOWN_MAX].iterator():
        seconds = at.timestamp()
        for external in items or []:
            key = key_of.get(external)
            if key is not None:
                out.setdefault(user, []).append((seconds, key))
    return out
