from __future__ import annotations

from django.urls import path

from apps.registry import api

urlpatterns = [
    path("registry/bases", api.BaseList.as_view(), name="api-registry-bases"),
    path("registry/tasks", api.TaskList.as_view(), name="api-registry-tasks"),
    path("registry/tasks/<slug:task>/versions", api.VersionList.as_view(), name="api-registry-versions"),
    path("registry/tasks/<slug:task>/events", api.EventList.as_view(), name="api-registry-events"),
    path("registry/tasks/<slug:task>/retrain-runs", api.RetrainRunList.as_view(), name="api-registry-retrain-runs"),
    path("registry/tasks/<slug:task>/promote", api.Promote.as_view(), name="api-registry-promote"),
    path("registry/tasks/<slug:task>/rollback", api.Rollback.as_view(), name="api-registry-rollback"),
]
