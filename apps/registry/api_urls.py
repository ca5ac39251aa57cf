from __future__ import annotations

from django.urls import path

from apps.registry import api

urlpatterns = [
    path("registry/bases", api.BaseList.as_view(), name="api-registry-bases"),
    path("registry/tasks", api.TaskList.as_view(), name="api-registry-tasks"),
    path("registry/operations", api.Operations.as_view(), name="api-registry-operations"),
    path("registry/tasks/<slug:task>", api.TaskDetail.as_view(), name="api-registry-task"),
    path("registry/tasks/<slug:task>/schedules", api.ScheduleList.as_view(), name="api-registry-schedules"),
    path("registry/tasks/<slug:task>/schedules/<int:schedule_id>", api.ScheduleDetail.as_view(), name="api-registry-schedule"),
    path("registry/tasks/<slug:task>/retrain", api.RetrainNow.as_view(), name="api-registry-retrain"),
    path("registry/ops-alerts", api.OpsAlertList.as_view(), name="api-registry-ops-alerts"),
    path("registry/ops-alerts/<int:alert_id>/acknowledge", api.OpsAlertAcknowledge.as_view(), name="api-registry-ops-alert-acknowledge"),
    path("registry/tasks/<slug:task>/versions", api.VersionList.as_view(), name="api-registry-versions"),
    path("registry/tasks/<slug:task>/events", api.EventList.as_view(), name="api-registry-events"),
    path("registry/tasks/<slug:task>/retrain-runs", api.RetrainRunList.as_view(), name="api-registry-retrain-runs"),
    path("registry/tasks/<slug:task>/promote", api.Promote.as_view(), name="api-registry-promote"),
    path("registry/tasks/<slug:task>/rollback", api.Rollback.as_view(), name="api-registry-rollback"),
]
