from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _default_base_register(sender=None, **kwargs) -> None:  # noqa: ANN001, ANN003 - post_migrate signature
    from services.registry.versions import base_default_ensure

    base_default_ensure()


def _retrain_schedules_create(sender=None, **kwargs) -> None:  # noqa: ANN001, ANN003 - post_migrate signature
    from services.registry.retrain import retrain_schedules_ensure

    retrain_schedules_ensure()


class RegistryConfig(AppConfig):
    name = "apps.registry"
    label = "registry"
    verbose_name = "Model registry"

    def ready(self) -> None:
        # The packaged all-MiniLM-L6-v2 is the default base from the first migrate on.
        post_migrate.connect(_default_base_register, sender=self, dispatch_uid="registry-default-base")
        # Each task's periodic retraining schedule exists from the first migrate on (editable in the admin).
        post_migrate.connect(_retrain_schedules_create, sender=self, dispatch_uid="registry-retrain-schedules")
