"""Recorded impressions in the ranker's training: items shown and then ignored are the negatives a user keeps first."""
from __future__ import annotations

import numpy as np

from services.recommender.behaviour import FEATURES
from services.recommender.learned import RankerConfig, ranker_fit, ranker_train, shown_ignored, split_targets
from tests.services.recommender.test_behaviour import DAY, N_ITEMS, POPULAR, TENT, NEW_TENT, histories, meta_of


def test_only_items_shown_before_the_target_and_never_touched_count_as_ignored() -> None:
    stories = histories()
    shown = {user: [(100.5 * DAY, POPULAR), (100.5 * DAY, TENT), (200 * DAY, NEW_TENT)] for user in stories}
    ignored = shown_ignored(histories=stories, targets=split_targets(stories)[1], shown=shown)
    assert ignored["ab0"] == {POPULAR, TENT}  # target B at day 101; NEW_TENT was shown after it
    assert ignored["twin0"] == {TENT}  # the twin users viewed POPULAR: not ignored
    assert "a-twin-fan" not in ignored  # one item, no target


def test_a_training_user_keeps_the_shown_and_ignored_candidates_before_sampled_ones() -> None:
    rng = np.random.default_rng(1)
    features, labels, hard = [], [], []
    for _ in range(12):  # 12 users, 40 candidates: one target, one shown-and-ignored (marked by a value no other row has)
        f = rng.random((40, len(FEATURES))).astype(np.float32)
        y = np.zeros(40, dtype=np.float32)
        y[0] = 1.0
        f[7, 0] = 9.0
        features.append(f)
        labels.append(y)
        hard.append(np.arange(40) == 7)
    ranker = ranker_train(features=features, labels=labels, hard=hard,
                          config=RankerConfig(negatives=2, min_rows_leaf=2, valid_share=0.25, rounds=30, rounds_min=5))
    n_train = ranker.metrics["n_train_users"]
    assert ranker.metrics["n_shown_negatives"] == n_train == 9
    trimmed = [f for f in features if len(f) == 3]  # ranker_train samples the training groups in place: target + 2
    assert len(trimmed) == n_train and all((f[:, 0] == 9.0).any() for f in trimmed)


def test_ranker_fit_reads_impressions_and_reports_how_many_it_kept() -> None:
    meta, created = meta_of()
    stories = histories()
    shown = {user: [(100.5 * DAY, key) for key in range(N_ITEMS)] for user in stories}  # the whole catalogue shown
    config = RankerConfig(min_rows_leaf=2, valid_share=0.3)
    with_impressions = ranker_fit(histories=stories, keys=range(N_ITEMS), text=None, meta_of=meta, created=created,
                                  config=config, shown=shown)
    without = ranker_fit(histories=stories, keys=range(N_ITEMS), text=None, meta_of=meta, created=created, config=config)
    assert without.metrics["n_shown_negatives"] == 0 and with_impressions.metrics["n_shown_negatives"] > 0
