"""The chaos benchmark, bounded: hostile and good messages through the real broker, consumer processes, one SIGKILL.

The broker is never restarted here (it is the shared test broker); the full run does that (docs/PERFORMANCE.md).
"""
from __future__ import annotations

import pytest


@pytest.mark.django_db(transaction=True)
def test_killed_consumers_lose_nothing_duplicate_nothing_and_every_hostile_message_reaches_the_dlq() -> None:
    from pipelines.bench_chaos import chaos_bench

    result = chaos_bench(good=30, bad=20, kills=1, seed=3, consumers=2, fuzz_cases=0, restart_broker=False,
                         timeout_s=240, quiet=True)

    assert result["good_sent"] == 30 and result["bad_sent"] == 20
    assert result["lost"] == 0 and result["duplicated"] == 0, result
    assert result["good_stored_once"] == 30 and result["bad_in_dlq"] == 20 and result["good_in_dlq"] == 0
    assert result["consumer_crashes"] == 0, result.get("crashes")
    assert result["aggregates_match"] and result["consumer_starts"] == 3  # two, and one restarted after the kill
    assert {"fuzz_http_cases", "http_5xx"} <= set(result)


def test_the_hostile_set_covers_every_poison_kind_and_repeats_with_its_seed() -> None:
    from pipelines.bench_chaos import hostile_values

    first, again = hostile_values(40, seed=5), hostile_values(40, seed=5)
    assert first == again and len(first) == 40
    assert None in first and b"" in first and any(v and b"[model-poison]" in v for v in first)
