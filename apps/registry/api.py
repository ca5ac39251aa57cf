"""REST API of the model registry (admin role): /api/registry/..."""
from __future__ import annotations

from dataclasses import asdict

from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.access import HasAccess
from apps.registry import serializers as s
from apps.registry.models import AdapterVersion, AliasEvent, BaseModel, RetrainRun, Task
from services.registry.versions import task_get, version_promote, version_rollback

REGISTRY = [HasAccess("registry")]


class BaseList(generics.ListAPIView):
    permission_classes = REGISTRY
    serializer_class = s.BaseModelSerializer
    queryset = BaseModel.objects.all()


class TaskList(generics.ListAPIView):
    permission_classes = REGISTRY
    serializer_class = s.TaskSerializer
    queryset = Task.objects.prefetch_related("aliases__version")


class VersionList(generics.ListAPIView):
    permission_classes = REGISTRY
    serializer_class = s.VersionSerializer

    def get_queryset(self):  # noqa: ANN201
        task = task_get(name=self.kwargs["task"])
        return AdapterVersion.objects.filter(task=task).select_related("task", "base").prefetch_related("aliases")


class EventList(generics.ListAPIView):
    permission_classes = REGISTRY
    serializer_class = s.EventSerializer

    def get_queryset(self):  # noqa: ANN201
        return AliasEvent.objects.filter(task=task_get(name=self.kwargs["task"])).select_related("task")


class RetrainRunList(generics.ListAPIView):
    """The task's retraining runs, newest first: duration, examples, metrics vs the champion, gate result, drift."""

    permission_classes = REGISTRY
    serializer_class = s.RetrainRunSerializer

    def get_queryset(self):  # noqa: ANN201
        return RetrainRun.objects.filter(task=task_get(name=self.kwargs["task"])).select_related("task", "version")


class Promote(APIView):
    permission_classes = REGISTRY

    @extend_schema(request=s.PromoteSerializer, responses=s.OutcomeSerializer)
    def post(self, request: Request, task: str) -> Response:
        body = s.PromoteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        outcome = version_promote(task_name=task, actor=request.user.get_username(), **body.validated_data)
        return Response(asdict(outcome), status=200 if outcome.promoted else 409)


class Rollback(APIView):
    permission_classes = REGISTRY

    @extend_schema(request=s.RollbackSerializer, responses=s.OutcomeSerializer)
    def post(self, request: Request, task: str) -> Response:
        body = s.RollbackSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        outcome = version_rollback(task_name=task, actor=request.user.get_username(), **body.validated_data)
        return Response(asdict(outcome))
