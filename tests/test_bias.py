"""Bias metrics against smclarify's current unit-test oracles.

Every expected value below is taken from smclarify 0.5, the current release of SageMaker
Clarify's open-source library (github.com/aws/amazon-sagemaker-clarify, commit 024329d):
tests/unit/bias/metrics/test_metrics.py for single metrics and tests/unit/bias/test_report.py
for whole reports. The data are those tests' data. Values computed by hand say so.
"""
import json
import math

import numpy as np
import pandas as pd
import pytest

from fmeval.bias import metrics as bias
from fmeval.bias.analyze import analyze
from fmeval.errors import UserError

# test_metrics.py: dfBinary
SEX = np.array(list("MFFMFMFFMMFF"))
LABEL = np.array([0, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 0]) == 1
PREDICTED = np.array([1, 1, 1, 0, 0, 0, 1, 1, 0, 1, 0, 0]) == 1
# test_metrics.py: dfMulticategory and dfContinuous
MULTI = np.array(list("MOMMFOOFMMFFOFMFOFMMFFOO"))
CONTINUOUS = np.array([1.55255404, 1.87128923, 1.82640675, 0.48706083, 0.21833644, 0.45007763, 0.47457823,
                       1.5346789, 1.61042132, 1.87130261, 1.97768247, 1.05499183])
# test_metrics.py: DATASET_PDF
PDF_X = np.array(list("abbcaabcbcbb"))
PDF_LABEL = np.array([0, 0, 1, 1, 2, 1, 0, 1, 2, 2, 0, 2])
# test_metrics.py: datasetFT; column 0 is the facet
FT_DATA = np.array([
    [0, 0, 0, 0, 1, 1, 1], [1, 0, 0, 0, 1, 0, 1], [1, 0, 1, 0, 1, 0, 1], [0, 0, 0, 0, 0, 1, 1],
    [1, 0, 0, 1, 1, 0, 1], [0, 0, 1, 0, 1, 1, 1], [1, 0, 0, 0, 1, 1, 1], [1, 1, 0, 0, 1, 1, 1],
    [0, 0, 1, 0, 1, 1, 1], [1, 0, 1, 1, 1, 1, 0], [1, 0, 0, 0, 1, 1, 0], [1, 0, 1, 0, 1, 1, 1],
    [1, 0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 1, 1, 1], [0, 0, 1, 0, 1, 0, 1], [0, 0, 1, 0, 1, 1, 1],
    [0, 1, 0, 1, 0, 0, 1], [1, 0, 0, 0, 0, 1, 1], [0, 0, 1, 0, 0, 1, 1], [1, 0, 0, 0, 1, 1, 0],
    [1, 0, 1, 0, 0, 1, 1], [0, 1, 0, 0, 0, 1, 1], [1, 0, 1, 0, 1, 0, 1], [0, 0, 0, 1, 1, 1, 0],
], dtype=float)
FT_PREDICTED = np.array([1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1]) == 1


def pre(d, positive, group=None):
    return bias.evaluate(bias.pre_training(bias.Counts.of(d, positive, group=group)), list(bias.PRE_TRAINING))


def post(d, positive, predicted, group=None):
    return bias.evaluate(bias.post_training(bias.Counts.of(d, positive, predicted, group=group)),
                         [m for m in bias.POST_TRAINING if m != "FT"])


def histograms(labels, d):
    """Label-value counts of a and of d, over the same values (for the raw-label oracles)."""
    values = np.unique(labels)
    return [np.array([np.sum(labels[mask] == v) for v in values]) for mask in (~d, d)]


def test_ci_binary_continuous_and_one_vs_all():
    assert pre(SEX == "F", LABEL)["CI"] == pytest.approx(-1 / 6)
    assert pre(SEX == "M", LABEL)["CI"] == pytest.approx(1 / 6)
    assert pre(CONTINUOUS > 1.0, LABEL)["CI"] == pytest.approx(-1 / 3)
    assert pre(CONTINUOUS < 1.0, LABEL)["CI"] == pytest.approx(1 / 3)
    positive = np.zeros(len(MULTI), dtype=bool)
    assert {v: pre(MULTI == v, positive)["CI"] for v in "MFO"} == pytest.approx({"M": 1 / 3, "F": 1 / 4, "O": 5 / 12})


