from __future__ import annotations

from django.urls import path

from apps.support import views

app_name = "support"
urlpatterns = [path("", views.index, name="index"), path("widget/", views.widget, name="widget")]
