"""Impressions: every list of recommendations shown, recorded without a database write in the request.

A request queues one JSON row in its process; a background thread pushes the queued rows onto the Redis list
IMPRESSIONS_KEY (one RPUSH for all of them) at once, so the request does not wait for Redis: on the busy 2-core machine
that round trip was ~8 ms of a 37 ms request (the Redis server waits for a CPU like everything else), measured by the
benchmark's Server-Timing. The beat's `recommender.impressions_drain` moves them into the Impression table every
RECOMMENDER_IMPRESSIONS_DRAIN_S in bulk (a row insert cost 23 ms on the busy SQLite demo, most of a request).
Until Redis has answered this process once (and again after a push failed), a request pushes its row itself, and
without Redis writes it to the database at once, with any rows a failed background push left (the request never fails
for it; database writes stay in requests' threads). A process killed with rows queued loses them (a few, pushed at
exit otherwise), and a worker killed between taking a batch off the list and writing it loses that batch (at most
DRAIN_BATCH rows): impressions are for measurement, not bookkeeping.
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import threading
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


_lock = threading.Lock()  # guards the three below
_queued: list[str] = []  # rows waiting for the pusher thread
_failed: list[str] = []  # rows a failed background push left: the next request writes them
_redis_ok: dict[str, bool] = {}  # REDIS_URL -> whether its last push succeeded (a URL not in it: not yet tried)
_flushing = threading.Lock()  # held while rows are between the queue and Redis: a flush sees them pushed
_wake = threading.Event()
_pusher: dict[str, int] = {}  # {"pid": the process whose pusher thread runs} (a forked child starts its own)


def impression_record(*, user: str | None, items: Sequence[str], offset: int, strategy: str, ranker: str = "") -> str:
    """Record what was shown (for click-through and position-debiased training); returns the request id."""
    from django.conf import settings

    data = {"request_id": uuid.uuid4().hex, "user_id": user or "", "items": list(items), "offset": offset,
            "strategy": strategy, "ranker": ranker, "shown_at": time.time()}
    row = json.dumps(data)
    with _lock:
        deferred = _redis_ok.get(settings.REDIS_URL, False)
        if deferred:
            _queued.append(row)
        else:
            failed, _failed[:] = list(_failed), []
    if deferred:
        _pusher_ensure()
        _wake.set()
        return data["request_id"]
    _push_now([*failed, row])
    return data["request_id"]


def _push_now(rows: list[str]) -> None:
    """In the request: push the rows to Redis, or write them to the database when Redis does not answer."""
    from django.conf import settings

    from services.kafka_lag import redis_client

    try:
        redis_client().rpush(IMPRESSIONS_KEY, *rows)
        ok = True
    except Exception:  # noqa: BLE001 - Redis away: write the rows now rather than lose them or fail the request
        logger.warning("impressions: Redis unreachable, writing %d row(s) directly", len(rows), exc_info=True)
        from apps.recommender.models import Impression

        Impression.objects.bulk_create([_row(json.loads(r)) for r in rows], ignore_conflicts=True)
        ok = False
    with _lock:
        _redis_ok[settings.REDIS_URL] = ok


def impressions_flush() -> int:
    """Push this process's queued rows to Redis now (the pusher thread's step; the drain and exit call it too); returns
    how many were pushed. A failed push leaves them for the next request to write."""
    from django.conf import settings

    from services.kafka_lag import redis_client

    with _flushing:
        with _lock:
            rows, _queued[:] = list(_queued), []
        if not rows:
            return 0
        try:
            redis_client().rpush(IMPRESSIONS_KEY, *rows)
            return len(rows)
        except Exception:  # noqa: BLE001 - the next request writes them (database writes stay in requests)
            logger.warning("impressions: Redis unreachable, %d queued row(s) left for the next request", len(rows),
                           exc_info=True)
            with _lock:
                _failed.extend(rows)
                _redis_ok[settings.REDIS_URL] = False
            return 0


def _pusher_ensure() -> None:
    with _lock:
        if _pusher.get("pid") == os.getpid():
            return
        _pusher["pid"] = os.getpid()
    threading.Thread(target=_pusher_run, name="impressions-pusher", daemon=True).start()


def _pusher_run() -> None:
    while True:
        _wake.wait(timeout=1.0)
        _wake.clear()
        try:
            impressions_flush()
        except Exception:  # noqa: BLE001 - keep the thread alive; the rows stay queued or failed
            logger.exception("impressions: background push failed")


def impressions_forget() -> None:
    """Drop this process's queued rows and what it knows of Redis (tests)."""
    with _lock:
        _queued.clear()
        _failed.clear()
        _redis_ok.clear()


atexit.register(lambda: impressions_flush() if _queued else 0)


def impressions_drain(*, most: int = 50 * DRAIN_BATCH) -> int:
    """Move up to `most` queued impressions into the database (beat `recommender.impressions_drain`); returns how many."""
    from apps.recommender.models import Impression
    from services.kafka_lag import redis_client

    impressions_flush()  # this process's own queued rows first (tests, a worker that also serves)
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