def test_dpl_one_vs_all():
    x, y = np.array(list("aabb")), np.array([1, 1, 0, 1]) == 1
    assert pre(x == "a", y)["DPL"] == -0.5 and pre(x == "b", y)["DPL"] == 0.5


def test_kl_js_lp_on_binary_labels():
    label = np.array([True, True, True, False, False, False])
    first = np.array([True, False, False, False, False, False])
    half = np.array([True, False, False, False, True, False])
    assert pre(first, label)["KL"] == pytest.approx(-0.366516)
    assert pre(first, label)["JS"] == pytest.approx(0.06641431438228168)
    assert pre(first, label)["LP"] == pytest.approx(0.6)
    assert pre(half, label)["KL"] == 0.0 and pre(half, label)["JS"] == 0.0 and pre(half, label)["LP"] == 0.0
    for name in ("KL", "JS", "LP"):
        assert pre(np.zeros(6, dtype=bool), label)[name] == "No instance of common facet found, dataset may be too small"
    # JS computed by hand in smclarify's test: Pa = (.5, .5), Pd = (.25, .75), P = their mean
    pa, pd_ = np.array([0.5, 0.5]), np.array([0.25, 0.75])
    mixture = (pa + pd_) / 2
    by_hand = 0.5 * (np.sum(pa * np.log(pa / mixture)) + np.sum(pd_ * np.log(pd_ / mixture)))
    assert pre(half, np.array([True, True, True, True, False, False]))["JS"] == pytest.approx(by_hand)


def test_kl_js_lp_ks_with_several_facet_and_label_values():
    d = (PDF_X == "a") | (PDF_X == "c")
    positive = (PDF_LABEL == 1) | (PDF_LABEL == 2)
    values = pre(d, positive)
    assert values["KL"] == pytest.approx(0.2938933)
    assert values["JS"] == pytest.approx(0.06465997)
    assert values["LP"] == pytest.approx(0.471404520)
    assert values["KS"] == pytest.approx(0.33333333)
    # smclarify's KS also on the raw three-valued label (the histogram functions take any values)
    assert bias.lp(*histograms(PDF_LABEL, PDF_X != "b"), np.inf) == pytest.approx(0.33333333)
    raw = np.array([1, 0, 0, 1, 1])
    assert bias.lp(*histograms(raw, np.array(list("aabbb")) == "b"), np.inf) == pytest.approx(0.16666666)


def test_cddl_one_vs_all():
    x = np.array(list("MMMFFFFMMMMFMMFMFFMMFMMF"))
    positive = np.array([0, 1, 1, 0, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0, 1, 1, 0]) == 1
    group = np.array([1, 0, 2, 2, 1, 1, 2, 1, 1, 2, 0, 1, 2, 0, 1, 1, 1, 2, 0, 1, 0, 0, 1, 1])
    assert pre(x == "F", positive, group)["CDDL"] == pytest.approx(0.3982142857)
    assert pre(x == "M", positive, group)["CDDL"] == pytest.approx(-0.3982142857)
    assert pre(x == "F", positive)["CDDL"] == "Group variable is empty or not provided"


def test_post_training_binary_example_and_its_mirror():
    expected_for_f = {"DCA": 1 / 4, "DCR": 1 / 3, "RD": -2 / 3, "SD": 1 / 6, "DRR": 1 / 3, "AD": -13 / 35,
                      "DAR": -1 / 2, "TE": -1 / 2}
    for_f, for_m = post(SEX == "F", LABEL, PREDICTED), post(SEX == "M", LABEL, PREDICTED)
    for name, value in expected_for_f.items():
        assert for_f[name] == pytest.approx(value), name
        assert for_m[name] == pytest.approx(-value), name
    assert for_f["DI"] == pytest.approx(10 / 7) and for_m["DI"] == pytest.approx(7 / 10)
    assert for_f["GE"] == for_m["GE"] == pytest.approx(0.24556213017751485)  # not a group difference


