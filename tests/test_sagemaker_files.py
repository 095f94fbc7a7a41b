"""Model Monitor's files, exactly: statistics.json's KLL sketch in SageMaker's form, SageMaker's
published example files read (written by hand from the documented examples, sources named), and
the fmeval extensions marked."""
import json

import numpy as np
import pandas as pd
import pytest
from datasketches import kll_doubles_sketch  # datasketches 5.2.0

from fmeval.cli import main
from fmeval.monitoring import data_quality as dq
from fmeval.monitoring.monitors import check_window, make_baseline

# https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-interpreting-statistics.html: the documented
# schema, with numbers filled in (a sketch of three compactor levels, as in the page's example; 4 + 2*2 + 2*4 = 16
# values) and a string feature
SAGEMAKER_STATISTICS = {
    "version": 0,
    "dataset": {"item_count": 16},
    "features": [
        {"name": "age", "inferred_type": "Integral", "numerical_statistics": {
            "common": {"num_present": 16, "num_missing": 0}, "mean": 35.0, "sum": 560.0, "std_dev": 8.5, "min": 20.0,
            "max": 52.0, "distribution": {"kll": {
                "buckets": [{"lower_bound": 20.0, "upper_bound": 36.0, "count": 8.0},
                            {"lower_bound": 36.0, "upper_bound": 52.0, "count": 8.0}],
                "sketch": {"parameters": {"c": 0.64, "k": 2048.0},
                           "data": [[33.0, 21.0, 45.0, 30.0], [28.0, 40.0], [36.0, 24.0]]}}}}},
        {"name": "color", "inferred_type": "String", "string_statistics": {
            "common": {"num_present": 16, "num_missing": 0}, "distinct_count": 2,
            "distribution": {"categorical": {"buckets": [{"value": "red", "count": 10}, {"value": "blue", "count": 6}]}}}},
    ],
}
# https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-byoc-constraints.html: the documented schema
SAGEMAKER_CONSTRAINTS = {
    "version": 0,
    "features": [
        {"name": "age", "inferred_type": "Integral", "completeness": 1.0, "num_constraints": {"is_non_negative": True}},
        {"name": "color", "inferred_type": "String", "completeness": 1.0,
         "string_constraints": {"domains": ["red", "blue"]}},
    ],
    "monitoring_config": {"evaluate_constraints": "Enabled", "emit_metrics": "Enabled",
                          "datatype_check_threshold": 0.1, "domain_content_threshold": 0.1,
                          "distribution_constraints": {"perform_comparison": "Enabled", "comparison_threshold": 0.1,
                                                       "comparison_method": "Simple",
                                                       "categorical_comparison_threshold": 0.1,
                                                       "categorical_drift_method": "LInfinity"}},
}


def sketch_of(values, k=dq.KLL_K):
    sketch = kll_doubles_sketch(k)
    sketch.update(np.asarray(values, dtype=np.float64))
    return sketch


@pytest.mark.parametrize("n", [1, 2, 7, 5000, 300_000])
def test_the_kll_sketch_is_written_in_sagemakers_form_and_read_back_exactly(tmp_path, n):
    values = np.random.default_rng(n).lognormal(0, 1, n)
    profile = dq.profile([pd.DataFrame({"x": values})])
    written = dq.statistics_json(profile)["features"][0]["numerical_statistics"]["distribution"]["kll"]["sketch"]
    assert set(written) == {"parameters", "data"} and set(written["parameters"]) == {"c", "k"}  # today: k, serialized
    assert written["parameters"]["k"] == dq.KLL_K
    levels = written["data"]
    assert sum(len(level) << h for h, level in enumerate(levels)) == n  # an item of level h weighs 2**h
    assert all(level == sorted(level) for level in levels[1:])
    back = dq.kll_from_json(json.loads(json.dumps(written)), values.min(), values.max())
    original = profile.columns["x"].sketch
    assert dq.kll_json(back) == written  # the same items on the same levels, in the same order
    assert (back.n, back.k, back.get_min_value(), back.get_max_value()) == (n, original.k, values.min(), values.max())
    ranks = np.linspace(0, 1, 101).tolist()
    assert back.get_quantiles(ranks) == original.get_quantiles(ranks)
    assert back.serialize()[4:] == original.serialize()[4:]  # all but the flags byte (whether level 0 is sorted)


