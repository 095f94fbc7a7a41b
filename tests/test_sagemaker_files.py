"""Model Monitor's files, exactly: statistics.json's KLL sketch in SageMaker's form, SageMaker's
published example files read (written by hand from the documented examples, sources named), and
the fmeval extensions marked."""
import importlib.metadata
import json
import types

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


# -- the SageMaker SDK's own classes --------------------------------------------------------------------------
SAGEMAKER_SDK = "2.257.7"


class LocalS3:
    """The edge of S3 (a paid cloud API): the SDK's S3Uploader and S3Downloader on a local folder."""

    def __init__(self, root):
        self.root = root
        self.S3Uploader = types.SimpleNamespace(upload_string_as_file_body=self.upload)
        self.S3Downloader = types.SimpleNamespace(read_file=self.read)

    def path(self, uri):
        assert uri.startswith("s3://")
        return self.root / uri[len("s3://"):]

    def upload(self, body, desired_s3_uri, kms_key=None, sagemaker_session=None):
        self.path(desired_s3_uri).parent.mkdir(parents=True, exist_ok=True)
        self.path(desired_s3_uri).write_text(body, encoding="utf-8")
        return desired_s3_uri

    def read(self, s3_uri, sagemaker_session=None):
        return self.path(s3_uri).read_text(encoding="utf-8")


def sdk_monitoring_files(s3):
    """`sagemaker.model_monitor.monitoring_files` of the SageMaker SDK 2.257.7 (Statistics, Constraints,
    ConstraintViolations), loaded alone: `import sagemaker` needs sagemaker-core 1.x, which would replace the
    sagemaker-core 2.27.0 installed here (both SDK packages are installed with --no-deps, see the Makefile)."""
    installed = importlib.metadata.distribution("sagemaker")
    assert installed.version == SAGEMAKER_SDK, f"the oracle is sagemaker {SAGEMAKER_SDK}, found {installed.version}"
    source = installed.locate_file("sagemaker/model_monitor/monitoring_files.py").read_text(encoding="utf-8")
    imports = "from sagemaker import s3\nfrom sagemaker.session import Session\n"
    assert imports in source
    module = types.ModuleType("sagemaker_monitoring_files")
    module.__dict__.update(s3=s3, Session=None)
    exec(compile(source.replace(imports, ""), "sagemaker/model_monitor/monitoring_files.py", "exec"), module.__dict__)
    return module


def test_files_round_trip_through_the_sagemaker_sdks_classes(tmp_path):
    s3 = LocalS3(tmp_path / "s3")
    sdk = sdk_monitoring_files(s3)
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"income": rng.normal(50, 10, 3000), "age": rng.integers(18, 80, 3000),
                              "color": rng.choice(["red", "blue"], 3000)})
    reference.to_csv(tmp_path / "reference.csv", index=False)
    make_baseline("data-quality", {"data": tmp_path / "reference.csv"}, tmp_path / "ours")
    # fmeval's files, read by the SDK
    for name in ("statistics.json", "constraints.json"):
        s3.upload((tmp_path / "ours" / name).read_text(), f"s3://bucket/baseline/{name}")
    statistics = sdk.Statistics.from_s3_uri("s3://bucket/baseline/statistics.json", sagemaker_session=object())
    assert statistics.body_dict == json.loads((tmp_path / "ours" / "statistics.json").read_text())
    income = next(f for f in statistics.body_dict["features"] if f["name"] == "income")
    sketch = income["numerical_statistics"]["distribution"]["kll"]["sketch"]
    assert sum(len(level) << h for h, level in enumerate(sketch["data"])) == 3000
    # the SDK's edit of our constraints (monitoring off for income), saved by the SDK, read by fmeval
    constraints = sdk.Constraints.from_s3_uri("s3://bucket/baseline/constraints.json", sagemaker_session=object())
    constraints.set_monitoring(False, feature_name="income")
    saved = constraints.save(new_save_location_s3_uri="s3://bucket/edited/constraints.json")
    edited = tmp_path / "edited"
    edited.mkdir()
    for name in ("statistics.json", "profile.json", "monitor.json"):
        (edited / name).write_text((tmp_path / "ours" / name).read_text())
    (edited / "constraints.json").write_text(s3.read(saved))
    window = reference.assign(income=reference["income"] + 25).iloc[:1000]
    window.to_csv(tmp_path / "window.csv", index=False)
    plain = check_window(tmp_path / "ours", tmp_path / "window.csv", None, tmp_path / "plain")
    assert "income" in {v["feature_name"] for v in plain["violations"]}
    honoured = check_window(edited, tmp_path / "window.csv", None, tmp_path / "honoured")
    assert "income" not in {v["feature_name"] for v in honoured["violations"]}  # today: the SDK's override ignored
    # our violations, read by the SDK
    s3.upload((tmp_path / "plain" / "constraint_violations.json").read_text(), "s3://bucket/run/violations.json")
    violations = sdk.ConstraintViolations.from_s3_uri("s3://bucket/run/violations.json", sagemaker_session=object())
    assert {(v["feature_name"], v["constraint_check_type"]) for v in violations.body_dict["violations"]} == \
        {(v["feature_name"], v["constraint_check_type"]) for v in plain["violations"]}
    # SageMaker's documented statistics, saved by the SDK, read by fmeval
    sdk.Statistics(SAGEMAKER_STATISTICS, "s3://bucket/sagemaker/statistics.json").save()
    profile = dq.profile_from_statistics(json.loads(s3.read("s3://bucket/sagemaker/statistics.json")))
    assert profile.columns["age"].sketch.n == 16 and profile.columns["color"].counts == {"red": 10, "blue": 6}


def test_a_statistics_file_out_of_layout_is_named_not_a_crash(tmp_path, capsys):
    broken = json.loads(json.dumps(SAGEMAKER_STATISTICS))
    del broken["features"][0]["numerical_statistics"]["distribution"]
    baseline = tmp_path / "sagemaker-baseline"
    baseline.mkdir()
    (baseline / "statistics.json").write_text(json.dumps(broken))
    (baseline / "constraints.json").write_text(json.dumps(SAGEMAKER_CONSTRAINTS))
    pd.DataFrame({"age": [30, 40], "color": ["red", "blue"]}).to_csv(tmp_path / "w.csv", index=False)
    assert main(["monitor", "data-quality", "check", "--baseline", str(baseline), "--data", str(tmp_path / "w.csv"),
                 "-o", str(tmp_path / "out")]) == 2
    assert "statistics.json: feature age: not in Model Monitor's layout (KeyError: 'distribution')" in \
        capsys.readouterr().err
