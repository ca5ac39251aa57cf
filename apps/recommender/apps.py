from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _repair_schedule_create(sender=None, **kwargs) -> None:
    """The embeddings repair's and the behaviour refresh's beat schedules, unless they exist: an admin's edits are kept."""
    from django.conf import settings
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every, _ = IntervalSchedule.objects.get_or_create(every=settings.RECOMMENDER_EMBED_REPAIR_S,
                                                      period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.get_or_create(name="recommender embeddings repair", defaults={
        "task": "recommender.embeddings_repair", "interval": every,
        "description": "Re-embed catalogue items whose vector is stale (an embedding that failed) or missing."})
    refresh, _ = IntervalSchedule.objects.get_or_create(every=settings.RECOMMENDER_BEHAVIOUR_REFRESH_S,
                                                        period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.get_or_create(name="recommender behaviour refresh", defaults={
        "task": "recommender.behaviour_refresh", "interval": refresh,
        "description": "Refit the recommender's behaviour sources (item-to-item, EASE, trending, new) and its learned ranker."})
    drain, _ = IntervalSchedule.objects.get_or_create(every=settings.RECOMMENDER_IMPRESSIONS_DRAIN_S,
                                                      period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.get_or_create(name="recommender impressions drain", defaults={
        "task": "recommender.impressions_drain", "interval": drain,
        "description": "Move the recommendation impressions queued in Redis into the database."})


class RecommenderConfig(AppConfig):
    name = "apps.recommender"
    label = "recommender"
    verbose_name = "Recommender"

    def ready(self) -> None:
        from services.recommender.vectors import source_install

        source_install()  # the catalogue is the text source of the vector space "recommender"
        post_migrate.connect(_repair_schedule_create, sender=self, dispatch_uid="recommender-repair-schedule")
