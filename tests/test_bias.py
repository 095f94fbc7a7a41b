"""Bias metrics against the oracle values of smclarify's published tests, and by hand."""
import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy

from fmeval.bias import metrics as bias
from fmeval.errors import UserError

# smclarify's binary example (tests/unit/bias/metrics/test_metrics.py)
X1 = np.array(list("MFFMFMFFMMFF"))
Y1 = np.array([0, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 0]) == 1
P1 = np.array([1, 1, 1, 0, 0, 0, 1, 1, 0, 1, 0, 0]) == 1
EXPECTED_F = {"CI": -1 / 6, "DI": 10 / 7, "DCA": 1 / 4, "DCR": 1 / 3, "RD": -2 / 3, "SD": 1 / 6, "DRR": 1 / 3,
              "AD": -13 / 35, "DAR": -1 / 2, "TE": -1 / 2, "GE": 0.24556213017751485}
# smclarify's report example (tests/unit/bias/test_report.py): columns x, y, z, yhat
X2, Y2, Z2, P2 = np.array(list("abbb")), np.array([1, 1, 0, 0]), np.array([1, 1, 1, 0]), np.array([1, 0, 0, 1]) == 1


def all_metrics(d, label, predicted, labels=None, group=None):
    values = bias.post_training_metrics(d, label, predicted, group=group)
    values.update(bias.pre_training_metrics(d, labels if labels is not None else label, label, group=group))
    return values


def test_binary_example_with_d_female():
    values = all_metrics(X1 == "F", Y1, P1)
    for name, expected in EXPECTED_F.items():
        assert values[name] == pytest.approx(expected), name


def test_binary_example_with_d_male_flips_signs_and_inverts_di():
    values = all_metrics(X1 == "M", Y1, P1)
    for name, expected in EXPECTED_F.items():
        if name == "DI":
            assert values[name] == pytest.approx(7 / 10)
        elif name == "GE":  # not a group difference: the same for either facet
            assert values[name] == pytest.approx(expected)
        else:
            assert values[name] == pytest.approx(-expected), name


def test_report_example_with_threshold_label():
    positive = Y2 > 0
    values = bias.pre_training_metrics(X2 == "a", positive, positive, group=Z2)
    assert values["CI"] == pytest.approx(0.5)
    assert values["DPL"] == pytest.approx(-2 / 3)
    assert values["KS"] == pytest.approx(2 / 3)
    assert values["LP"] == pytest.approx(2 / 3)
    assert values["TVD"] == pytest.approx(1 / 3)
    # The issue says "group = x"; smclarify's report test (the oracle's source) groups by its column z.
    assert values["CDDL"] == pytest.approx(-0.375)
    assert values["JS"] == pytest.approx(0.2789960722619452)  # also in smclarify's report
    post = bias.post_training_metrics(X2 == "a", positive, P2)
    assert post["AD"] == pytest.approx(-2 / 3)
    assert post["DI"] == pytest.approx(3.0)
    assert post["DPPL"] == pytest.approx(-2 / 3)
    assert post["RD"] == pytest.approx(-1.0)


def test_clarify_distribution_convention_and_the_textbook_option():
    positive = Y2 > 0
    d = X2 == "a"
    # common non-zero values only: P_a = [1/3], P_d = [1] -> KL = 1/3 ln(1/3) < 0
    assert bias.kl_divergence(positive, d) == pytest.approx(math.log(1 / 3) / 3)
    pa, pd_ = np.array([2 / 3, 1 / 3]), np.array([0.0, 1.0])  # label values (False, True)
    assert bias.total_variation_distance(positive, d, textbook=True) == pytest.approx(0.5 * np.abs(pa - pd_).sum())
    assert bias.lp_norm(positive, d, textbook=True) == pytest.approx(np.linalg.norm(pa - pd_))
    assert bias.kl_divergence(positive, d, textbook=True) == math.inf  # P_d(False) = 0 < P_a(False)
    assert bias.js_divergence(positive, d, textbook=True) == pytest.approx(jensenshannon(pa, pd_) ** 2)
    labels = np.array([1, 1, 2, 2, 2, 3, 1, 2, 3, 3])
    d = np.array([1, 0, 1, 0, 1, 0, 1, 0, 1, 0], dtype=bool)
    pa = np.bincount(labels[~d], minlength=4)[1:] / (~d).sum()
    pd_ = np.bincount(labels[d], minlength=4)[1:] / d.sum()
    assert bias.kl_divergence(labels, d) == pytest.approx(entropy(pa, pd_))  # all values in both groups


def test_division_conventions():
    assert bias.divide(1, 0) == math.inf and bias.divide(-2, 0) == -math.inf and bias.divide(0, 0) == 0
    assert bias.subtract(math.inf, math.inf) == 0 and bias.subtract(-math.inf, -math.inf) == 0
    # no predicted positives outside the facet: DI = q_d / 0 = inf
    d = np.array([True, True, False, False])
    assert bias.post_training(d, np.array([1, 0, 1, 0]) == 1, np.array([1, 0, 0, 0]) == 1)["DI"] == math.inf
    with pytest.raises(UserError, match="facet group is empty"):
        bias.class_imbalance(np.zeros(4, dtype=bool))


def test_flip_test_matches_smclarify():
    # smclarify's datasetFT: column 0 is the facet, the other columns are constant
    facet = np.array([0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0, 1, 1, 0, 1, 0])
    features = np.column_stack([facet, np.zeros((24, 3)), np.ones((24, 3))])
    predicted = np.array([1, 0, 1, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0]) == 1
    assert bias.flip_test(features, facet == 1, predicted) == pytest.approx(-0.5384615384615384)


def test_cddl_by_hand_on_two_subgroups():
    d = np.array([1, 1, 0, 0, 1, 0, 0, 0], dtype=bool)
    positive = np.array([0, 1, 1, 1, 0, 0, 1, 0], dtype=bool)
    group = np.array(["u", "u", "u", "u", "v", "v", "v", "v"])
    # u: rejected 1 (1 in d), accepted 3 (1 in d) -> DD = 1 - 1/3; v: rejected 3 (1 in d), accepted 1 (0) -> 1/3
    expected = (4 * (1 - 1 / 3) + 4 * (1 / 3)) / 8
    assert bias.conditional_demographic_disparity(d, positive, group) == pytest.approx(expected)


def test_unknown_metric_is_refused():
    with pytest.raises(UserError, match="unknown bias metric 'XYZ'"):
        bias.pre_training_metrics(X1 == "F", Y1, Y1, methods=["XYZ"])
