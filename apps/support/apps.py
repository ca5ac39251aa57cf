from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _retention_schedule_create(sender=None, **kwargs) -> None:  # noqa: ANN001, ANN003 - post_migrate signature
    """The daily retention job's beat schedule (03:30 UTC), unless it exists: an admin's edits are kept."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    nightly, _ = CrontabSchedule.objects.get_or_create(minute="30", hour="3", day_of_week="*", day_of_month="*",
                                                       month_of_year="*", timezone="UTC")
    PeriodicTask.objects.get_or_create(name="support conversations retention", defaults={
        "task": "support.conversations_retention", "crontab": nightly,
        "description": "Anonymise or delete conversations idle longer than SUPPORT_RETENTION_DAYS (0: keep)."})


class SupportConfig(AppConfig):
    name = "apps.support"
    label = "support"
    verbose_name = "Support desk"

    def ready(self) -> None:
        post_migrate.connect(_retention_schedule_create, sender=self, dispatch_uid="support-retention-schedule")
