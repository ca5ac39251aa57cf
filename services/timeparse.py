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
    3. The result is in UTC: an offset Python accepts but a database may not (PostgreSQL refuses beyond ±15:59, e.g.
       "-23:26") is applied here, never stored.
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
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=timezone.utc)
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError:  # e.g. 0001-01-01T00:00+05:00 falls before year 1 in UTC
        raise ValueError(f"{value!r} is out of range") from None
