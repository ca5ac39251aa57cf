"""services.heap: after a load, what is alive is frozen out of full collections, and the next settle collects first."""
from __future__ import annotations

import gc

import pytest
from django.test import override_settings

from services import heap


@pytest.fixture(autouse=True)
def _thawed():
    gc.unfreeze()
    heap._last["full"] = float("-inf")
    yield
    gc.unfreeze()


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


@override_settings(SUITE_GC_FREEZE=True)
def test_a_settle_freezes_the_live_objects_and_the_next_one_collects_cycles_dropped_meanwhile() -> None:
    import weakref

    state = Node()  # long-lived serving state
    heap.heap_settle(reason="test load")
    assert gc.get_freeze_count() > 0 and not any(o is state for o in gc.get_objects())  # out of the collected generations
    gc.collect()
    # a full collection leaves the frozen objects alone (the freeze count itself may drop: other threads free
    # frozen objects by reference count, which the permanent generation does not prevent)
    assert gc.get_freeze_count() > 0 and not any(o is state for o in gc.get_objects())
    gone = weakref.ref(state)
    del state  # replaced, e.g. by a new snapshot: a cycle, so still alive until the next settle's collection
    gc.collect()
    assert gone() is not None
    heap._last["full"] = float("-inf")  # the next load, later than SETTLE_EVERY_S
    heap.heap_settle(reason="next load")
    assert gone() is None


@override_settings(SUITE_GC_FREEZE=True)
def test_a_second_load_soon_after_only_freezes() -> None:
    import weakref

    heap.heap_settle(reason="first")
    dropped = Node()
    gone = weakref.ref(dropped)
    del dropped
    heap.heap_settle(reason="second, within SETTLE_EVERY_S")  # no collection: the dropped cycle is frozen, not freed
    assert gone() is not None


@override_settings(SUITE_GC_FREEZE=False)
def test_off_it_does_nothing() -> None:
    assert heap.heap_settle(reason="off") == 0.0 and gc.get_freeze_count() == 0
