"""Calibrated data-quality verdicts: the completeness test and the size-aware drift tests against
their oracles (SciPy 1.17 and statsmodels 0.15 called directly, and brute-force resampling), false
alarms on same-population windows, Evidently 0.7.23's rules matched exactly in its mode (Evidently
itself is the oracle, in its own environment), constraints.json's monitoring_config honoured, and
the typed monitor options."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from fmeval.cli import main
from fmeval.errors import UserError
from fmeval.monitoring import data_quality as dq
from fmeval.monitoring.options import ColumnOptions, DataQualityOptions

EVIDENTLY_VENV = Path(__file__).resolve().parents[1] / ".bench" / "evidently"
EVIDENTLY = ["evidently==0.7.23", "pandas<2.3", "pyarrow"]  # as benchmarks/drift_scale.py's


def population(rows, seed, *, missing=0.02, shift=0.0, flag_share=0.5):
    rng = np.random.default_rng(seed)
    income = rng.normal(50 + shift, 10, rows)
    income[rng.random(rows) < missing] = np.nan
    return pd.DataFrame({"income": income, "age": rng.integers(18, 80, rows),
                         "color": rng.choice(["red", "green", "blue"], rows, p=[0.5, 0.3, 0.2]),
                         "flag": (rng.random(rows) < flag_share).astype(np.int64)})


def kinds(result):
    return {(v["feature_name"], v["constraint_check_type"]) for v in result["violations"]}


# -- completeness ------------------------------------------------------------------------------------------
def test_completeness_is_a_binomial_test_against_the_baselines_rate():
    baseline = dq.Profile.of(population(20_000, 0))
    constraints = dq.constraints_json(baseline)
    same = [dq.check(baseline, constraints, dq.Profile.of(population(500, seed))) for seed in range(1, 21)]
    # main flagged any drop below the baseline's 98%: 8 or so of these 20 windows
    assert sum(("income", "completeness_check") in kinds(result) for result in same) == 0
    dropped = population(500, 99, missing=0.10)
    result = dq.check(baseline, constraints, dq.Profile.of(dropped))
    assert ("income", "completeness_check") in kinds(result)
    # the p-value is SciPy's one-sided exact binomial test at the baseline's rate less the tolerance
    rule = next(f for f in constraints["features"] if f["name"] == "income")
    present = int(dropped.income.notna().sum())
    expected = stats.binomtest(present, 500, rule["completeness"] - 0.01, alternative="less").pvalue
    assert dq.completeness_p_value(present, 500, rule["completeness"], tolerance=0.01) == pytest.approx(expected)
    description = next(v["description"] for v in result["violations"] if v["constraint_check_type"] == "completeness_check")
    assert "binomial test p = " in description and "alpha 0.01" in description
    # a drop within the tolerance is no violation however large the window
    near = dq.check(baseline, constraints, dq.Profile.of(population(200_000, 7, missing=0.025)))
    assert ("income", "completeness_check") not in kinds(near)
    strict = dq.check(baseline, constraints, dq.Profile.of(population(200_000, 7, missing=0.025)),
                      options=DataQualityOptions(completeness_tolerance=0.0))
    assert ("income", "completeness_check") in kinds(strict)


# -- drift that knows the window's size ------------------------------------------------------------------
def test_small_windows_of_the_same_population_rarely_alarm():
    """Main marked a column drifted in about half of these 200-row windows (fixed 0.1 thresholds on
    noisy distances); the calibrated test, Holm-corrected over the four columns, at most alpha."""
    baseline = dq.Profile.of(population(50_000, 0))
    constraints = dq.constraints_json(baseline)
    alarms = []
    for seed in range(1, 61):
        result = dq.check(baseline, constraints, dq.Profile.of(population(200, seed)))
        alarms.append(result["drift"]["dataset"]["drifted_columns"] >= 1 or bool(result["violations"]))
    assert sum(alarms) <= 3  # 60 windows at alpha 0.01: P(4 or more) < 0.3% were the test calibrated
    shifted = dq.check(baseline, constraints, dq.Profile.of(population(200, 100, shift=5.0)))
    assert shifted["drift"]["columns"]["income"]["drifted"] and shifted["drift"]["dataset"]["dataset_drift"]


def test_each_column_reports_its_p_value_beside_its_distance():
    baseline = dq.Profile.of(population(5000, 0))
    result = dq.check(baseline, dq.constraints_json(baseline), dq.Profile.of(population(2000, 1, shift=1.0)))
    income = result["drift"]["columns"]["income"]
    assert income["test"] == "wasserstein_normed" and 0 <= income["p_value"] <= 1
    assert income["score"] > income["null_quantile"] and income["drifted"]  # 0.1 sd at 2,000 rows is found
    assert income["wasserstein_normed"] == pytest.approx(income["score"], rel=0.1)  # the binned distance is close
    assert result["drift"]["columns"]["color"]["test"] == "jensen_shannon"
    assert "Holm" in result["drift"]["dataset"]["basis"]


def test_the_bootstrap_null_matches_brute_force_resampling():
    """The Jensen-Shannon and Wasserstein nulls at (n, m) against resampling the raw values and
    computing SciPy's distances directly."""
    rng = np.random.default_rng(3)
    reference = population(3000, 0, missing=0.0)
    n, m = len(reference), 300
    brute_js, brute_w = [], []
    shares = reference.color.value_counts(normalize=True).sort_index()
    for _ in range(400):
        ref = rng.choice(reference.color.to_numpy(), n)
        cur = rng.choice(reference.color.to_numpy(), m)
        p = pd.Series(ref).value_counts(normalize=True).reindex(shares.index, fill_value=0)
        q = pd.Series(cur).value_counts(normalize=True).reindex(shares.index, fill_value=0)
        brute_js.append(distance.jensenshannon(p, q))
        values = reference.income.to_numpy()
        brute_w.append(stats.wasserstein_distance(rng.choice(values, n), rng.choice(values, m)) / values.std())
    window = population(m, 5, missing=0.0)
    ours_js = dq.column_drift(dq.ColumnProfile.of(reference.color), dq.ColumnProfile.of(window.color), alpha=0.05)
    ours_w = dq.column_drift(dq.ColumnProfile.of(reference.income), dq.ColumnProfile.of(window.income), alpha=0.05)
    assert ours_js["null_quantile"] == pytest.approx(np.quantile(brute_js, 0.95), rel=0.15)
    assert ours_w["null_quantile"] == pytest.approx(np.quantile(brute_w, 0.95), rel=0.15)
    brute_p = (1 + np.sum(np.array(brute_js) >= ours_js["score"])) / (len(brute_js) + 1)
    assert ours_js["p_value"] == pytest.approx(brute_p, abs=0.08)


