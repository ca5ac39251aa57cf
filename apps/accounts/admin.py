"""Admin: API tokens are listed (prefix, scope, expiry, revocation), never shown or created here."""
from __future__ import annotations

from django.contrib import admin
from django.utils import timezone

from apps.accounts.models import ApiToken

try:  # DRF's plain tokens no longer authenticate anyone (migration 0003 hashed them): hide them
    from rest_framework.authtoken.models import TokenProxy

    admin.site.unregister(TokenProxy)
except (ImportError, admin.sites.NotRegistered):
    pass


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("user", "prefix", "scopes", "created_at", "expires_at", "revoked_at")
    list_filter = ("revoked_at",)
    readonly_fields = ("user", "prefix", "scopes", "created_at", "expires_at", "revoked_at")
    exclude = ("digest",)
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:  # noqa: ANN001 - tokens come from api_token_create (shown once)
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset) -> None:  # noqa: ANN001
        queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
