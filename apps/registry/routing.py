from __future__ import annotations

from django.urls import path

from apps.registry.consumers import OpsConsumer

websocket_urlpatterns = [path("ws/registry/ops/", OpsConsumer.as_asgi())]
