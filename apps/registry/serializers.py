from __future__ import annotations

from rest_framework import serializers

from apps.registry.models import AdapterVersion, AliasEvent, BaseModel, RetrainRun, Task


class BaseModelSerializer(serializers.ModelSerializer):
    class Meta:
        model = BaseModel
        fields = ["name", "path", "sha256", "embedding_size", "licence", "is_default", "created_at"]


class VersionSerializer(serializers.ModelSerializer):
    task = serializers.CharField(source="task.name")
    base = serializers.CharField(source="base.name")
    aliases = serializers.SerializerMethodField()

    class Meta:
        model = AdapterVersion
        fields = ["task", "version", "base", "path", "sha256", "metrics", "label_map", "train_config",
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

    class Meta:
        model = Task
        fields = ["name", "kind", "gate_metric", "gate_min_gain", "gate_guard_metric", "gate_max_drop",
                  "champion", "challenger", "versions"]

    def _alias(self, obj: Task, name: str) -> int | None:
        alias = next((a for a in obj.aliases.all() if a.name == name), None)
        return alias.version.version if alias else None

    def get_champion(self, obj: Task) -> int | None:
        return self._alias(obj, "champion")

    def get_challenger(self, obj: Task) -> int | None:
        return self._alias(obj, "challenger")


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
                  "version", "promoted", "reason", "metrics", "champion_metrics", "drift"]

    def get_seconds(self, obj: RetrainRun) -> float | None:
        return round((obj.finished_at - obj.started_at).total_seconds(), 2) if obj.finished_at else None
