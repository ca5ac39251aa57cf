from __future__ import annotations

from django.urls import path

from apps.registry import views

app_name = "registry"
urlpatterns = [
    path("", views.index, name="index"),
    path("operations/", views.operations, name="operations"),
    path("operations/<slug:task>/retrain", views.retrain_now, name="retrain_now"),
    path("operations/alerts/<int:alert_id>/acknowledge", views.alert_acknowledge, name="alert_acknowledge"),
    path("<slug:task>/promote", views.promote, name="promote"),
    path("<slug:task>/rollback", views.rollback, name="rollback"),
]
