from __future__ import annotations

from django.urls import path

from apps.sentiment import views

app_name = "sentiment"
urlpatterns = [path("", views.index, name="index")]