def test_di_edge_cases_and_drr_with_no_rejections():
    none_for_m = np.array([0, 1, 1, 0, 1, 0, 1, 1, 0, 0, 1, 1]) == 1
    assert post(SEX == "F", LABEL, none_for_m)["DI"] == math.inf
    assert post(np.zeros(12, dtype=bool), LABEL, none_for_m)["DI"] == "Facet set is empty"
    assert post(np.ones(2, dtype=bool), np.array([False, True]), np.array([False, True]))["DI"] == \
        "Negated facet set is empty"
    all_m_accepted = np.array([1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 1]) == 1
    assert post(SEX == "F", LABEL, all_m_accepted)["DRR"] == pytest.approx(0.5)
    assert post(SEX == "M", LABEL, all_m_accepted)["DRR"] == pytest.approx(-0.5)


def test_flip_test_with_the_facet_among_the_features():
    assert bias.flip_test(FT_DATA, FT_DATA[:, 0] == 1, FT_PREDICTED) == pytest.approx(-0.23076923076923078)


def test_flip_test_small_samples_use_one_neighbour():
    # datasetFT_small_samples: three rows outside the facet (column 0), so k = 1
    rows = np.array([
        [0, 0, 0, 0, 1, 1, 1], [1, 0, 0, 0, 1, 0, 1], [1, 0, 1, 0, 1, 0, 1], [1, 0, 0, 1, 1, 0, 1],
        [1, 0, 0, 0, 1, 1, 1], [1, 1, 0, 0, 1, 1, 1], [1, 0, 1, 1, 1, 1, 0], [1, 0, 0, 0, 1, 1, 0],
        [1, 0, 1, 0, 1, 1, 1], [1, 0, 0, 0, 0, 1, 1], [1, 0, 0, 0, 0, 1, 1], [0, 0, 1, 0, 0, 1, 1],
        [1, 0, 0, 0, 1, 1, 0], [1, 0, 1, 0, 0, 1, 1], [1, 0, 1, 0, 1, 0, 1], [0, 0, 0, 1, 1, 1, 0]], dtype=float)
    predicted = np.array([1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1]) == 1
    assert bias.flip_test(rows, rows[:, 0] == 1, predicted) == pytest.approx(-0.15384615384615385)


def test_division_conventions():
    assert bias.divide(1, 0) == math.inf and bias.divide(-2, 0) == -math.inf and bias.divide(0, 0) == 0
    assert bias.subtract(math.inf, math.inf) == 0 and bias.subtract(-math.inf, -math.inf) == 0


def test_counts_of_parts_add_up_to_the_counts_of_the_whole():
    rng = np.random.default_rng(0)
    n = 5000
    d, positive, predicted = rng.random(n) < 0.3, rng.random(n) < 0.4, rng.random(n) < 0.5
    group = rng.choice(["u", "v", "w"], n)
    whole = bias.Counts.of(d, positive, predicted, group=group)
    parts = [bias.Counts.of(d[i:i + 700], positive[i:i + 700], predicted[i:i + 700], group=group[i:i + 700])
             for i in range(0, n, 700)]
    merged = sum(parts[1:], parts[0])
    assert (merged.table == whole.table).all()
    assert post(d, positive, predicted, group) == {
        name: fn() for name, fn in bias.post_training(merged).items() if name in post(d, positive, predicted)}
    # DPPL by hand
    assert post(d, positive, predicted)["DPPL"] == pytest.approx(predicted[~d].mean() - predicted[d].mean())


# -- whole reports, through `analyze` (smclarify's test_report.py) ----------------------------------
def report(tmp_path, frame, facet, label_values, stage, metrics="all", **config):
    cfg = {"label": "y", "label_values_or_threshold": label_values, "facet": [facet],
           "methods": {stage: {"methods": metrics}}, **config}
    key = stage + "_metrics"
    result = analyze(cfg, frame, tmp_path / "out")
    return [{"value_or_threshold": group["value_or_threshold"],
             "metrics": {m["name"]: m["value"] if m["value"] is not None else m["error"] for m in group["metrics"]}}
            for group in result[key]["facets"][str(facet["name_or_index"])]]


CATEGORY = pd.DataFrame([["a", 1, 1, 1, "1"], ["b", 1, 1, 0, "0"], ["b", 0, 1, 0, "0"], ["b", 0, 0, 1, "1"]],
                        columns=["x", "y", "z", "yhat", "yhat_cat"])


