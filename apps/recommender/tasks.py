"""Celery tasks of the recommender (`default` queue)."""
from __future__ import annotations

from celery import shared_task

from services.recommender.vectors import index_repair


@shared_task(name="recommender.embeddings_repair")
def embeddings_repair() -> dict[str, int]:
    """Re-embed catalogue items whose vector is stale or missing (beat: "recommender embeddings repair")."""
    return index_repair()
