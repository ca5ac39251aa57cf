"""The recommender's arithmetic: event and recency weights, profiles, popularity scaling, ranking metrics."""
from __future__ import annotations

import numpy as np

from services.recommender import ranking
from services.recommender.ranking import Interaction

DAY = 86400.0


def test_a_purchase_weighs_more_than_a_view_and_old_interactions_fade() -> None:
    weights = ranking.interactions_weights([Interaction(1, "view", 10 * DAY), Interaction(2, "purchase", 10 * DAY),
                                            Interaction(3, "purchase", 10 * DAY - ranking.HALF_LIFE_DAYS * DAY)])
    assert weights[1] > weights[0]
    assert np.isclose(weights[2], weights[1] / 2)


def test_the_profile_is_a_unit_vector_leaning_to_the_heavier_item() -> None:
    profile = ranking.profile_build(vectors=np.eye(2, dtype=np.float32), weights=np.array([1.0, 3.0], dtype=np.float32))
    assert np.isclose(np.linalg.norm(profile), 1.0) and profile[1] > profile[0]
    assert ranking.profile_build(vectors=np.zeros((0, 2), dtype=np.float32), weights=np.zeros(0, dtype=np.float32)) is None


def test_popularity_is_scaled_so_the_best_seller_is_one() -> None:
    scaled = ranking.popularity_scaled(np.array([0.0, 9.0, 99.0], dtype=np.float32))
    assert scaled[0] == 0 and np.isclose(scaled[2], 1.0) and 0 < scaled[1] < 1


def test_ndcg_and_recall_reward_a_hit_ranked_first_most() -> None:
    assert ranking.ndcg_at_k(ranked=[5, 1, 2], relevant={5}, k=3) == 1.0
    assert 0 < ranking.ndcg_at_k(ranked=[1, 5, 2], relevant={5}, k=3) < 1
    assert ranking.ndcg_at_k(ranked=[1, 2, 5], relevant={5}, k=2) == 0.0
    assert ranking.recall_at_k(ranked=[1, 2, 5], relevant={5, 9}, k=3) == 0.5