@pytest.mark.parametrize("prediction", ["yhat", "yhat_cat"])
def test_report_category_data(tmp_path, prediction):
    common = {"group_variable": "z", "predicted_label_name_or_index": prediction}
    pre_report = report(tmp_path, CATEGORY, {"name_or_index": "x"}, [0], "pre_training_bias", **common)
    assert pre_report == [
        {"value_or_threshold": "a", "metrics": pytest.approx({
            "CDDL": -0.375, "CI": 0.5, "DPL": -0.6666666666666667, "JS": 0.08720802396075798,
            "KL": -0.3662040962227032, "KS": 0.6666666666666667, "LP": 0.6666666666666667,
            "TVD": 0.33333333333333337})},
        {"value_or_threshold": "b", "metrics": pytest.approx({
            "CDDL": 0.625, "CI": -0.5, "DPL": 0.6666666666666667, "JS": 0.08720802396075798,
            "KL": 1.0986122886681098, "KS": 0.6666666666666667, "LP": 0.6666666666666667,
            "TVD": 0.33333333333333337})},
    ]
    post_report = report(tmp_path, CATEGORY, {"name_or_index": "x"}, [0], "post_training_bias",
                         ["AD", "DI", "DPPL", "RD"], **common)
    assert post_report == [
        {"value_or_threshold": "a", "metrics": pytest.approx({"AD": -0.6666666666666667, "DI": 3.0,
                                                              "DPPL": -0.6666666666666667, "RD": -1.0})},
        {"value_or_threshold": "b", "metrics": pytest.approx({"AD": 0.6666666666666667, "DI": 0.3333333333333333,
                                                              "DPPL": 0.6666666666666667, "RD": 1.0})},
    ]
    assert [list(group["metrics"]) for group in post_report] == [["AD", "DI", "DPPL", "RD"]] * 2  # Clarify's order


CONTINUOUS_REPORT = pd.DataFrame([
    [0, 0, 0, 0, True, 1, 1, 1], [3, 0, 0, 0, True, 0, 1, 1], [3, 0, 1, 0, True, 0, 1, 1],
    [0, 0, 0, 0, False, 1, 1, 0], [4, 0, 0, 1, True, 0, 1, 1], [0, 0, 1, 0, True, 1, 1, 1],
    [3, 0, 0, 0, True, 1, 1, 1], [3, 1, 0, 0, True, 1, 1, 1], [0, 0, 1, 0, True, 1, 1, 1],
    [3, 0, 1, 1, True, 1, 0, 1], [4, 0, 0, 0, True, 1, 0, 1], [3, 0, 1, 0, True, 1, 1, 1],
    [3, 0, 0, 0, False, 1, 1, 0], [0, 0, 0, 0, True, 1, 1, 1], [0, 0, 1, 0, True, 0, 1, 1],
    [0, 0, 1, 0, True, 1, 1, 1], [0, 1, 0, 1, False, 0, 1, 0], [3, 0, 0, 0, False, 1, 1, 0],
    [0, 0, 1, 0, False, 1, 1, 1], [3, 0, 0, 0, True, 1, 0, 1], [3, 0, 1, 0, False, 1, 1, 0],
    [0, 1, 0, 0, False, 1, 1, 0], [3, 0, 1, 0, True, 0, 1, 1], [0, 0, 0, 1, True, 1, 0, 1],
], columns=["x", "y", "z", "a", "b", "c", "d", "yhat"])


def test_report_continuous_data(tmp_path):
    common = {"group_variable": "z", "predicted_label_name_or_index": "yhat"}
    facet = {"name_or_index": "x", "value_or_threshold": [2]}
    assert report(tmp_path, CONTINUOUS_REPORT, facet, [0], "pre_training_bias", **common) == [
        {"value_or_threshold": "(2, 4]", "metrics": pytest.approx({
            "CDDL": 0.3851010101010101, "CI": -0.08333333333333333, "DPL": 0.1048951048951049,
            "JS": 0.01252420207928287, "KL": 0.057704603668062765, "KS": 0.1048951048951049,
            "LP": 0.14834407996920576, "TVD": 0.1048951048951049})}]
    assert report(tmp_path, CONTINUOUS_REPORT, facet, [0], "post_training_bias", **common) == [
        {"value_or_threshold": "(2, 4]", "metrics": pytest.approx({
            "AD": -0.2167832167832168, "CDDPL": 0.07592592592592595, "DAR": -0.1, "DCA": 0.15, "DCR": 1.0,
            "DI": 1.0576923076923077, "DPPL": -0.04195804195804198, "DRR": 0.6666666666666667,
            "FT": -0.23076923076923078, "GE": 0.07593688362919139, "RD": -1.0, "SD": 0.1388888888888889,
            "TE": -0.25})}]


