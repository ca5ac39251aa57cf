"""The promotion gate: may a challenger's metrics replace the champion's? (Django-free)"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GatePolicy:
    metric: str = "macro_f1"  # the metric that must improve
    min_gain: float = 0.0  # absolute gain required on `metric` (0.0: at least as good)
    guard_metric: str = "accuracy"  # a second metric that may not drop much ("" = none)
    max_drop: float = 0.01  # largest allowed absolute drop on `guard_metric`


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reason: str


def gate_check(*, candidate: dict[str, float], champion: dict[str, float] | None, policy: GatePolicy) -> GateResult:
    """Compare metrics.

    1. No champion yet: passes.
    2. The gate metric must be present on both and gain at least `min_gain`.
    3. The guard metric, when set, may drop by at most `max_drop`.
    """
    if champion is None:
        return GateResult(True, "no champion yet")
    metric = policy.metric
    if metric not in candidate:
        return GateResult(False, f"the candidate has no {metric!r} metric")
    if metric not in champion:
        return GateResult(True, f"the champion has no {metric!r} metric to compare with")
    gain = float(candidate[metric]) - float(champion[metric])
    if gain < policy.min_gain - 1e-12:
        return GateResult(False, f"{metric} {candidate[metric]:.4f} vs champion {champion[metric]:.4f}: gain {gain:+.4f} < required {policy.min_gain:+.4f}")
    reason = f"{metric} {candidate[metric]:.4f} vs champion {champion[metric]:.4f} (gain {gain:+.4f})"
    guard = policy.guard_metric
    if guard and guard in candidate and guard in champion:
        drop = float(champion[guard]) - float(candidate[guard])
        if drop > policy.max_drop + 1e-12:
            return GateResult(False, f"{reason}, but {guard} drops by {drop:.4f} > allowed {policy.max_drop:.4f}")
        reason += f"; {guard} change {-drop:+.4f} within {policy.max_drop:.4f}"
    return GateResult(True, reason)
