"""Expected calibration error against figures worked out by hand."""
from __future__ import annotations

import numpy as np
import pytest

from services.errors import SuiteError
from services.ml.calibration import calibration_error, reliability_bins

# Four rows, three labels. Confidence (top probability), right or not, and its 15-bin bin ((b/15, (b+1)/15]):
#   0.9 right -> bin 13 (0.867, 0.933]     0.9 wrong -> bin 13
#   0.5 right -> bin 7  (0.467, 0.533]     0.7 wrong -> bin 10 (0.667, 0.733]
PROBS = [[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.2, 0.5, 0.3], [0.7, 0.2, 0.1]]
TRUTH = [0, 1, 1, 2]


def test_it_matches_the_hand_computed_ece_with_fifteen_bins() -> None:
    # bin 13: 2/4 * |0.5 - 0.9| = 0.2; bin 7: 1/4 * |1 - 0.5| = 0.125; bin 10: 1/4 * |0 - 0.7| = 0.175 -> 0.5
    assert calibration_error(probs=PROBS, truth=TRUTH) == pytest.approx(0.5)


def test_one_bin_compares_mean_confidence_with_accuracy() -> None:
    # mean confidence (0.9 + 0.9 + 0.5 + 0.7) / 4 = 0.75, accuracy 2 / 4 = 0.5 -> 0.25: binning changes the figure
    assert calibration_error(probs=PROBS, truth=TRUTH, bins=1) == pytest.approx(0.25)


def test_the_reliability_table_lists_every_bin_with_its_members() -> None:
    table = reliability_bins(probs=PROBS, truth=TRUTH)
    assert len(table) == 15
    filled = {b: row for b, row in enumerate(table) if row["count"]}
    assert sorted(filled) == [7, 10, 13]
    assert filled[13] == {"low": pytest.approx(13 / 15), "high": pytest.approx(14 / 15), "count": 2,
                          "confidence": pytest.approx(0.9), "accuracy": pytest.approx(0.5)}
    assert (filled[7]["accuracy"], filled[10]["accuracy"]) == (1.0, 0.0)


def test_a_confidence_on_a_bin_edge_belongs_to_the_lower_bin() -> None:
    # bins=2: (0, 0.5] and (0.5, 1]; 0.5 goes to the first, 1.0 to the last
    table = reliability_bins(probs=[[0.5, 0.5], [1.0, 0.0]], truth=[0, 0], bins=2)
    assert [row["count"] for row in table] == [1, 1]


def test_a_calibrated_model_scores_zero_and_an_overconfident_one_its_gap() -> None:
    probs = np.tile([0.8, 0.2], (10, 1))
    assert calibration_error(probs=probs, truth=[0] * 8 + [1] * 2) == pytest.approx(0.0)
    assert calibration_error(probs=probs, truth=[0] * 5 + [1] * 5) == pytest.approx(0.3)


def test_it_refuses_truth_that_does_not_fit_the_probabilities() -> None:
    with pytest.raises(SuiteError, match="one label index per row"):
        calibration_error(probs=PROBS, truth=[0, 1])
    with pytest.raises(SuiteError, match=r"label indices in \[0, 3\)"):
        calibration_error(probs=PROBS, truth=[0, 1, 1, 3])
    with pytest.raises(SuiteError, match="at least two labels"):
        calibration_error(probs=[0.5, 0.5], truth=[0, 1])
    with pytest.raises(SuiteError, match="bins=0"):
        calibration_error(probs=PROBS, truth=TRUTH, bins=0)
