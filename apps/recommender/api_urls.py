from __future__ import annotations

from django.urls import path

from apps.recommender import views

urlpatterns = [path("recommender/health", views.health, name="api-recommender-health")]
