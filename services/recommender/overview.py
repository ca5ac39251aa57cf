"""What the merchandiser's page shows: catalogue and event counts, the index, the top items."""
from __future__ import annotations

from typing import Any

from apps.recommender.models import Event, Item
from services.recommender.recommend import TRENDING_DAYS, popularity_get
from services.recommender.vectors import index_get


def catalogue_overview(*, top: int = 10) -> dict[str, Any]:
    counts, order = popularity_get()
    items = Item.objects.in_bulk(order[:top])
    n_items = Item.objects.count()
    index = index_get() if n_items else None
    return {"n_items": n_items, "n_in_stock": Item.objects.filter(in_stock=True).count(),
            "n_categories": Item.objects.exclude(category="").values("category").distinct().count(),
            "n_events": Event.objects.count(), "n_users": Event.objects.values("user_id").distinct().count(),
            "n_indexed": len(index) if index is not None else 0, "encoder": index.tag.name if index is not None else "-",
            "trending_days": TRENDING_DAYS,
            "top": [{"item": items[pk], "score": counts[pk]} for pk in order[:top] if pk in items]}