def test_report_regression_thresholds_the_label_and_prediction_alike(tmp_path):
    frame = CONTINUOUS_REPORT.copy()
    frame["y"] = [0.0, 0.5, 2, 3, 2.2, 0.1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 8, 0, 0]
    frame["yhat"] = [11, 6, 6.6, 0.3, 6, 6, 6, 6, 6, 6, 6, 6, 0, 6.2, 6.6, 6.6, 0.1, 2, 8, 9, 0.1, 2.2, 10, 9]
    common = {"group_variable": "z", "predicted_label_name_or_index": "yhat"}
    facet = {"name_or_index": "x", "value_or_threshold": [2]}
    assert report(tmp_path, frame, facet, [5], "post_training_bias", **common) == \
        report(tmp_path, CONTINUOUS_REPORT, facet, [0.5], "post_training_bias", **common)


def test_report_numeric_strings_are_continuous_and_listed_integers_categorical(tmp_path):
    text = pd.DataFrame({"y": list("1234"), "Facet": list("1234"), "Feature": list("1234"), "yhat": list("1234")})
    assert report(tmp_path, text, {"name_or_index": "Facet", "value_or_threshold": [2]}, [2], "post_training_bias",
                  ["DPPL"], predicted_label_name_or_index="yhat") == [
        {"value_or_threshold": "(2, 4]", "metrics": {"DPPL": pytest.approx(-1.0)}}]
    numbers = pd.DataFrame({"y": [1, 1, 3, 4], "Facet": [1, 2, 3, 4], "Feature": [1, 2, 3, 4], "yhat": [2, 2, 3, 4]})
    assert report(tmp_path, numbers, {"name_or_index": "Facet", "value_or_threshold": [1, 2]}, [1, 2],
                  "post_training_bias", ["DPPL"], predicted_label_name_or_index="yhat") == [
        {"value_or_threshold": "1,2", "metrics": {"DPPL": pytest.approx(-1.0)}}]


LABEL_VALUES = pd.DataFrame([["a", "p", 1, "p"], ["b", "q", 1, "p"], ["b", "r", 1, "q"], ["c", "p", 0, "p"],
                             ["c", "q", 0, "p"]], columns=["x", "y", "z", "yhat"])


def test_report_several_positive_label_values(tmp_path):
    common = {"group_variable": "z", "predicted_label_name_or_index": "yhat"}
    assert report(tmp_path, LABEL_VALUES, {"name_or_index": "x"}, ["p", "q"], "pre_training_bias", ["DPL", "CDDL"],
                  **common) == [
        {"value_or_threshold": "a", "metrics": pytest.approx({"CDDL": -0.3, "DPL": -0.25})},
        {"value_or_threshold": "b", "metrics": pytest.approx({"CDDL": 0.3, "DPL": 0.5})},
        {"value_or_threshold": "c", "metrics": pytest.approx({"CDDL": -0.4, "DPL": -0.33333333333333337})}]
    post_report = report(tmp_path, LABEL_VALUES, {"name_or_index": "x"}, ["p", "q"], "post_training_bias",
                         ["AD", "DI", "DPPL", "RD", "DAR", "DRR"], **common)
    assert [g["metrics"] for g in post_report] == [
        pytest.approx({"AD": -0.25, "DAR": -0.25, "DI": 1.0, "DPPL": 0.0, "DRR": 0, "RD": 0.0}),
        pytest.approx({"AD": 0.5, "DAR": 0.5, "DI": 1.0, "DPPL": 0.0, "DRR": 0, "RD": 0.0}),
        pytest.approx({"AD": -0.33333333333333337, "DAR": -0.33333333333333337, "DI": 1.0, "DPPL": 0.0, "DRR": 0,
                       "RD": 0.0})]


