"""BiasFrame against its peers, called directly: smclarify 0.5 (SageMaker Clarify's library: its
bias_report, bias_basic_stats and model_performance_report) and fairlearn 0.15.0 (MetricFrame,
demographic_parity_difference / ratio, equalized_odds_difference) where the definitions coincide.

smclarify 0.5 is installed without its dependencies (they pin old versions of boto3 and s3fs) and
with pyfunctional, which it imports; under pandas 3 it needs text columns as object dtype.
"""
import math

import numpy as np
import pandas as pd
import pytest

from fmeval.bias import BiasFrame
from fmeval.errors import UserError

N = 240


def biased_data(seed=0, n=N):
    """Three groups with different base rates and a model that favours group "a"; a group variable."""
    rng = np.random.default_rng(seed)
    group = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    label = (rng.random(n) < np.where(group == "a", 0.6, 0.35)).astype(int)
    predicted = np.where(rng.random(n) < 0.8, label, 1 - label)
    predicted[(group == "a") & (rng.random(n) < 0.2)] = 1
    return pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n),
                         "g": pd.Series(group, dtype=object), "y": label, "p": predicted,
                         "region": pd.Series(rng.choice(["n", "s", "e"], n), dtype=object)})


def smclarify_report(df, stage, facet_values=None, group=None, metrics=("all",)):
    from smclarify.bias import report

    label = report.LabelColumn("y", df["y"], [1])
    predicted = report.LabelColumn("p", df["p"], [1]) if stage == "post" else None
    stage_type = report.StageType.POST_TRAINING if stage == "post" else report.StageType.PRE_TRAINING
    frame = df.drop(columns=["p"]) if stage == "pre" else df.drop(columns=["region"])
    return report.bias_report(frame, report.FacetColumn("g", facet_values), label, stage_type, predicted,
                              metrics=list(metrics), group_variable=group)


def by_name(entry):
    return {m["name"]: m for m in entry["metrics"]}


def assert_same(ours, theirs):
    if theirs.get("value") is None:  # smclarify's MetricError: ours is NaN with a reason
        assert math.isnan(ours)
    else:
        assert ours == pytest.approx(theirs["value"], abs=1e-12)


def test_pre_and_post_training_match_smclarify_one_vs_all_and_with_a_group_variable():
    df = biased_data()
    frame = BiasFrame(y_true=df.y, y_pred=df.p, sensitive_features=df.g, group_variable=df.region,
                      features=df[["x1", "x2"]])
    for stage, table in (("pre", frame.pre_training()), ("post", frame.post_training())):
        theirs = smclarify_report(df, stage, group=df.region)
        assert sorted(e["value_or_threshold"] for e in theirs) == ["a", "b", "c"]
        for entry in theirs:
            row = table.loc[("g", entry["value_or_threshold"])]
            for name, metric in by_name(entry).items():
                assert_same(row[name], metric)
        assert set(table.columns) == {m for e in theirs for m in by_name(e)}


def test_a_sensitive_group_given_by_value_and_smclarify_basic_stats_and_performance():
    from smclarify.bias import report

    df = biased_data(seed=1)
    frame = BiasFrame(y_true=df.y, y_pred=df.p, sensitive_features=df.g, facet_values=["b", "c"])
    theirs = smclarify_report(df, "post", facet_values=["b", "c"], metrics=["DPPL", "DI", "RD", "TE", "AD"])
    row = frame.post_training(["DPPL", "DI", "RD", "TE", "AD"]).loc[("g", "b,c")]
    for name, metric in by_name(theirs[0]).items():
        assert_same(row[name], metric)
    label, predicted = report.LabelColumn("y", df["y"], [1]), report.LabelColumn("p", df["p"], [1])
    stats = report.bias_basic_stats(df.drop(columns=["region"]), report.FacetColumn("g", ["b", "c"]), label,
                                    report.StageType.POST_TRAINING, predicted)
    ours = frame.bias_basic_stats()["g"]
    assert [e["value_or_threshold"] for e in ours] == [e["value_or_threshold"] for e in stats]
    for mine, theirs_entry in zip(ours, stats):
        for m, t in zip(mine["metrics"], theirs_entry["metrics"]):
            assert m["name"] == t["name"]
            assert m["value"] == pytest.approx(t["value"], abs=1e-12)
    performance = report.model_performance_report(df.drop(columns=["region"]), label, predicted)
    mine = frame.model_performance_report()
    assert [m["name"] for m in mine["model_performance_metrics"]] == [
        m["name"] for m in performance["model_performance_metrics"]]
    for m, t in zip(mine["model_performance_metrics"], performance["model_performance_metrics"]):
        assert m["value"] == pytest.approx(t["value"], abs=1e-12), m["name"]
    assert mine["binary_confusion_matrix"] == pytest.approx(performance["binary_confusion_matrix"], abs=1e-12)
    assert mine["confusion_matrix"] == performance["confusion_matrix"]


