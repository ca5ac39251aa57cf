from __future__ import annotations

from django.urls import path

from apps.recommender import views

app_name = "recommender"
urlpatterns = [path("", views.index, name="index")]
