from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _schedules_create(sender=None, **kwargs) -> None:
    """The beat schedules of the vector store, unless they exist (an admin's edits are kept)."""
    from django.conf import settings

    from apps.core.schedules import interval_schedules_ensure

    interval_schedules_ensure((
        ("vectors encoder check", "vectors.encoder_check", settings.SUITE_VECTORS_CHECK_S,
         "Vector spaces whose task's encoder changed (a promotion): embed beside the old one, then switch."),
        ("vectors purge", "vectors.purge", settings.SUITE_VECTORS_PURGE_S,
         "Delete old tombstones of deleted vectors and the vectors of retired encoders.")))


class VectorsConfig(AppConfig):
    name = "apps.vectors"
    label = "vectors"
    verbose_name = "Shared vectors"

    def ready(self) -> None:
        post_migrate.connect(_schedules_create, sender=self, dispatch_uid="vectors-schedules")
