"""Celery tasks of the recommender (`default` queue; the embedding itself runs wherever this runs, a worker)."""
from __future__ import annotations

from celery import shared_task

from services.recommender.impressions import impressions_drain as drain
from services.recommender.sources import behaviour_refresh as refresh
from services.recommender.vectors import embeddings_repair as repair


@shared_task(name="recommender.embeddings_repair")
def embeddings_repair() -> dict[str, int]:
    """Embed catalogue items whose vector is stale or missing into the shared store (beat: "recommender embeddings repair")."""
    return repair()


@shared_task(name="recommender.behaviour_refresh")
def behaviour_refresh() -> dict:
    """Refit the behaviour sources and the learned ranker from every event and publish them (beat: "recommender behaviour refresh")."""
    return refresh()


@shared_task(name="recommender.impressions_drain")
def impressions_drain() -> int:
    """Move the impressions requests queued in Redis into the database (beat: "recommender impressions drain")."""
    return drain()
