"""One rule for times in files, messages and API bodies: ISO 8601, or Unix seconds as a number or text (Django-free)."""
from __future__ import annotations

import math
import re
from datetime import datetime, timezone

UNIX_SECONDS = re.compile(r"[+-]?\d+(\.\d+)?")  # "1700000000", "1700000000.5": how many public data sets write times


def time_parse(value: object) -> datetime:
    """An aware datetime from ISO 8601 text or Unix seconds; ValueError says what was wrong.

    1. A number (not a bool), or text of digits, is Unix seconds (UTC).
    2. Other text is ISO 8601 (`Z` allowed); a time without an offset is taken as UTC.
    """
    if isinstance(value, bool):
        raise ValueError("a boolean is not a time")
    if isinstance(value, str) and UNIX_SECONDS.fullmatch(value.strip()):
        value = float(value.strip())
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a time")
        try:
            return datetime.fromtimestamp(float(value), tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"{value!r} seconds is out of range") from None
    if not isinstance(value, str) or not value.strip():
        raise ValueError("not a time")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
