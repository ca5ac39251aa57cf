from __future__ import annotations

from django.urls import path

from apps.recommender import api, views

urlpatterns = [
    path("recommender/health", views.health, name="api-recommender-health"),
    path("items", api.Items.as_view(), name="api-recommender-items"),
    path("items/<str:external_id>/similar", api.ItemSimilar.as_view(), name="api-recommender-similar"),
    path("items/<str:external_id>", api.ItemDetail.as_view(), name="api-recommender-item"),
    path("events", api.Events.as_view(), name="api-recommender-events"),
    path("recommendations", api.Recommendations.as_view(), name="api-recommender-recommendations"),
    path("recommendations/session", api.SessionRecommendations.as_view(), name="api-recommender-session"),
]