def test_exact_tests_and_holm_match_scipy_and_statsmodels():
    from statsmodels.stats.multitest import multipletests

    reference, current = population(800, 4), population(600, 5, shift=3.0)
    ks = dq.column_drift(dq.ColumnProfile.of(reference.age), dq.ColumnProfile.of(current.age), test="ks")
    assert ks["p_value"] == pytest.approx(stats.ks_2samp(reference.age, current.age).pvalue, rel=1e-9)
    chi = dq.column_drift(dq.ColumnProfile.of(reference.color), dq.ColumnProfile.of(current.color), test="chi_square")
    table = pd.crosstab(np.r_[np.zeros(800), np.ones(600)], np.r_[reference.color, current.color])
    assert chi["p_value"] == pytest.approx(stats.chi2_contingency(table.to_numpy(), correction=False).pvalue)
    p_values = {"a": 0.001, "b": 0.02, "c": 0.004, "d": 0.5, "e": 0.0125}
    expected = multipletests(list(p_values.values()), alpha=0.01, method="holm")[1]
    assert list(dq.holm(p_values).values()) != []
    assert [dq.holm(p_values)[name] for name in p_values] == pytest.approx(list(expected))


def test_per_column_tests_thresholds_and_exclusions():
    baseline = dq.Profile.of(population(5000, 0))
    current = dq.Profile.of(population(2000, 1, shift=2.0))
    options = DataQualityOptions(columns={"income": ColumnOptions(test="psi"),
                                          "age": ColumnOptions(test="linf", threshold=0.5),
                                          "color": ColumnOptions(exclude=True)})
    result = dq.check(baseline, dq.constraints_json(baseline), current, options=options)
    columns = result["drift"]["columns"]
    assert columns["income"]["test"] == "psi" and columns["income"]["score"] == pytest.approx(columns["income"]["psi"], rel=0.05)
    assert columns["age"]["test"] == "linf" and columns["age"]["threshold"] == 0.5 and not columns["age"]["drifted"]
    assert "p_adjusted" not in columns["age"]  # a fixed threshold of the user's is decided alone
    assert "color" not in columns and all(v["feature_name"] != "color" for v in result["violations"])
    with pytest.raises(UserError, match="'color'.*wasserstein test is for numeric columns"):
        dq.check(baseline, dq.constraints_json(baseline), current,
                 options=DataQualityOptions(columns={"color": ColumnOptions(test="wasserstein")}))


# -- Evidently's mode, against Evidently itself ------------------------------------------------------------
EVIDENTLY_SCRIPT = """
import json, sys
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
out = []
for pair in json.loads(sys.argv[1]):
    reference, current = pd.read_parquet(pair[0]), pd.read_parquet(pair[1])
    metrics = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference).dict()["metrics"]
    out.append({m["config"]["column"]: {"method": m["config"]["method"], "value": m["value"],
                                        "threshold": m["config"]["threshold"]}
                for m in metrics if m["config"]["type"].endswith("ValueDrift")})
print(json.dumps(out))
"""
EVIDENTLY_METHODS = {"K-S p_value": "ks", "chi-square p_value": "chi_square", "Z-test p_value": "z",
                     "Jensen-Shannon distance": "jensen_shannon", "Wasserstein distance (normed)": "wasserstein_normed"}


