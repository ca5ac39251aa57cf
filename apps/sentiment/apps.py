from __future__ import annotations

from django.apps import AppConfig


class SentimentConfig(AppConfig):
    name = "apps.sentiment"
    label = "sentiment"
    verbose_name = "Market sentiment"
