from __future__ import annotations

from django.urls import path

from apps.sentiment.consumers import SentimentConsumer

websocket_urlpatterns = [path("ws/sentiment/", SentimentConsumer.as_asgi())]
