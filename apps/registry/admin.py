from __future__ import annotations

from django.contrib import admin

from apps.registry.models import AdapterVersion, Alias, AliasEvent, BaseModel, OpsAlert, RetrainRun, Task


@admin.register(BaseModel)
class BaseModelAdmin(admin.ModelAdmin):
    list_display = ["name", "embedding_size", "licence", "is_default", "created_at"]
    readonly_fields = ["location", "sha256"]  # set by registry_add_base, which copies or names the model (no host paths)


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "gate_metric", "gate_min_gain", "gate_guard_metric", "gate_max_drop",
                    "retrain_min_examples", "retrain_lock_owner", "retrain_lock_expires_at"]
    readonly_fields = ["retrain_data_file", "retrain_eval_file"]  # copies in the registry: `retrain --base-data/--held-back`


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


@admin.register(RetrainRun)
class RetrainRunAdmin(admin.ModelAdmin):
    """Model operations: each retraining run, its examples, metrics against the champion, gate result and drift."""

    list_display = ["started_at", "task", "status", "phase", "n_new_examples", "version", "promoted", "label_tvd", "reason"]
    list_filter = ["task", "status"]
    readonly_fields = [f.name for f in RetrainRun._meta.fields]

    @admin.display(description="label drift (TVD)")
    def label_tvd(self, run: RetrainRun) -> float | None:
        return run.drift.get("label_tvd")


@admin.register(OpsAlert)
class OpsAlertAdmin(admin.ModelAdmin):
    """Alerts of the Model operations page; acknowledging one here records who and when, as the page does."""

    list_display = ["created_at", "level", "task", "message", "acknowledged_at", "acknowledged_by"]
    list_filter = ["level", "task", ("acknowledged_at", admin.EmptyFieldListFilter)]
    readonly_fields = ["task", "run", "level", "message", "created_at", "acknowledged_at", "acknowledged_by",
                       "acknowledged_comment"]
    actions = ["acknowledge"]

    @admin.action(description="Acknowledge the selected alerts")
    def acknowledge(self, request, queryset) -> None:  # noqa: ANN001
        from services.registry.operations import ops_alert_acknowledge

        ids = list(queryset.filter(acknowledged_at__isnull=True).values_list("pk", flat=True))
        for alert_id in ids:
            ops_alert_acknowledge(alert_id=alert_id, actor=request.user.get_username())
        self.message_user(request, f"{len(ids)} alert(s) acknowledged.")
