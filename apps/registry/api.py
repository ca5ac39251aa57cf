"""REST API of the model registry (admin role): /api/registry/..."""
from __future__ import annotations

from dataclasses import asdict

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.access import HasAccess
from apps.core.schema import ErrorSerializer
from apps.registry import serializers as s
from apps.registry.models import AdapterVersion, AliasEvent, BaseModel, RetrainRun, Task
from services.registry import operations as ops
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


# --- model operations ----------------------------------------------------------------------------------------

class Operations(APIView):
    """Model operations, as /registry/operations/ shows them: per task its champion, minimum of new examples,
    retraining schedules, lock, last runs (phase and progress included), champion history and current drift;
    and the open alerts."""

    permission_classes = REGISTRY

    @extend_schema(responses=s.OperationsSerializer)
    def get(self, request: Request) -> Response:
        return Response(s.OperationsSerializer({"tasks": ops.operations_overview(),
                                                "alerts": ops.ops_alert_list(state="open")}).data)


class TaskDetail(APIView):
    """GET: one task with its minimum of new examples; PATCH {"retrain_min_examples": n ≥ 1 or null}."""

    permission_classes = REGISTRY

    def _task(self, name: str) -> Task:
        return Task.objects.prefetch_related("aliases__version").get(pk=task_get(name=name).pk)

    @extend_schema(responses=s.TaskSerializer)
    def get(self, request: Request, task: str) -> Response:
        return Response(s.TaskSerializer(self._task(task)).data)

    @extend_schema(request=s.TaskMinExamplesSerializer, responses=s.TaskSerializer)
    def patch(self, request: Request, task: str) -> Response:
        body = s.TaskMinExamplesSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        ops.task_min_examples_set(task=task, min_examples=body.validated_data["retrain_min_examples"])
        return Response(s.TaskSerializer(self._task(task)).data)


class ScheduleList(APIView):
    """The task's retraining beat schedules (django-celery-beat periodic tasks running training.retrain)."""

    permission_classes = REGISTRY

    @extend_schema(responses=s.ScheduleSerializer(many=True))
    def get(self, request: Request, task: str) -> Response:
        return Response(s.ScheduleSerializer(ops.schedule_list(task=task), many=True).data)


class ScheduleDetail(APIView):
    """GET one of the task's retraining schedules; PATCH any of enabled, every, period, force."""

    permission_classes = REGISTRY

    @extend_schema(responses=s.ScheduleSerializer)
    def get(self, request: Request, task: str, schedule_id: int) -> Response:
        return Response(s.ScheduleSerializer(ops.schedule_get(task=task, schedule_id=schedule_id)).data)

    @extend_schema(request=s.ScheduleUpdateSerializer, responses=s.ScheduleSerializer)
    def patch(self, request: Request, task: str, schedule_id: int) -> Response:
        body = s.ScheduleUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        schedule = ops.schedule_update(task=task, schedule_id=schedule_id, **body.validated_data)
        return Response(s.ScheduleSerializer(schedule).data)


class RetrainNow(APIView):
    """Queue a retraining run of the task on the training queue (202); follow it in .../retrain-runs or live on
    the operations page. 503 when the Celery broker cannot be reached."""

    permission_classes = REGISTRY

    @extend_schema(request=s.RetrainRequestSerializer, responses={202: s.RetrainQueuedSerializer})
    def post(self, request: Request, task: str) -> Response:
        body = s.RetrainRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        celery_id = ops.retrain_enqueue(task=task, force=body.validated_data["force"])
        return Response({"task": task, "celery_id": celery_id}, status=202)


class OpsAlertList(APIView):
    """Operations alerts (failed or abandoned retraining runs), newest first (at most 200)."""

    permission_classes = REGISTRY

    @extend_schema(parameters=[OpenApiParameter("task", str, description="only this task's alerts"),
                               OpenApiParameter("state", str, enum=list(ops.ALERT_STATES), description="open (default), acknowledged or all")],
                   responses={200: s.OpsAlertSerializer(many=True), 404: ErrorSerializer})  # 404: no such task
    def get(self, request: Request) -> Response:
        query = s.OpsAlertQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        alerts = ops.ops_alert_list(task=query.validated_data.get("task"), state=query.validated_data["state"])
        return Response(s.OpsAlertSerializer(alerts[:200], many=True).data)


class OpsAlertAcknowledge(APIView):
    """Mark an alert as seen (once; a second time is a 400); an optional comment is stored with it (acknowledged_comment)."""

    permission_classes = REGISTRY

    @extend_schema(request=s.AcknowledgeSerializer, responses=s.OpsAlertSerializer)
    def post(self, request: Request, alert_id: int) -> Response:
        body = s.AcknowledgeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        alert = ops.ops_alert_acknowledge(alert_id=alert_id, actor=request.user.get_username(), **body.validated_data)
        return Response(s.OpsAlertSerializer(alert).data)
