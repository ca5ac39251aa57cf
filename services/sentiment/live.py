"""Live updates for the sentiment dashboard through the channel layer (group `sentiment`)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from apps.core.live import group_push

SENTIMENT_GROUP = "sentiment"


def news_row(row: Any) -> dict[str, Any]:
    """A scored headline as the dashboard and the API show it."""
    return {"id": row.id, "message_id": row.message_id, "source": row.source, "published_at": row.published_at.isoformat(),
            "headline": row.headline, "url": row.url, "tickers": row.tickers, "topics": row.topics, "label": row.label,
            "score": round(row.score, 4), "p_positive": round(row.p_positive, 4), "p_neutral": round(row.p_neutral, 4),
            "p_negative": round(row.p_negative, 4), "model_version": row.model_version}


def news_push(*, rows: Sequence[Any]) -> None:
    """Send newly stored headlines to every open dashboard."""
    group_push(group=SENTIMENT_GROUP, event="headlines", payload={"items": [news_row(row) for row in rows]})


def alert_push(*, alert: dict[str, Any]) -> None:
    group_push(group=SENTIMENT_GROUP, event="alert", payload=alert)
