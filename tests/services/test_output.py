from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from services.output import json_line


@dataclass
class Outcome:
    promoted: bool
    reason: str


def test_a_result_is_one_line_of_json_with_dates_decimals_paths_sets_and_numpy_made_plain() -> None:
    line = json_line({"when": datetime(2026, 1, 2, 3, 4, tzinfo=timezone.utc), "day": date(2026, 1, 2), "price": Decimal("9.50"),
                      "file": Path("/tmp/x.csv"), "labels": {"b", "a"}, "accuracy": np.float32(0.5), "counts": np.arange(2),
                      "outcome": Outcome(True, "gain"), "kb": "café\nnews"})
    assert "\n" not in line and "café" in line  # one line; UTF-8 kept readable
    assert json.loads(line) == {"when": "2026-01-02T03:04:00+00:00", "day": "2026-01-02", "price": 9.5, "file": "/tmp/x.csv",
                                "labels": ["a", "b"], "accuracy": 0.5, "counts": [0, 1],
                                "outcome": {"promoted": True, "reason": "gain"}, "kb": "café\nnews"}
    assert list(json.loads(json_line({"z": 1, "a": 2}))) == ["z", "a"]  # the command's own key order


def test_a_value_json_cannot_write_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match="object is not JSON serializable"):
        json_line({"x": object()})