@pytest.fixture(scope="module")
def evidently():
    """Evidently 0.7.23 in its own environment (it needs pandas < 2.3), made on first use."""
    if not (EVIDENTLY_VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_VENV)], check=True)
        subprocess.run([str(EVIDENTLY_VENV / "bin" / "pip"), "install", "-q", *EVIDENTLY], check=True)

    def run(pairs):
        done = subprocess.run([str(EVIDENTLY_VENV / "bin" / "python"), "-c", EVIDENTLY_SCRIPT, json.dumps(pairs)],
                              check=True, capture_output=True, text=True)
        return json.loads(done.stdout.strip().splitlines()[-1])
    return run


@pytest.mark.slow
def test_evidently_mode_matches_evidently_on_the_edge_cases(tmp_path, evidently):
    rng = np.random.default_rng(11)

    def frame(rows, flag_share, shift, floats_share):
        return pd.DataFrame({
            "flag": (rng.random(rows) < flag_share).astype(np.int64),  # integers, 2 values: categorical
            "float_flag": (rng.random(rows) < floats_share).astype(float),  # floats, 2 values: numerical, few values
            "code": rng.integers(0, 7, rows),  # integers, 7 values: categorical
            "x": rng.normal(shift, 1, rows),
            "color": rng.choice(["red", "green", "blue", "violet"], rows, p=[0.4, 0.3, 0.2, 0.1]),
        })

    cases = {"large": (frame(20_000, 0.5, 0.0, 0.3), frame(4000, 0.563, 0.05, 0.36)),  # the flag, 50% -> 56.3%
             "small": (frame(800, 0.5, 0.0, 0.3), frame(500, 0.6, 0.3, 0.3)),
             "tiny": (frame(60, 0.5, 0.0, 0.5), frame(40, 0.5, 0.0, 0.5))}
    pairs = []
    for name, (reference, current) in cases.items():
        reference.to_parquet(tmp_path / f"{name}-ref.parquet")
        current.to_parquet(tmp_path / f"{name}-cur.parquet")
        pairs.append([str(tmp_path / f"{name}-ref.parquet"), str(tmp_path / f"{name}-cur.parquet")])
    theirs = evidently(pairs)
    for (name, (reference, current)), columns in zip(cases.items(), theirs):
        ours = dq.check(dq.Profile.of(reference), dq.constraints_json(dq.Profile.of(reference)), dq.Profile.of(current),
                        options=DataQualityOptions(drift_method="evidently"))["drift"]["columns"]
        assert set(ours) == set(columns), name
        for column, expected in columns.items():
            mine = ours[column]
            assert mine["test"] == EVIDENTLY_METHODS[expected["method"]], (name, column, expected["method"])
            assert mine["score"] == pytest.approx(expected["value"], rel=1e-6, abs=1e-9), (name, column)
            drifted = expected["value"] < expected["threshold"] if "p_value" in expected["method"] else \
                expected["value"] >= expected["threshold"]
            assert mine["drifted"] == drifted, (name, column)
    flag = theirs[0]["flag"]
    assert flag["method"] == "Jensen-Shannon distance" and flag["value"] < 0.1  # no drift in Evidently, JS ~0.05


# -- SageMaker's monitoring_config --------------------------------------------------------------------------
def test_monitoring_config_of_constraints_json_is_honoured():
    baseline = dq.Profile.of(population(5000, 0))
    constraints = dq.constraints_json(baseline)
    current = population(5000, 1, shift=3.0)  # income's L-infinity distance is about 0.12
    current["age"] = current["age"] + 0.5  # an integer column arriving fractional: a type change
    window = dq.Profile.of(current)
    result = dq.check(baseline, constraints, window)
    assert {("income", "baseline_drift_check"), ("age", "data_type_check")} <= kinds(result)
    assert "age" not in result["drift"]["columns"] and result["emit_metrics"]
    income = next(v for v in result["violations"] if v["feature_name"] == "income")
    assert "L-infinity" in income["description"] and "p = " in income["description"]
    config = constraints["monitoring_config"]
    lenient = {**constraints, "monitoring_config": {**config, "emit_metrics": "Disabled", "datatype_check_threshold": 1.0}}
    features = [{**f, "monitoringConfigOverrides": {"comparison_threshold": 0.5}} if f["name"] == "income" else f
                for f in constraints["features"]]
    relaxed = dq.check(baseline, {**lenient, "features": features}, window)
    assert kinds(relaxed) == set() and not relaxed["emit_metrics"]
    # Robust (our default): a distance above the threshold must also be significant; Simple: the distance alone
    tiny_reference = dq.Profile.of(population(40, 0))
    tiny_window = dq.Profile.of(population(40, 1))
    tiny = dq.constraints_json(tiny_reference, comparison_threshold=0.05)
    robust = kinds(dq.check(tiny_reference, tiny, tiny_window))
    simple_config = {**tiny["monitoring_config"], "distribution_constraints": {
        **tiny["monitoring_config"]["distribution_constraints"], "comparison_method": "Simple"}}
    simple = kinds(dq.check(tiny_reference, {**tiny, "monitoring_config": simple_config}, tiny_window))
    assert not any(kind == "baseline_drift_check" for _, kind in robust)
    assert any(kind == "baseline_drift_check" for _, kind in simple)


