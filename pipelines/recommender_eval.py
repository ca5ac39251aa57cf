"""Offline evaluation of the recommender (the command's entry; the work is services/recommender/evaluation.py).

    python manage.py recommender_eval --items items.csv --interactions interactions.csv \
        [--protocol leave-last-out] [--k 10] [--register]
"""
from __future__ import annotations

from services.recommender.evaluation import PROTOCOLS, EvalRequest, recommender_evaluate

__all__ = ["PROTOCOLS", "EvalRequest", "recommender_evaluate"]