@pytest.mark.parametrize("series, positive", [
    ([1, 2, 0, 1, 2], [1, 2]), (["1", "2", "0", "1", "2"], [1, 2]), ([1, 2, 0, 1, 2], ["1", "2"]),
    (["1", "2", "0", "1", "2"], ["1", "2"])])
def test_report_label_values_of_another_type_than_the_column(tmp_path, series, positive):
    frame = pd.DataFrame({"x": list("abbcc"), "z": [1, 1, 1, 0, 0]})
    frame["y"] = pd.Series(series).astype("category")
    frame["yhat"] = pd.Series([type(series[0])(v) for v in (1, 1, 0, 1, 1)]).astype("category")
    common = {"group_variable": "z", "predicted_label_name_or_index": "yhat"}
    expected = {"a": (-0.3, -0.25), "b": (0.3, 0.5), "c": (-0.4, -0.33333333333333337)}
    pre_report = report(tmp_path, frame, {"name_or_index": "x"}, positive, "pre_training_bias", ["DPL", "CDDL"], **common)
    assert {g["value_or_threshold"]: g["metrics"] for g in pre_report} == {
        value: pytest.approx({"CDDL": cddl, "DPL": dpl}) for value, (cddl, dpl) in expected.items()}
    post_report = report(tmp_path, frame, {"name_or_index": "x"}, positive, "post_training_bias", ["DPPL", "CDDPL"],
                         **common)
    assert {g["value_or_threshold"]: g["metrics"] for g in post_report} == {
        value: pytest.approx({"CDDPL": cddl, "DPPL": dpl}) for value, (cddl, dpl) in expected.items()}


def test_partial_report_gives_the_error_of_each_undefined_metric(tmp_path):
    frame = pd.DataFrame([[1, 1, 1, 1], [2, 1, 1, 0], [3, 0, 0, 0], [2, 0, 1, 1], [0, 0, 1, 1]],
                         columns=["x", "y", "z", "yhat"])
    facet = {"name_or_index": "x", "value_or_threshold": [2]}
    no_group = "Group variable is empty or not provided"
    assert report(tmp_path, frame, facet, [0], "pre_training_bias", ["CI", "CDDL", "DPL", "KL"],
                  predicted_label_name_or_index="yhat") == [
        {"value_or_threshold": "(2, 3]",
         "metrics": {"CDDL": no_group, "CI": pytest.approx(0.6), "DPL": pytest.approx(0.5),
                     "KL": pytest.approx(-0.34657359027997264)}}]
    assert report(tmp_path, frame, facet, [0], "post_training_bias", ["AD", "CDDPL", "DCA", "DI", "DPPL", "FT", "GE", "SD"],
                  predicted_label_name_or_index="yhat") == [
        {"value_or_threshold": "(2, 3]",
         "metrics": {"AD": pytest.approx(-0.75), "CDDPL": no_group, "DCA": pytest.approx(0.6666666666666666),
                     "DI": pytest.approx(0.0), "DPPL": pytest.approx(0.75), "FT": pytest.approx(-1.0),
                     "GE": pytest.approx(0.19444444444444456), "SD": 1.0}}]


def test_flip_test_with_a_string_column_is_reported_not_computed(tmp_path):
    frame = pd.DataFrame(FT_DATA[:, 1:], columns=list("abcdef"))
    frame.insert(0, "x", np.where(FT_DATA[:, 0] == 1, "F", "M"))
    frame["y"] = FT_PREDICTED.astype(int)
    frame["yhat"] = FT_PREDICTED.astype(int)
    facet = {"name_or_index": "x", "value_or_threshold": ["F"]}
    common = {"predicted_label_name_or_index": "yhat", "label_type": "categorical"}
    # the string facet itself is left out of the neighbours' features, as smclarify's report does
    without_facet = bias.flip_test(FT_DATA[:, 1:], FT_DATA[:, 0] == 1, FT_PREDICTED)
    assert report(tmp_path, frame, facet, [1], "post_training_bias", ["FT"], **common)[0]["metrics"] == {
        "FT": pytest.approx(without_facet)}
    frame["d"] = "text"
    assert report(tmp_path, frame, facet, [1], "post_training_bias", ["FT"], **common)[0]["metrics"] == {
        "FT": "FlipTest does not support non-numeric columns"}


