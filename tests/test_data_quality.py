"""Data-quality monitoring: mergeable profiles, Model Monitor's files, planted drift found (and
absent drift not), schema changes as violations, empty windows, and tests checked against scipy."""
import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from fmeval.cli import main
from fmeval.monitoring import data_quality as dq
from fmeval.monitoring.data_capture import CaptureWriter, encode_body


def table(n, seed, shift=0.0, new_color=False):
    rng = np.random.default_rng(seed)
    colors, weights = ["red", "green", "blue"], [0.5, 0.3, 0.2]
    if new_color:  # a value the baseline never saw, and different shares
        colors, weights = colors + ["violet"], [0.2, 0.2, 0.2, 0.4]
    return pd.DataFrame({
        "age": rng.integers(18, 80, n),
        "income": rng.normal(50 + shift, 10, n),
        "color": rng.choice(colors, n, p=weights),
        "score": rng.random(n),
    })


def test_profiles_merge_like_one_pass():
    frame = table(30_000, 0)
    whole = dq.Profile.of(frame)
    merged = dq.profile(frame.iloc[i:i + 7000] for i in range(0, len(frame), 7000))
    for name in frame.columns:
        a, b = whole.columns[name], merged.columns[name]
        assert (a.kind, a.present, a.missing, a.counts) == (b.kind, b.present, b.missing, b.counts)
        if a.numeric:
            assert b.mean == pytest.approx(frame[name].mean(), rel=1e-12)
            assert b.std == pytest.approx(frame[name].std(ddof=0), rel=1e-9)
            assert (b.minimum, b.maximum, b.total) == pytest.approx((frame[name].min(), frame[name].max(), frame[name].sum()))
            # the KLL sketch's median is within its rank error (about 1.3% for k=200)
            median_rank = (frame[name] <= b.sketch.get_quantile(0.5)).mean()
            assert abs(median_rank - 0.5) < 0.02
    assert whole.columns["age"].kind == "Integral" and whole.columns["income"].kind == "Fractional"


def test_model_monitor_files_and_no_drift_where_there_is_none(tmp_path):
    baseline = dq.Profile.of(table(5000, 1))
    statistics = dq.statistics_json(baseline)
    income = next(f for f in statistics["features"] if f["name"] == "income")
    assert income["inferred_type"] == "Fractional"
    assert income["numerical_statistics"]["common"] == {"num_present": 5000, "num_missing": 0}
    assert sum(b["count"] for b in income["numerical_statistics"]["distribution"]["kll"]["buckets"]) == pytest.approx(5000)
    constraints = dq.constraints_json(baseline)
    color = next(f for f in constraints["features"] if f["name"] == "color")
    assert color["string_constraints"]["domains"] == ["blue", "green", "red"] and color["completeness"] == 1.0
    same = dq.check(baseline, constraints, dq.Profile.of(table(5000, 2)))
    assert same["status"] == "Completed" and same["violations"] == []
    assert same["drift"]["dataset"]["drifted_columns"] == 0 and not same["drift"]["dataset"]["dataset_drift"]


def test_planted_drift_is_detected_and_named(tmp_path):
    baseline = dq.Profile.of(table(5000, 1))
    constraints = dq.constraints_json(baseline)
    drifted = table(5000, 3, shift=8.0, new_color=True)
    drifted.loc[:99, "age"] = -5
    drifted.loc[200:799, "score"] = None
    result = dq.check(baseline, constraints, dq.Profile.of(drifted))
    kinds = {(v["feature_name"], v["constraint_check_type"]) for v in result["violations"]}
    assert ("income", "baseline_drift_check") in kinds
    assert ("color", "categorical_values_check") in kinds and ("color", "baseline_drift_check") in kinds
    assert ("age", "negative_values_check") in kinds and ("score", "completeness_check") in kinds
    columns = result["drift"]["columns"]
    assert columns["income"]["test"] == "wasserstein_normed" and columns["income"]["drifted"]
    assert columns["color"]["test"] == "jensen_shannon" and columns["color"]["drifted"]
    assert not columns["age"]["drifted"] or columns["age"]["score"] < 0.2
    assert result["drift"]["dataset"]["dataset_drift"]  # 2 of 4 columns: at least half
    assert result["status"] == "CompletedWithViolations"


