from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.registry.models import AdapterVersion, AliasEvent, BaseModel, OpsAlert, RetrainRun, Task
from services.registry.operations import ALERT_STATES, SCHEDULE_PERIODS, schedule_payload
from services.registry.retrain import min_examples_for


class BaseModelSerializer(serializers.ModelSerializer):
    class Meta:
        model = BaseModel
        fields = ["name", "location", "path", "sha256", "embedding_size", "licence", "is_default", "created_at"]


class VersionSerializer(serializers.ModelSerializer):
    task = serializers.CharField(source="task.name")
    base = serializers.CharField(source="base.name")
    aliases = serializers.SerializerMethodField()

    class Meta:
        model = AdapterVersion
        fields = ["task", "version", "base", "location", "path", "sha256", "metrics", "label_map", "train_config",
                  "data_fingerprint", "data_source", "created_by", "created_at", "aliases"]

    def get_aliases(self, obj: AdapterVersion) -> list[str]:
        return sorted(a.name for a in obj.aliases.all())


class EventSerializer(serializers.ModelSerializer):
    task = serializers.CharField(source="task.name")

    class Meta:
        model = AliasEvent
        fields = ["task", "alias", "action", "from_version", "to_version", "actor", "reason", "forced", "metrics", "created_at"]


class TaskSerializer(serializers.ModelSerializer):
    champion = serializers.SerializerMethodField()
    challenger = serializers.SerializerMethodField()
    versions = serializers.IntegerField(source="versions.count", read_only=True)
    min_examples = serializers.SerializerMethodField(help_text="New examples a scheduled run needs: retrain_min_examples, "
                                                               "else the RETRAIN_MIN_EXAMPLES setting.")

    class Meta:
        model = Task
        fields = ["name", "kind", "gate_metric", "gate_min_gain", "gate_guard_metric", "gate_max_drop",
                  "champion", "challenger", "versions", "retrain_min_examples", "min_examples"]

    def _alias(self, obj: Task, name: str) -> int | None:
        alias = next((a for a in obj.aliases.all() if a.name == name), None)
        return alias.version.version if alias else None

    def get_champion(self, obj: Task) -> int | None:
        return self._alias(obj, "champion")

    def get_challenger(self, obj: Task) -> int | None:
        return self._alias(obj, "challenger")

    def get_min_examples(self, obj: Task) -> int:
        return min_examples_for(obj)


class PromoteSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1)
    force = serializers.BooleanField(default=False)
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=1000)


class RollbackSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=1000)


class OutcomeSerializer(serializers.Serializer):
    promoted = serializers.BooleanField()
    reason = serializers.CharField()
    version = serializers.IntegerField()
    previous = serializers.IntegerField(allow_null=True)


class RetrainRunSerializer(serializers.ModelSerializer):
    task = serializers.CharField(source="task.name")
    version = serializers.IntegerField(source="version.version", allow_null=True, default=None)
    seconds = serializers.SerializerMethodField()

    class Meta:
        model = RetrainRun
        fields = ["id", "task", "status", "forced", "started_at", "finished_at", "seconds", "n_new_examples", "n_examples",
                  "version", "promoted", "reason", "metrics", "champion_metrics", "drift", "phase", "progress",
                  "n_skipped_rows", "skipped_rows"]

    def get_seconds(self, obj: RetrainRun) -> float | None:
        return round((obj.finished_at - obj.started_at).total_seconds(), 2) if obj.finished_at else None


# --- model operations (/api/registry/operations and the edits next to it) ---------------------------------

class TaskMinExamplesSerializer(serializers.Serializer):
    retrain_min_examples = serializers.IntegerField(
        min_value=1, allow_null=True,
        help_text="New feedback examples a scheduled run needs before it trains; null = the RETRAIN_MIN_EXAMPLES setting.")


class IntervalSerializer(serializers.Serializer):
    every = serializers.IntegerField()
    period = serializers.CharField()


class ScheduleSerializer(serializers.Serializer):
    """A django-celery-beat PeriodicTask running training.retrain for the task: an interval or a crontab."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    enabled = serializers.BooleanField()
    interval = IntervalSerializer(allow_null=True)
    crontab = serializers.CharField(allow_null=True, help_text="The crontab as text, when the schedule is not an interval.")
    kwargs = serializers.DictField(help_text='{"task": ..., "force": true when every tick trains}')
    queue = serializers.CharField(allow_null=True)
    last_run_at = serializers.DateTimeField(allow_null=True)
    total_run_count = serializers.IntegerField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return super().to_representation(instance if isinstance(instance, dict) else schedule_payload(instance))


class ScheduleUpdateSerializer(serializers.Serializer):
    """Any of these; a new every or period replaces the schedule's interval (or crontab) with that interval."""

    enabled = serializers.BooleanField(required=False)
    every = serializers.IntegerField(required=False, min_value=1)
    period = serializers.ChoiceField(required=False, choices=SCHEDULE_PERIODS)
    force = serializers.BooleanField(required=False, help_text="true: each tick trains, whatever the number of new examples.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: ["Not a schedule field (enabled, every, period, force)."] for name in unknown})
        if not attrs:
            raise serializers.ValidationError({"non_field_errors": ["Send any of enabled, every, period, force."]})
        return attrs


class LockSerializer(serializers.Serializer):
    held = serializers.BooleanField()
    expires_at = serializers.DateTimeField(allow_null=True)


class OperationsTaskSerializer(serializers.Serializer):
    task = serializers.CharField(source="task.name")
    kind = serializers.CharField(source="task.kind")
    champion = serializers.IntegerField(allow_null=True)
    min_examples = serializers.IntegerField()
    schedules = ScheduleSerializer(many=True)
    lock = LockSerializer()
    runs = RetrainRunSerializer(many=True)
    champion_history = EventSerializer(many=True)
    drift = serializers.DictField(help_text='The newest run\'s drift: {"label_tvd", "new", "train", "embedding"}; {} when none.')


class OpsAlertSerializer(serializers.ModelSerializer):
    task = serializers.CharField(source="task.name", allow_null=True, default=None)

    class Meta:
        model = OpsAlert
        fields = ["id", "task", "run", "level", "message", "created_at", "acknowledged_at", "acknowledged_by",
                  "acknowledged_comment"]


class OperationsSerializer(serializers.Serializer):
    tasks = OperationsTaskSerializer(many=True)
    alerts = OpsAlertSerializer(many=True, help_text="The open (not acknowledged) alerts, newest first.")


class OpsAlertQuerySerializer(serializers.Serializer):
    task = serializers.CharField(required=False)
    state = serializers.ChoiceField(choices=ALERT_STATES, default="open")


class AcknowledgeSerializer(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000,
                                    help_text="Stored with the acknowledgement (acknowledged_comment).")


class RetrainRequestSerializer(serializers.Serializer):
    force = serializers.BooleanField(default=False, help_text="Train even with fewer new examples than the minimum.")


class RetrainQueuedSerializer(serializers.Serializer):
    task = serializers.CharField()
    celery_id = serializers.CharField()
