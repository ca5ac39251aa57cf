from __future__ import annotations

from django.urls import path

from apps.core import views

urlpatterns = [
    path("", views.home, name="home"),
    path("api/me", views.me, name="api-me"),
    path("api/status", views.status, name="api-status"),
]