# -- typed options and the CLI --------------------------------------------------------------------------------
def test_monitor_options_are_typed_and_a_misspelt_key_is_an_error(tmp_path, capsys):
    population(3000, 0).to_csv(tmp_path / "reference.csv", index=False)
    population(3000, 1, shift=4.0).to_csv(tmp_path / "current.csv", index=False)
    assert main(["monitor", "data-quality", "baseline", "--data", str(tmp_path / "reference.csv"), "-o",
                 str(tmp_path / "base"), "--alpha", "0.001", "--column-option", "income.test=psi",
                 "--column-option", "age.exclude=true"]) == 0
    options = json.loads((tmp_path / "base" / "monitor.json").read_text())["options"]
    assert options["alpha"] == 0.001 and options["columns"]["income"] == {"test": "psi", "threshold": None, "exclude": False}
    assert options["completeness_tolerance"] == DataQualityOptions.model_fields["completeness_tolerance"].default
    assert main(["monitor", "data-quality", "check", "--baseline", str(tmp_path / "base"), "--data",
                 str(tmp_path / "current.csv"), "-o", str(tmp_path / "check")]) == 0
    drift = json.loads((tmp_path / "check" / "drift.json").read_text())["columns"]
    assert drift["income"]["test"] == "psi" and "age" not in drift
    described = json.loads((tmp_path / "base" / "monitor.json").read_text())
    described["options"]["comparision_threshold"] = 0.2  # misspelt: main fell back to the default silently
    (tmp_path / "base" / "monitor.json").write_text(json.dumps(described))
    capsys.readouterr()
    assert main(["monitor", "data-quality", "check", "--baseline", str(tmp_path / "base"), "--data",
                 str(tmp_path / "current.csv"), "-o", str(tmp_path / "again")]) == 2
    err = capsys.readouterr().err
    assert "comparision_threshold" in err and "did you mean 'comparison_threshold'" in err and "Traceback" not in err
    for bad, message in ((["--column-option", "nosuch.test=psi"], "'nosuch', which the baseline does not have"),
                         (["--column-option", "income.tset=psi"], "unknown data-quality option 'columns.income.tset'"),
                         (["--column-option", "income=psi"], "expected COLUMN.KEY=VALUE"),
                         (["--alpha", "2"], "alpha: Input should be less than or equal to 0.5")):
        assert main(["monitor", "data-quality", "baseline", "--data", str(tmp_path / "reference.csv"), "-o",
                     str(tmp_path / "bad"), *bad]) == 2, bad
        assert message in capsys.readouterr().err, bad


def test_every_option_has_a_flag_generated_from_its_model(capsys):
    from fmeval.monitoring.options import OPTIONS

    for kind, model in OPTIONS.items():
        with pytest.raises(SystemExit):
            main(["monitor", kind, "baseline", "--help"])
        text = capsys.readouterr().out
        for name, info in model.model_fields.items():
            extra = info.json_schema_extra or {}
            if extra.get("cli") is not False:
                assert (extra.get("flag") or "--" + name.replace("_", "-")) in text, (kind, name)


def test_the_summary_line_shows_the_columns_that_moved_most(tmp_path, capsys):
    reference = population(3000, 0)
    current = population(3000, 1)
    current["flag"] = 1  # the last column moves most
    reference.to_csv(tmp_path / "reference.csv", index=False)
    current.to_csv(tmp_path / "current.csv", index=False)
    assert main(["monitor", "data-quality", "baseline", "--data", str(tmp_path / "reference.csv"), "-o",
                 str(tmp_path / "base")]) == 0
    capsys.readouterr()
    assert main(["monitor", "data-quality", "check", "--baseline", str(tmp_path / "base"), "--data",
                 str(tmp_path / "current.csv"), "-o", str(tmp_path / "check")]) == 0
    summary = capsys.readouterr().out.splitlines()[0]
    assert "feature_baseline_drift_flag 0.5" in summary  # main showed the first two columns (income, age)
