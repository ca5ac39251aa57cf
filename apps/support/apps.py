from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_delete, post_migrate


def _retention_schedule_create(sender=None, **kwargs) -> None:  # noqa: ANN001, ANN003 - post_migrate signature
    """The daily retention job's beat schedule (03:30 UTC), unless it exists: an admin's edits are kept."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    nightly, _ = CrontabSchedule.objects.get_or_create(minute="30", hour="3", day_of_week="*", day_of_month="*",
                                                       month_of_year="*", timezone="UTC")
    PeriodicTask.objects.get_or_create(name="support conversations retention", defaults={
        "task": "support.conversations_retention", "crontab": nightly,
        "description": "Anonymise or delete conversations idle longer than SUPPORT_RETENTION_DAYS (0: keep)."})


def _repair_schedule_create(sender=None, **kwargs) -> None:  # noqa: ANN001, ANN003 - post_migrate signature
    """The KB vectors repair's beat schedule (every SUPPORT_EMBED_REPAIR_S), unless it exists: an admin's edits are kept."""
    from django.conf import settings

    from apps.core.schedules import interval_schedules_ensure

    interval_schedules_ensure((
        ("support vectors repair", "support.vectors_repair", settings.SUPPORT_EMBED_REPAIR_S,
         "Embed knowledge-base items whose vector is missing or stale (a host killed mid-write)."),))


def _kb_space_drop(sender=None, instance=None, **kwargs) -> None:  # noqa: ANN001, ANN003 - post_delete signature
    """A deleted knowledge base takes its shared vectors with it (a new KB may get its pk back on SQLite)."""
    from services.support.knowledge import kb_space
    from services.vectors import space_drop

    space_drop(space=kb_space(instance))


class SupportConfig(AppConfig):
    name = "apps.support"
    label = "support"
    verbose_name = "Support desk"

    def ready(self) -> None:
        from services.support.knowledge import source_install

        post_migrate.connect(_retention_schedule_create, sender=self, dispatch_uid="support-retention-schedule")
        post_migrate.connect(_repair_schedule_create, sender=self, dispatch_uid="support-vectors-repair-schedule")
        post_delete.connect(_kb_space_drop, sender=self.get_model("KnowledgeBase"), dispatch_uid="support-kb-space-drop")
        source_install()  # the vector store reads the KBs' texts through it (web processes and workers alike)
