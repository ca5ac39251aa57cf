"""WebSocket routes of every app, gathered in one list."""
from __future__ import annotations

from apps.core.routing import websocket_urlpatterns as core_ws
from apps.registry.routing import websocket_urlpatterns as registry_ws
from apps.sentiment.routing import websocket_urlpatterns as sentiment_ws
from apps.support.routing import websocket_urlpatterns as support_ws

websocket_urlpatterns = [*core_ws, *registry_ws, *sentiment_ws, *support_ws]
