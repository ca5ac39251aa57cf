"""Celery tasks of the recommender (`training` queue)."""
from __future__ import annotations

from celery import shared_task


@shared_task(name="recommender.adapter_retrain")
def adapter_retrain(k: int = 10, epochs: int | None = None) -> dict:
    """Retrain the recommender's adapter on the live events; registered, and promoted only if the gate passes."""
    from pipelines.recommender_eval import adapter_retrain as retrain

    return retrain(k=k, epochs=epochs)
