from __future__ import annotations

from django.apps import AppConfig


class RecommenderConfig(AppConfig):
    name = "apps.recommender"
    label = "recommender"
    verbose_name = "Recommender"
