from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

handler404 = "apps.core.errors.not_found"  # JSON in the one error shape under /api/ (DEBUG off, as deployed)

urlpatterns = [
    path("", include("apps.core.urls")),
    path("accounts/", include("apps.accounts.urls")),
    path("support/", include("apps.support.urls")),
    path("sentiment/", include("apps.sentiment.urls")),
    path("recommender/", include("apps.recommender.urls")),
    path("registry/", include("apps.registry.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/", include("apps.recommender.api_urls")),
    path("api/", include("apps.registry.api_urls")),
    path("api/", include("apps.sentiment.api_urls")),
    path("api/", include("apps.support.api_urls")),
    path("admin/", admin.site.urls),
]
