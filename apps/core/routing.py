from __future__ import annotations

from django.urls import path

from apps.core.consumers import SystemStatusConsumer

websocket_urlpatterns = [path("ws/status/", SystemStatusConsumer.as_asgi())]
