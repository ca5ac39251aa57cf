from __future__ import annotations

from django.urls import path

from apps.support.consumers import ChatConsumer, ConsoleConsumer

websocket_urlpatterns = [
    path("ws/support/console/", ConsoleConsumer.as_asgi()),
    path("ws/support/chat/<str:token>/", ChatConsumer.as_asgi()),
]