def test_small_windows_use_exact_tests_that_match_scipy():
    """Evidently's mode: with a reference of at most 1,000 rows, its KS and chi-square tests."""
    reference, current = table(800, 4), table(600, 5, shift=1.5)
    drift = dq.column_drift(dq.ColumnProfile.of(reference.income), dq.ColumnProfile.of(current.income),
                            method="evidently")
    expected = stats.ks_2samp(reference.income, current.income)
    assert drift["test"] == "ks" and drift["ks"]["p_value"] == pytest.approx(expected.pvalue, rel=1e-9)
    assert drift["drifted"] == (expected.pvalue < 0.05)
    assert drift["wasserstein"] == pytest.approx(stats.wasserstein_distance(reference.income, current.income))
    colors = dq.column_drift(dq.ColumnProfile.of(reference.color), dq.ColumnProfile.of(current.color),
                             method="evidently")
    ref_counts = reference.color.value_counts().reindex(["blue", "green", "red"]).to_numpy(float)
    cur_counts = current.color.value_counts().reindex(["blue", "green", "red"]).to_numpy(float)
    chi = stats.chisquare(cur_counts, ref_counts * cur_counts.sum() / ref_counts.sum())
    assert colors["test"] == "chi_square" and colors["chi_square"]["p_value"] == pytest.approx(chi.pvalue)
    assert colors["jensen_shannon"] == pytest.approx(distance.jensenshannon(ref_counts / ref_counts.sum(),
                                                                            cur_counts / cur_counts.sum()))


def test_large_windows_approximate_the_exact_distances():
    reference, current = table(150_000, 6), table(120_000, 7, shift=1.0)
    drift = dq.column_drift(dq.ColumnProfile.of(reference.income), dq.ColumnProfile.of(current.income))
    exact = stats.wasserstein_distance(reference.income, current.income) / reference.income.std(ddof=0)
    assert drift["wasserstein_normed"] == pytest.approx(exact, abs=0.01)  # from KLL sketches
    assert drift["ks"]["statistic"] == pytest.approx(stats.ks_2samp(reference.income, current.income).statistic,
                                                     abs=0.02)


def test_schema_changes_are_violations_and_an_empty_window_is_no_data():
    baseline = dq.Profile.of(table(2000, 1))
    constraints = dq.constraints_json(baseline)
    changed = table(2000, 2).drop(columns=["score"]).assign(color=lambda f: range(len(f)), extra="x")
    result = dq.check(baseline, constraints, dq.Profile.of(changed))
    kinds = {(v["feature_name"], v["constraint_check_type"]) for v in result["violations"]}
    assert kinds >= {("score", "missing_column_check"), ("extra", "extra_column_check"), ("color", "data_type_check")}
    assert dq.check(baseline, constraints, dq.Profile())["status"] == "NoData"


def test_cli_baseline_and_check_on_captured_requests(tmp_path, capsys):
    def capture_window(folder, frame):
        writer = CaptureWriter(folder, name="endpoint")
        for row in frame.to_dict(orient="records"):
            writer.write(request=encode_body(json.dumps(row).encode(), "application/json"),
                         response=encode_body(b'{"p": 0.5}', "application/json"), latency_ms=1.0)
        writer.close()

    capture_window(tmp_path / "before", table(3000, 1))
    capture_window(tmp_path / "after", table(3000, 2, shift=10.0))
    with open(next((tmp_path / "after").rglob("*.jsonl")), "a") as handle:
        handle.write("{torn")
    assert main(["monitor", "data-quality", "baseline", "--data", str(tmp_path / "before"), "-o",
                 str(tmp_path / "baseline")]) == 0
    assert {p.name for p in (tmp_path / "baseline").iterdir()} == {"statistics.json", "constraints.json", "profile.json",
                                                                   "monitor.json"}
    capsys.readouterr()
    code = main(["monitor", "data-quality", "check", "--baseline", str(tmp_path / "baseline"), "--data",
                 str(tmp_path / "after"), "-o", str(tmp_path / "check"), "--fail-on-violations"])
    out, err = capsys.readouterr()
    assert code == 1 and "income: baseline_drift_check" in out and "drifted_columns 1," in out
    assert "torn last line" in err
    violations = json.loads((tmp_path / "check" / "constraint_violations.json").read_text())["violations"]
    assert violations == [{"feature_name": "income", "constraint_check_type": "baseline_drift_check",
                           "description": violations[0]["description"]}]
    drift = json.loads((tmp_path / "check" / "drift.json").read_text())
    assert drift["columns"]["income"]["drifted"] and not drift["columns"]["color"]["drifted"]


