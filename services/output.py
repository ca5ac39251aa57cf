"""The one way a command or a pipeline prints its result: one JSON object on one line (the last line it prints).

Scripts and tests read that line with `json.loads(stdout.splitlines()[-1])`, so every command builds it here:
keys in the order the command wrote them (a summary reads top-down), UTF-8 as is (names and texts stay readable),
and the values plain JSON has no type for turned into the obvious one.
"""
from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import PurePath
from typing import Any


def _plain(value: Any) -> Any:
    """A JSON-ready stand-in for a value json cannot write (TypeError for anything unforeseen)."""
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if hasattr(value, "item") and hasattr(value, "dtype"):  # a numpy or torch scalar (metrics often are)
        return value.tolist() if getattr(value, "ndim", 0) else value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_line(obj: object) -> str:
    """`obj` as one line of JSON (no newline inside), as every command prints its result."""
    return json.dumps(obj, ensure_ascii=False, default=_plain)
