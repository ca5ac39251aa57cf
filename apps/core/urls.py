from __future__ import annotations

from django.urls import path

from apps.core import operators, views

urlpatterns = [
    path("", views.home, name="home"),
    path("api/me", views.me, name="api-me"),
    path("api/status", views.status, name="api-status"),
    path("healthz", operators.healthz, name="healthz"),
    path("readyz", operators.readyz, name="readyz"),
    path("metrics", operators.metrics, name="metrics"),
]