def test_constant_columns_one_row_windows_and_flags(tmp_path):
    rng = np.random.default_rng(5)
    base = pd.DataFrame({"flag": (rng.random(200_000) < 0.544).astype(int), "constant": 1.0,
                         "x": rng.normal(0, 1, 200_000)})
    now = pd.DataFrame({"flag": (rng.random(200_000) < 0.5).astype(int), "constant": 1.0, "x": rng.normal(0, 1, 200_000)})
    reference, current = dq.profile([base]), dq.profile([now])  # over EXACT_LIMIT: sketches, not exact values
    statistics = dq.statistics_json(reference)
    constant = next(f for f in statistics["features"] if f["name"] == "constant")["numerical_statistics"]
    assert constant["distribution"]["kll"]["buckets"] == [{"lower_bound": 1.0, "upper_bound": 1.0, "count": 200_000.0}]
    drift = dq.check(reference, dq.constraints_json(reference), current)["drift"]["columns"]
    # PSI of a 0/1 flag over its two values, by hand from the shares
    p, q = np.array([1 - base.flag.mean(), base.flag.mean()]), np.array([1 - now.flag.mean(), now.flag.mean()])
    # (the KLL sketch is randomised: shares within its rank error, about 0.2%)
    assert drift["flag"]["psi"] == pytest.approx(float(np.sum((q - p) * np.log(q / p))), rel=0.1)
    assert drift["constant"]["psi"] == 0.0 and not drift["constant"]["drifted"]
    one_row = dq.profile([now.iloc[:1]])  # a one-row window checks, with no crash
    assert dq.check(reference, dq.constraints_json(reference), one_row)["status"] in ("Completed", "CompletedWithViolations")
    assert dq.distributions(reference, one_row)["constant"]["baseline"]


def test_a_0_1_flag_read_from_files_is_categorical_in_evidently_mode(tmp_path):
    """Issue 20's flag, 50% -> 56.3%, through the CLI on CSV files: Evidently 0.7.23 types an integer column
    of at most 10 values as categorical and compares it by Jensen-Shannon above 1,000 reference rows (0.045,
    no drift). Profiles merged from blocks used to drop the flag's value counts, so the CLI compared it as a
    number (normed Wasserstein 0.126 >= 0.1: drift)."""
    rng = np.random.default_rng(3)

    def frame(rows, ones):
        flag = np.zeros(rows, dtype=int)
        flag[:ones] = 1
        return pd.DataFrame({"flag": rng.permutation(flag), "x": rng.normal(0, 1, rows)})

    frame(5000, 2500).to_csv(tmp_path / "reference.csv", index=False)
    frame(2000, 1126).to_csv(tmp_path / "current.csv", index=False)
    merged = dq.profile([frame(300, 100), frame(200, 150)]).columns["flag"]
    assert merged.values == {0.0: 250, 1.0: 250}  # the counts survive merging blocks
    assert main(["monitor", "data-quality", "baseline", "--data", str(tmp_path / "reference.csv"), "-o",
                 str(tmp_path / "baseline"), "--drift-method", "evidently"]) == 0
    assert main(["monitor", "data-quality", "check", "--baseline", str(tmp_path / "baseline"), "--data",
                 str(tmp_path / "current.csv"), "-o", str(tmp_path / "check")]) == 0
    flag = json.loads((tmp_path / "check" / "drift.json").read_text())["columns"]["flag"]
    assert flag["type"] == "categorical" and flag["test"] == "jensen_shannon"
    assert flag["score"] == pytest.approx(distance.jensenshannon([0.5, 0.5], [1 - 0.563, 0.563]), rel=1e-9)
    assert not flag["drifted"]


