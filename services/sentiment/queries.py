"""What the dashboard and the API read: filtered headlines, sources, time ranges, the overview of a ticker."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from apps.sentiment.models import OVERALL, Alert, Bucket, ScoredNews
from services.errors import SuiteError
from services.sentiment.live import news_row

RANGES = {"1h": (timedelta(hours=1), Bucket.MINUTE), "24h": (timedelta(hours=24), Bucket.HOUR),
          "7d": (timedelta(days=7), Bucket.HOUR), "30d": (timedelta(days=30), Bucket.DAY), "all": (None, Bucket.DAY)}


def range_parse(*, value: str | None, now: datetime | None = None) -> tuple[datetime | None, str]:
    """A range name (1h, 24h, 7d, 30d, all) → (since, the bucket granularity that suits it)."""
    value = value or "24h"
    if value not in RANGES:
        raise SuiteError(f"range must be one of {', '.join(RANGES)} (got {value!r}).", field="range")
    span, granularity = RANGES[value]
    return ((now or timezone.now()) - span if span else None), granularity


def headlines_list(*, ticker: str | None = None, source: str | None = None, since: datetime | None = None,
                   limit: int = 50) -> list[dict[str, Any]]:
    """The latest scored headlines, newest first, filtered by ticker (drill-down), source and time."""
    if not 1 <= limit <= 500:
        raise SuiteError("limit must be between 1 and 500.", field="limit")
    rows = ScoredNews.objects.all()
    if ticker and ticker != OVERALL:
        rows = rows.filter(ticker_links__symbol=ticker.upper())
    if source:
        rows = rows.filter(source=source)
    if since is not None:
        rows = rows.filter(published_at__gte=since)
    return [news_row(row) for row in rows.order_by("-published_at", "-id")[:limit]]


def sources_list() -> list[str]:
    return sorted(ScoredNews.objects.order_by().values_list("source", flat=True).distinct())


def alerts_list(*, open_only: bool = False, symbol: str | None = None, state: str | None = None,
                limit: int = 50) -> list[Alert]:
    """Alerts, newest first: unacknowledged only (open_only), of a ticker, in a state (pending, firing, resolved)."""
    if not 1 <= limit <= 500:
        raise SuiteError("limit must be between 1 and 500.", field="limit")
    alerts = Alert.objects.select_related("acknowledged_by")
    if open_only:
        alerts = alerts.filter(acknowledged_at__isnull=True)
    if state:
        if state not in dict(Alert.STATES):
            raise SuiteError(f"state must be one of {', '.join(dict(Alert.STATES))} (got {state!r}).", field="state")
        alerts = alerts.filter(state=state)
    if symbol and symbol != OVERALL:
        alerts = alerts.filter(symbol=symbol.upper())
    return list(alerts[:limit])