def test_by_group_difference_and_ratio_match_fairlearn_on_a_binary_facet():
    from fairlearn.metrics import (MetricFrame, demographic_parity_difference, demographic_parity_ratio,
                                   equalized_odds_difference, false_positive_rate, selection_rate)
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    df = biased_data(seed=2)
    sex = np.where(df.g == "a", "male", "female")
    frame = BiasFrame(y_true=df.y, y_pred=df.p, sensitive_features=pd.Series(sex, name="sex"),
                      facet_values=["female"])
    theirs = MetricFrame(metrics={"accuracy": accuracy_score, "precision": precision_score, "recall": recall_score,
                                  "f1": f1_score, "selection_rate": selection_rate,
                                  "false_positive_rate": false_positive_rate},
                         y_true=df.y, y_pred=df.p, sensitive_features=sex).by_group
    ours = frame.by_group.loc[("sex", "female")]
    for side, value in (("sensitive", "female"), ("rest", "male")):
        for column in theirs.columns:
            assert ours.loc[side, column] == pytest.approx(theirs.loc[value, column], abs=1e-12), column
        assert ours.loc[side, "count"] == (sex == value).sum()
    difference, ratio = frame.difference().loc[("sex", "female")], frame.ratio().loc[("sex", "female")]
    assert abs(difference["selection_rate"]) == pytest.approx(
        demographic_parity_difference(df.y, df.p, sensitive_features=sex), abs=1e-12)
    assert min(ratio["selection_rate"], 1 / ratio["selection_rate"]) == pytest.approx(
        demographic_parity_ratio(df.y, df.p, sensitive_features=sex), abs=1e-12)
    assert max(abs(difference["recall"]), abs(difference["false_positive_rate"])) == pytest.approx(
        equalized_odds_difference(df.y, df.p, sensitive_features=sex), abs=1e-12)
    # the same numbers as Clarify's metrics: DPPL is a's selection rate minus d's, DI d's over a's, RD recall's
    post = frame.post_training(["DPPL", "DI", "RD"]).loc[("sex", "female")]
    assert post["DPPL"] == pytest.approx(difference["selection_rate"], abs=1e-12)
    assert post["DI"] == pytest.approx(ratio["selection_rate"], abs=1e-12)
    assert post["RD"] == pytest.approx(difference["recall"], abs=1e-12)


def test_bootstrap_intervals_match_resampling_the_rows_and_are_seeded():
    df = biased_data(seed=3, n=150)
    frame = BiasFrame(y_true=df.y, y_pred=df.p, sensitive_features=df.g, facet_values=["a"])
    table = frame.post_training(["DPPL", "DI"], ci=True, n_bootstrap=2000, seed=7)
    assert table.equals(frame.post_training(["DPPL", "DI"], ci=True, n_bootstrap=2000, seed=7))
    row = table.loc[("g", "a")]
    # the reference: resample the rows themselves (another seed) and compute DPPL by hand
    rng = np.random.default_rng(11)
    d, p = (df.g == "a").to_numpy(), df.p.to_numpy() == 1
    dppl = []
    for _ in range(2000):
        rows = rng.integers(0, len(df), len(df))
        dd, pp = d[rows], p[rows]
        dppl.append(pp[~dd].mean() - pp[dd].mean())
    low, high = np.percentile(dppl, [2.5, 97.5])
    assert row[("DPPL", "ci_low")] == pytest.approx(low, abs=0.02)
    assert row[("DPPL", "ci_high")] == pytest.approx(high, abs=0.02)
    for name in ("DPPL", "DI"):
        assert row[(name, "ci_low")] < row[(name, "value")] < row[(name, "ci_high")]


