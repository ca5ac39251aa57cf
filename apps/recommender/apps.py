from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _repair_schedule_create(sender=None, **kwargs) -> None:
    """The embeddings repair's and the behaviour refresh's beat schedules, unless they exist: an admin's edits are kept."""
    from django.conf import settings

    from apps.core.schedules import interval_schedules_ensure

    interval_schedules_ensure((
        ("recommender embeddings repair", "recommender.embeddings_repair", settings.RECOMMENDER_EMBED_REPAIR_S,
         "Re-embed catalogue items whose vector is stale (an embedding that failed) or missing."),
        ("recommender behaviour refresh", "recommender.behaviour_refresh", settings.RECOMMENDER_BEHAVIOUR_REFRESH_S,
         "Refit the recommender's behaviour sources (item-to-item, EASE, trending, new) and its learned ranker."),
        ("recommender impressions drain", "recommender.impressions_drain", settings.RECOMMENDER_IMPRESSIONS_DRAIN_S,
         "Move the recommendation impressions queued in Redis into the database.")))


class RecommenderConfig(AppConfig):
    name = "apps.recommender"
    label = "recommender"
    verbose_name = "Recommender"

    def ready(self) -> None:
        from services.recommender.vectors import source_install

        source_install()  # the catalogue is the text source of the vector space "recommender"
        post_migrate.connect(_repair_schedule_create, sender=self, dispatch_uid="recommender-repair-schedule")