def test_threshold_list_on_a_float_facet_is_labelled_as_an_interval(tmp_path):
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"score": rng.uniform(0, 4.2939, 200).round(4), "y": rng.integers(0, 2, 200)})
    frame.loc[0, "score"] = 4.2939
    result = report(tmp_path, frame, {"name_or_index": "score", "value_or_threshold": [0.55555]}, [1],
                    "pre_training_bias", ["CI"])
    above = (frame.score > 0.55555).to_numpy()
    assert result == [{"value_or_threshold": "(0.55555, 4.2939]",
                       "metrics": {"CI": pytest.approx(((~above).sum() - above.sum()) / 200)}}]


def test_labels_are_binarised_before_the_distribution_metrics(tmp_path):
    frame = pd.DataFrame({"x": list("aaaaabbbbb"), "y": ["yes", "no", "maybe", "maybe", "yes",
                                                         "no", "no", "maybe", "yes", "no"]})
    values = report(tmp_path, frame, {"name_or_index": "x", "value_or_threshold": ["b"]}, ["yes"],
                    "pre_training_bias", ["KL", "JS", "LP"])[0]["metrics"]
    # a: 2 yes of 5 -> (no-or-maybe, yes) = (.6, .4); d: (.8, .2); KL by hand
    assert values["KL"] == pytest.approx(0.6 * math.log(0.6 / 0.8) + 0.4 * math.log(0.4 / 0.2))
    assert values["LP"] == pytest.approx(math.hypot(0.2, 0.2))


def test_missing_labels_and_facets_are_dropped_and_reported_or_refused(tmp_path):
    frame = pd.DataFrame({"x": ["a", "a", None, "b", "b", "b", "a", "b"],
                          "y": [1.5, np.nan, 0.2, 2.5, 0.1, 3.0, 0.4, 2.2]})
    cfg = {"label": "y", "label_values_or_threshold": [1], "facet": [{"name_or_index": "x", "value_or_threshold": ["b"]}],
           "methods": {"pre_training_bias": {"methods": ["CI", "DPL"]}}}
    result = analyze(cfg, frame, tmp_path / "out")
    assert result["rows_with_missing_values"] == {"count": 2, "action": "dropped", "rows": [1, 2]}
    values = {m["name"]: m["value"] for m in result["pre_training_bias_metrics"]["facets"]["x"][0]["metrics"]}
    # 6 rows remain: a = rows 0, 6 (positive 1 of 2); b = rows 3, 4, 5, 7 (positive 3 of 4)
    assert values == pytest.approx({"CI": (2 - 4) / 6, "DPL": 1 / 2 - 3 / 4})
    with pytest.raises(UserError, match=r"2 row\(s\) have no value in y, x \(rows 1, 2\)"):
        analyze({**cfg, "missing_values": "fail"}, frame, tmp_path / "out2")


def test_infinite_values_are_written_as_clarify_does(tmp_path):
    frame = pd.DataFrame({"x": list("MFFMFMFFMMFF"), "y": LABEL.astype(int),
                          "yhat": [0, 1, 1, 0, 1, 0, 1, 1, 0, 0, 1, 1]})
    cfg = {"label": "y", "label_type": "categorical", "predicted_label_name_or_index": "yhat",
           "facet": [{"name_or_index": "x", "value_or_threshold": ["F"]}],
           "methods": {"post_training_bias": {"methods": ["DI"]}}}
    analyze(cfg, frame, tmp_path / "out")
    written = json.loads((tmp_path / "out" / "analysis.json").read_text())
    assert written["post_training_bias_metrics"]["facets"]["x"][0]["metrics"][0]["value"] == "Infinity"


def test_a_threshold_that_leaves_one_outcome_explains_the_continuous_rule(tmp_path):
    frame = pd.DataFrame({"x": list("ab") * 10, "y": [0, 1] * 10})  # 2 distinct values in 20 rows: 10%
    cfg = {"label": "y", "label_values_or_threshold": [1], "facet": [{"name_or_index": "x", "value_or_threshold": ["a"]}],
           "methods": {"pre_training_bias": {"methods": ["CI"]}}}
    with pytest.raises(UserError, match=r"counts as continuous \(2 distinct values in 20 rows.*\"label_type\": "
                                        r"\"categorical\""):
        analyze(cfg, frame, tmp_path / "out")
    result = analyze({**cfg, "label_type": "categorical"}, frame, tmp_path / "out")
    assert result["pre_training_bias_metrics"]["label_value_or_threshold"] == "1"


