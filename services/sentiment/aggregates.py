"""Reading the rolling aggregates: time series per scope and window statistics for the alert rules."""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Sum

from apps.sentiment.models import Bucket
from services.errors import SuiteError


@dataclass(frozen=True)
class WindowStats:
    count: int
    mean: float  # mean score, 0.0 when empty
    std: float  # standard deviation of single scores, 0.0 with fewer than 2
    negative_share: float


def _stats(n: int, total: float, squares: float, negatives: int) -> WindowStats:
    if n == 0:
        return WindowStats(0, 0.0, 0.0, 0.0)
    mean = total / n
    variance = max(squares / n - mean * mean, 0.0) * n / (n - 1) if n > 1 else 0.0
    return WindowStats(n, mean, math.sqrt(variance), negatives / n)


def window_stats(*, scope: str, granularity: str, since: datetime, until: datetime) -> WindowStats:
    """Count, mean score, standard deviation and negative share of the buckets starting in [since, until)."""
    sums = Bucket.objects.filter(scope=scope, granularity=granularity, start__gte=since, start__lt=until).aggregate(
        n=Sum("count"), s=Sum("score_sum"), sq=Sum("score_sq_sum"), neg=Sum("negative_count"))
    return _stats(int(sums["n"] or 0), float(sums["s"] or 0.0), float(sums["sq"] or 0.0), int(sums["neg"] or 0))


def series_get(*, scope: str, granularity: str, since: datetime | None = None, until: datetime | None = None,
               limit: int = 500) -> list[dict[str, object]]:
    """The buckets of one scope as points {start, count, mean_score, negative_share}, oldest first."""
    if granularity not in dict(Bucket.GRANULARITIES):
        raise SuiteError(f"granularity must be one of minute, hour, day (got {granularity!r}).", field="granularity")
    rows = Bucket.objects.filter(scope=scope, granularity=granularity)
    if since is not None:
        rows = rows.filter(start__gte=since)
    if until is not None:
        rows = rows.filter(start__lt=until)
    latest = list(rows.order_by("-start")[:limit])[::-1]
    return [{"start": b.start.isoformat(), "count": b.count, "mean_score": round(b.mean_score, 4),
             "negative_share": round(b.negative_share, 4)} for b in latest]


def window_and_baseline(*, scope: str, now: datetime, window: timedelta, baseline: timedelta) -> tuple[WindowStats, WindowStats]:
    """The recent window (minute buckets in (now − window, now]) and the baseline before it (hour buckets)."""
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - window
    recent = window_stats(scope=scope, granularity=Bucket.MINUTE, since=start, until=end)
    hour_start = start.replace(minute=0)  # hour buckets fully before the window; the partial hour is left out
    base = window_stats(scope=scope, granularity=Bucket.HOUR, since=hour_start - baseline, until=hour_start)
    return recent, base


def topics_sums(*, symbol: str | None, granularity: str, since: datetime | None = None) -> dict[str, WindowStats]:
    """Per topic, from the topic buckets ("#<topic>", or "<symbol>#<topic>" for a ticker) starting at or after `since`."""
    prefix = f"{symbol or ''}#"
    rows = Bucket.objects.filter(scope__startswith=prefix, granularity=granularity)
    if since is not None:
        rows = rows.filter(start__gte=since)
    sums = rows.values("scope").annotate(n=Sum("count"), s=Sum("score_sum"), sq=Sum("score_sq_sum"),
                                         neg=Sum("negative_count")).order_by()
    return {row["scope"][len(prefix):]: _stats(int(row["n"] or 0), float(row["s"] or 0.0), float(row["sq"] or 0.0),
                                               int(row["neg"] or 0))
            for row in sums if (row["n"] or 0) > 0}
