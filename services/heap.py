"""Long-lived serving state kept out of the cyclic garbage collector's full passes.

A serving process holds a few hundred thousand long-lived Python objects (Django, the models' modules, a vector
index's key set, the recommender's behaviour snapshot). CPython's full (generation 2) collection walks all of them:
150 ms on the 2-core machine with the benchmark's 100k-item catalogue (PERFORMANCE), a stall for every request in
flight on that process, and the tail of the recommendations' latency. After a process loads such state,
`heap_settle` collects once and freezes what is alive (gc.freeze: later collections skip it; freed objects are still
freed by reference counting). The next load unfreezes first, so cycles that became garbage meanwhile (a replaced
snapshot's) are collected then: nothing frozen leaks past the next load. Loads are rare (a cold or regenerated
index, a promotion, a behaviour refresh); one within SETTLE_EVERY_S of the last full settle only freezes (no
collection). SUITE_GC_FREEZE=0 turns it off (the test suite runs with it off: its process holds millions of objects,
so each settle there costs far more than in a server). A process without Django's settings (a benchmark, a shell:
services/ml runs there too) serves no requests, so it does not settle.
"""
from __future__ import annotations

import gc
import logging
import threading
import time

logger = logging.getLogger(__name__)
_lock = threading.Lock()
SETTLE_EVERY_S = 30.0
_last = {"full": float("-inf")}


def heap_settle(*, reason: str) -> float:
    """Collect, then freeze every live object; the pause in ms (0.0 when SUITE_GC_FREEZE is off or outside Django)."""
    from django.conf import settings

    if not settings.configured or not getattr(settings, "SUITE_GC_FREEZE", True):
        return 0.0
    with _lock:
        started = time.perf_counter()
        if time.monotonic() - _last["full"] >= SETTLE_EVERY_S:
            gc.unfreeze()
            gc.collect()
            _last["full"] = time.monotonic()
        gc.freeze()
        ms = (time.perf_counter() - started) * 1000
    logger.debug("heap settled after %s in %.1f ms (%d objects frozen)", reason, ms, gc.get_freeze_count())
    return ms
