from __future__ import annotations

from django.contrib import admin

from apps.registry.models import AdapterVersion, Alias, AliasEvent, BaseModel, Task


@admin.register(BaseModel)
class BaseModelAdmin(admin.ModelAdmin):
    list_display = ["name", "embedding_size", "licence", "is_default", "created_at"]


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "gate_metric", "gate_min_gain", "gate_guard_metric", "gate_max_drop"]


@admin.register(AdapterVersion)
class AdapterVersionAdmin(admin.ModelAdmin):
    list_display = ["task", "version", "base", "created_by", "created_at"]
    list_filter = ["task"]
    readonly_fields = [f.name for f in AdapterVersion._meta.fields]


@admin.register(Alias)
class AliasAdmin(admin.ModelAdmin):
    list_display = ["task", "name", "version", "updated_at"]
    readonly_fields = ["task", "name", "version", "updated_at"]  # moved only through promote/rollback (audited)


@admin.register(AliasEvent)
class AliasEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "task", "alias", "action", "from_version", "to_version", "actor", "forced"]
    list_filter = ["task", "action"]
    readonly_fields = [f.name for f in AliasEvent._meta.fields]