# -- one metric that cannot be computed does not lose the analysis (issue 22) ------------------------
FACET_ONLY_CSV = """x,y,yhat
M,yes,yes
M,yes,yes
M,yes,yes
M,yes,no
M,no,no
M,no,yes
F,yes,no
F,no,no
F,no,yes
F,no,no
F,no,no
F,yes,yes
"""


def test_a_facet_only_file_reports_ft_as_an_error_and_every_other_metric(tmp_path, capsys):
    from sklearn.metrics import accuracy_score, recall_score  # scikit-learn 1.9, the oracle for RD and AD

    from fmeval.cli import main

    (tmp_path / "x.csv").write_text(FACET_ONLY_CSV)
    (tmp_path / "config.json").write_text(json.dumps({
        "dataset_type": "text/csv", "label": "y", "label_values_or_threshold": ["yes"],
        "facet": [{"name_or_index": "x"}], "predicted_label_name_or_index": "yhat",
        "methods": {"pre_training_bias": {"methods": "all"}, "post_training_bias": {"methods": "all"}}}))
    assert main(["analyze", "--config", str(tmp_path / "config.json"), "--data", str(tmp_path / "x.csv"),
                 "-o", str(tmp_path / "out")]) == 0
    analysis = json.loads((tmp_path / "out" / "analysis.json").read_text())
    frame = pd.read_csv(tmp_path / "x.csv")
    for stage, names in (("pre_training_bias_metrics", bias.PRE_TRAINING),
                         ("post_training_bias_metrics", bias.POST_TRAINING)):
        groups = analysis[stage]["facets"]["x"]
        assert [g["value_or_threshold"] for g in groups] == ["F", "M"]
        for group in groups:
            metrics = {m["name"]: m for m in group["metrics"]}
            assert list(metrics) == sorted(names)  # every metric asked for is there, in Clarify's order
            failed = {name for name, m in metrics.items() if "error" in m}
            # smclarify's MetricError: name, description, value null and the error's text
            assert all(metrics[name]["value"] is None and metrics[name]["error"] for name in failed)
            # CDDL/CDDPL need a group variable; FT needs a feature besides the facet: nothing else fails
            assert failed == ({"CDDL"} if stage.startswith("pre") else {"CDDPL", "FT"})
    post = {m["name"]: m for m in analysis["post_training_bias_metrics"]["facets"]["x"][0]["metrics"]}
    assert "FlipTest needs at least one feature column besides the facet" in post["FT"]["error"]
    d, a = frame[frame.x == "F"], frame[frame.x == "M"]
    y_true = lambda rows: rows.y == "yes"  # noqa: E731
    y_pred = lambda rows: rows.yhat == "yes"  # noqa: E731
    assert post["RD"]["value"] == pytest.approx(recall_score(y_true(a), y_pred(a)) - recall_score(y_true(d), y_pred(d)))
    assert post["AD"]["value"] == pytest.approx(accuracy_score(y_true(a), y_pred(a))
                                                - accuracy_score(y_true(d), y_pred(d)))
    assert post["DPPL"]["value"] == pytest.approx(y_pred(a).mean() - y_pred(d).mean())
    pre = {m["name"]: m["value"] for m in analysis["pre_training_bias_metrics"]["facets"]["x"][0]["metrics"]}
    assert pre["DPL"] == pytest.approx(y_true(a).mean() - y_true(d).mean())
    assert pre["CI"] == pytest.approx(0.0)


def test_a_metric_that_raises_anything_is_that_metrics_error_and_the_others_are_computed():
    def broken() -> float:
        raise ZeroDivisionError("a bug in one metric")

    def misconfigured() -> float:
        raise UserError("a bad configuration stops the analysis")

    assert bias.evaluate({"A": lambda: 1.5, "B": broken, "C": lambda: 2}, ["A", "B", "C"]) == {
        "A": 1.5, "B": "ZeroDivisionError: a bug in one metric", "C": 2.0}
    with pytest.raises(UserError, match="a bad configuration"):
        bias.evaluate({"A": lambda: 1.5, "B": misconfigured}, ["A", "B"])
