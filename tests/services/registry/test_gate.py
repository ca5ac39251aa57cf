from __future__ import annotations

from services.registry.gate import GatePolicy, gate_check

POLICY = GatePolicy(metric="macro_f1", min_gain=0.01, guard_metric="accuracy", max_drop=0.02)


def test_the_first_version_passes_without_a_champion() -> None:
    assert gate_check(candidate={"macro_f1": 0.1}, champion=None, policy=POLICY).passed


def test_it_passes_when_the_gain_is_enough_and_the_guard_holds() -> None:
    result = gate_check(candidate={"macro_f1": 0.85, "accuracy": 0.89}, champion={"macro_f1": 0.83, "accuracy": 0.90}, policy=POLICY)
    assert result.passed, result.reason


def test_it_fails_when_the_gain_is_too_small() -> None:
    result = gate_check(candidate={"macro_f1": 0.835}, champion={"macro_f1": 0.83}, policy=POLICY)
    assert not result.passed
    assert "gain +0.0050 < required +0.0100" in result.reason


def test_it_fails_when_the_guard_metric_drops_too_much() -> None:
    result = gate_check(candidate={"macro_f1": 0.90, "accuracy": 0.85}, champion={"macro_f1": 0.83, "accuracy": 0.90}, policy=POLICY)
    assert not result.passed
    assert "accuracy drops by 0.0500" in result.reason


def test_it_fails_when_the_candidate_lacks_the_gate_metric() -> None:
    assert not gate_check(candidate={"accuracy": 1.0}, champion={"macro_f1": 0.5}, policy=POLICY).passed
