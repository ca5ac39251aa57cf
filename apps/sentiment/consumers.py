from __future__ import annotations

from apps.core.consumers import GroupConsumer
from services.sentiment.live import SENTIMENT_GROUP


class SentimentConsumer(GroupConsumer):
    """The dashboard's live feed: new headlines ("headlines") and alerts ("alert")."""

    group = SENTIMENT_GROUP
    area = "sentiment"