def test_a_merged_sketch_round_trips_too():
    merged = kll_doubles_sketch(200)
    for seed in range(3):
        merged.merge(sketch_of(np.random.default_rng(seed).normal(seed, 1, 40_000), k=200))
    written = dq.kll_json(merged)
    assert sum(len(level) << h for h, level in enumerate(written["data"])) == merged.n == 120_000
    back = dq.kll_from_json(written, merged.get_min_value(), merged.get_max_value())
    assert back.serialize()[4:] == merged.serialize()[4:] and back.k == 200  # all but the flags byte


def weighted_cdf(levels, points):
    """By hand: the share of the weight (2**level per item) at or below each point."""
    items = np.array([item for level in levels for item in level])
    weights = np.array([2.0 ** h for h, level in enumerate(levels) for _ in level])
    return np.array([weights[items <= point].sum() / weights.sum() for point in points])


def test_sagemakers_documented_statistics_are_read_as_a_baseline(tmp_path):
    profile = dq.profile_from_statistics(SAGEMAKER_STATISTICS)
    age, color = profile.columns["age"], profile.columns["color"]
    assert (profile.rows, age.present, age.kind, age.mean, age.total, age.minimum, age.maximum) == \
        (16, 16, "Integral", 35.0, 560.0, 20.0, 52.0)
    assert age.std == pytest.approx(8.5)
    assert age.sketch.n == 16 and age.sketch.k == 2048
    levels = SAGEMAKER_STATISTICS["features"][0]["numerical_statistics"]["distribution"]["kll"]["sketch"]["data"]
    points = [20.0, 24.0, 29.0, 33.0, 36.0, 44.0, 52.0]
    assert age.sketch.get_cdf(points, inclusive=True)[:-1] == pytest.approx(weighted_cdf(levels, points))
    assert color.counts == {"red": 10, "blue": 6}
    # and back to SageMaker's form: the same numbers and the same items on each level
    again = {f["name"]: f for f in dq.statistics_json(profile)["features"]}
    numeric = again["age"]["numerical_statistics"]
    assert (numeric["mean"], numeric["sum"], numeric["min"], numeric["max"]) == (35.0, 560.0, 20.0, 52.0)
    assert numeric["std_dev"] == pytest.approx(8.5)
    assert [sorted(level) for level in numeric["distribution"]["kll"]["sketch"]["data"]] == \
        [sorted(level) for level in levels]
    assert again["color"]["string_statistics"]["distribution"]["categorical"]["buckets"] == \
        [{"value": "red", "count": 10}, {"value": "blue", "count": 6}]


def test_a_sagemaker_baseline_folder_checks_a_window_and_extensions_are_marked(tmp_path, capsys):
    baseline = tmp_path / "sagemaker-baseline"
    baseline.mkdir()
    (baseline / "statistics.json").write_text(json.dumps(SAGEMAKER_STATISTICS))
    (baseline / "constraints.json").write_text(json.dumps(SAGEMAKER_CONSTRAINTS))
    window = tmp_path / "window.csv"
    pd.DataFrame({"age": [25, 31, -4, 40] * 5, "color": ["red", "blue", "red", "green"] * 5}).to_csv(window, index=False)
    assert main(["monitor", "data-quality", "check", "--baseline", str(baseline), "--data", str(window),
                 "-o", str(tmp_path / "out")]) == 0
    written = json.loads((tmp_path / "out" / "constraint_violations.json").read_text())["violations"]
    checks = {(v["feature_name"], v["constraint_check_type"]): v for v in written}
    assert set(checks) == {("age", "negative_values_check"), ("age", "baseline_drift_check"),
                           ("color", "baseline_drift_check")}
    # color's L-infinity distance by hand: red 10/16 -> 1/2, blue 6/16 -> 1/4, green 0 -> 1/4
    assert "distance 0.2500" in checks["color", "baseline_drift_check"]["description"]
    assert "extension" not in checks["color", "baseline_drift_check"]
    assert checks["age", "negative_values_check"]["extension"] == "fmeval"  # not one of SageMaker's check types
    assert all(("extension" in v) == (v["constraint_check_type"] not in dq.SAGEMAKER_CHECKS) for v in written)
