from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    label = "accounts"
    verbose_name = "People and access"

    def ready(self) -> None:
        from apps.accounts.roles import roles_sync

        post_migrate.connect(roles_sync, sender=self, dispatch_uid="accounts-roles-sync")