def test_edges_an_empty_rest_a_one_class_label_missing_values_and_lengths():
    df = biased_data(seed=4, n=60)
    everyone = BiasFrame(y_true=df.y, y_pred=df.p, sensitive_features=df.g, facet_values=["a", "b", "c"])
    table = everyone.pre_training(["CI", "DPL"], ci=True, n_bootstrap=50)
    assert math.isnan(table.loc[("g", "a,b,c"), ("CI", "value")])
    assert math.isnan(table.loc[("g", "a,b,c"), ("CI", "ci_low")])
    assert table.attrs["errors"][("g", "a,b,c", "CI")] == "Negated facet set is empty"
    assert everyone.by_group.loc[("g", "a,b,c", "rest"), "count"] == 0
    with pytest.raises(UserError, match="same outcome"):
        BiasFrame(y_true=np.zeros(10), sensitive_features=np.arange(10) % 2)
    with pytest.raises(UserError, match=r"1 row\(s\) have no value in sensitive_features\['g'\] \(rows 3\)"):
        BiasFrame(y_true=df.y, sensitive_features=df.g.where(df.index != 3))
    with pytest.raises(UserError, match="one entry per row"):
        BiasFrame(y_true=df.y, sensitive_features=df.g[:-1])
    with pytest.raises(UserError, match="never occur"):
        BiasFrame(y_true=df.y, sensitive_features=df.g, facet_values=["z"])
    with pytest.raises(UserError, match="need predictions"):
        BiasFrame(y_true=df.y, sensitive_features=df.g).post_training()
    no_features = BiasFrame(y_true=df.y, y_pred=df.p, sensitive_features=df.g).post_training(["FT"])
    assert no_features.attrs["errors"][("g", "a", "FT")] == "FlipTest needs the features: pass features="


def test_analyze_writes_what_bias_frame_computes_rows_with_missing_values_dropped(tmp_path):
    from fmeval.bias.analyze import analyze

    df = biased_data(seed=5)
    df.loc[[3, 7], "g"] = None  # dropped by analyze, then the same as a BiasFrame of the other rows
    config = {"label": "y", "predicted_label_name_or_index": "p", "group_variable": "region",
              "facet": [{"name_or_index": "g", "value_or_threshold": ["b"]}, {"name_or_index": "x1", "value_or_threshold": [0.5]}],
              "methods": {"pre_training_bias": {"methods": "all"}, "post_training_bias": {"methods": "all"}}}
    result = analyze(config, df, tmp_path / "out")
    assert result["rows_with_missing_values"]["rows"] == [3, 7]
    kept = df.drop(index=[3, 7]).reset_index(drop=True)
    frame = BiasFrame(y_true=kept.y, y_pred=kept.p, sensitive_features=kept[["g", "x1"]], group_variable=kept.region,
                      facet_values={"g": ["b"], "x1": [0.5]}, features=kept[["x1", "x2", "g", "region"]])
    pre, post = frame.pre_training(), frame.post_training()
    for stage, table in (("pre_training_bias_metrics", pre), ("post_training_bias_metrics", post)):
        for facet, entries in result[stage]["facets"].items():
            (entry,) = entries
            for metric in entry["metrics"]:
                value = table.loc[(facet, entry["value_or_threshold"]), metric["name"]]
                assert_same(value, metric)
    assert result["post_training_bias_metrics"]["facets"]["x1"][0]["value_or_threshold"].startswith("(0.5, ")
    # analyze's features are every column but the label and prediction: the text ones leave FT undefined
    assert post.attrs["errors"][("g", "b", "FT")] == "FlipTest does not support non-numeric columns"