def test_a_number_column_with_one_word_in_it_is_still_checked_as_numbers(tmp_path, capsys):
    """One "unknown" among 200 ages (0.5%, within datatype_check_threshold's 10%) made pandas read the
    window's column as text, and the check then skipped it: an age shift of 40 years passed with exit 0."""
    reference = table(3000, 1)
    reference.to_csv(tmp_path / "reference.csv", index=False)
    assert main(["monitor", "data-quality", "baseline", "--data", str(tmp_path / "reference.csv"), "-o",
                 str(tmp_path / "baseline")]) == 0

    def window(name, years):
        frame = table(200, 2).astype({"age": object})
        frame["age"] = [str(age + years) for age in frame["age"]]
        frame.loc[0, "age"] = "unknown"
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
        return main(["monitor", "data-quality", "check", "--baseline", str(tmp_path / "baseline"), "--data",
                     str(tmp_path / f"{name}.csv"), "-o", str(tmp_path / name), "--fail-on-violations"])

    assert window("older", 40) == 1
    violations = json.loads((tmp_path / "older" / "constraint_violations.json").read_text())["violations"]
    assert [(v["feature_name"], v["constraint_check_type"]) for v in violations] == [("age", "baseline_drift_check")]
    assert window("same", 0) == 0
    age = json.loads((tmp_path / "same" / "drift.json").read_text())["columns"]["age"]
    ages = table(200, 2)["age"].iloc[1:]  # the 199 numbers, compared as numbers (KS exact at these sizes)
    assert age["type"] == "numerical" and not age["drifted"]
    assert age["ks"]["statistic"] == pytest.approx(stats.ks_2samp(reference["age"], ages).statistic)
    blocks = dq.profile([pd.DataFrame({"age": [30, 40]}), pd.DataFrame({"age": ["50", "n/a"]})]).columns["age"]
    assert (blocks.kind, blocks.numbers.present, blocks.numbers.mean) == ("String", 3, 40.0)


def test_ids_and_free_text_get_no_domain_so_new_values_are_no_violation(tmp_path):
    """Model Monitor suggests a string column's domain by Deequ's CategoricalRangeRule: at most 120 distinct
    values (its lowCardinalityHistogramThreshold), at most 10% of them seen once. A user-id column got a domain
    of its 5,000 ids, and every same-population window violated it (100% of values outside)."""
    def frame(rows, seed):
        rng = np.random.default_rng(seed)
        return pd.DataFrame({"user": [f"u{i}" for i in rng.integers(0, 10**6, rows)],
                             "city": rng.choice([f"c{i}" for i in range(60)], rows),
                             "tag": [*rng.choice(["a", "b"], rows - 5), "t1", "t2", "t3", "t4", "t5"]})
    frame(5000, 1).to_csv(tmp_path / "reference.csv", index=False)
    frame(200, 2).to_csv(tmp_path / "window.csv", index=False)
    assert main(["monitor", "data-quality", "baseline", "--data", str(tmp_path / "reference.csv"), "-o",
                 str(tmp_path / "baseline")]) == 0
    features = {f["name"]: f for f in json.loads((tmp_path / "baseline" / "constraints.json").read_text())["features"]}
    assert "string_constraints" not in features["user"]  # 5,000 distinct values
    assert "string_constraints" not in features["tag"]  # 7 values, 5 of them seen once
    assert features["city"]["string_constraints"]["domains"] == sorted(f"c{i}" for i in range(60))
    main(["monitor", "data-quality", "check", "--baseline", str(tmp_path / "baseline"), "--data",
          str(tmp_path / "window.csv"), "-o", str(tmp_path / "check")])
    violations = json.loads((tmp_path / "check" / "constraint_violations.json").read_text())["violations"]
    assert not [v for v in violations if v["constraint_check_type"] == "categorical_values_check"]
    # nor do they drift: the baseline's ids seen once stand for the ids it never saw (they drifted with p ~ 1e-52)
    drift = json.loads((tmp_path / "check" / "drift.json").read_text())
    assert not drift["columns"]["user"]["drifted"] and drift["columns"]["user"]["p_value"] > 0.05
