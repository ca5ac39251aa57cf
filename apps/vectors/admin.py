from __future__ import annotations

from django.contrib import admin

from apps.vectors.models import VectorSpace


@admin.register(VectorSpace)
class VectorSpaceAdmin(admin.ModelAdmin):
    """Read-only: spaces change through services/vectors/store.py (revisions, switches), never by hand."""

    list_display = ["name", "task", "encoder", "pending_encoder", "revision", "generation", "purged_revision",
                    "snapshot_revision", "updated_at"]
    search_fields = ["name"]

    def has_add_permission(self, request) -> bool:  # noqa: ANN001
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False
