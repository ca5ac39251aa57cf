"""Beat schedules the apps create after migrate, unless they exist (an admin's edits are kept)."""
from __future__ import annotations


def interval_schedules_ensure(entries: tuple[tuple[str, str, int, str], ...]) -> None:
    """(name, task, every seconds, description) each: a django-celery-beat PeriodicTask on an interval, created only
    when no task of that name exists."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    for name, task, every, description in entries:
        interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=IntervalSchedule.SECONDS)
        PeriodicTask.objects.get_or_create(name=name, defaults={"task": task, "interval": interval,
                                                                "description": description})
