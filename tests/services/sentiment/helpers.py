"""Storing hand-made scored headlines for the aggregate and alert tests."""
from __future__ import annotations

import itertools
from datetime import datetime

from services.sentiment.messages import NewsItem
from services.sentiment.scoring import Scored
from services.sentiment.store import StoreResult, news_store

_ids = itertools.count()


def scored(score: float) -> Scored:
    """A Scored with the given score: label negative below −0.2, positive above 0.2, else neutral."""
    pos, neg = max(score, 0.0), max(-score, 0.0)
    label = "negative" if score < -0.2 else "positive" if score > 0.2 else "neutral"
    return Scored(label=label, p_positive=pos, p_neutral=1 - pos - neg, p_negative=neg, score=score)


def headlines_store(points: list[tuple[datetime, float]], *, symbol: str = "ACME", source: str = "wire") -> StoreResult:
    items = [NewsItem(id=f"t{next(_ids)}", source=source, published_at=at, headline=f"${symbol} news", tickers=[])
             for at, _ in points]
    return news_store(items=items, scores=[scored(s) for _, s in points], model_version=1)
