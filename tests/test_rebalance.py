"""`fmeval rebalance` on data generated with known bias: each (facet, label) group ends the same
size, the after-report agrees with smclarify 0.5's bias_report on the written data, and bad input
exits 2. The samplers are imbalanced-learn 0.14.2's."""
import json

import numpy as np
import pandas as pd
import pytest

from fmeval.cli import main

N = 300


@pytest.fixture
def biased_csv(tmp_path):
    """Women are 30% of the rows and get the positive label 25% of the time, men 60%."""
    rng = np.random.default_rng(0)
    gender = rng.choice(["female", "male"], N, p=[0.3, 0.7])
    label = (rng.random(N) < np.where(gender == "male", 0.6, 0.25)).astype(int)
    frame = pd.DataFrame({"age": rng.integers(18, 70, N), "income": rng.normal(50, 10, N).round(2),
                          "gender": gender, "y": label})
    path = tmp_path / "loans.csv"
    frame.to_csv(path, index=False)
    return path, frame


def run_rebalance(path, output, *extra):
    return main(["rebalance", str(path), "--label", "y", "--facet", "gender", "--facet-values", "female",
                 "-o", str(output), *extra])


def cells(frame):
    return frame.groupby(["gender", "y"]).size()


def smclarify_pre_training(frame):
    from smclarify.bias import report

    frame = frame.assign(gender=frame.gender.astype(object))
    result = report.bias_report(frame, report.FacetColumn("gender", ["female"]), report.LabelColumn("y", frame.y, [1]),
                                report.StageType.PRE_TRAINING, metrics=["CI", "DPL", "KL", "JS", "LP", "TVD", "KS"])
    return {m["name"]: m["value"] for m in result[0]["metrics"]}


@pytest.mark.parametrize("method", ["random-undersample", "random-oversample", "smote"])
def test_every_group_ends_the_same_size_and_the_report_matches_smclarify(biased_csv, tmp_path, method):
    path, original = biased_csv
    assert run_rebalance(path, tmp_path / "out", "--method", method, "--seed", "3") == 0
    out = pd.read_csv(tmp_path / "out" / "rebalanced.csv")
    before = cells(original)
    expected = before.min() if method == "random-undersample" else before.max()
    assert (cells(out) == expected).all() and len(cells(out)) == 4
    summary = json.loads((tmp_path / "out" / "rebalance.json").read_text())
    metrics = {m["name"]: m for m in summary["pre_training_bias_metrics"]}
    for name, value in smclarify_pre_training(original).items():
        assert metrics[name]["before"] == pytest.approx(value, abs=1e-12)
    for name, value in smclarify_pre_training(out).items():
        assert metrics[name]["after"] == pytest.approx(value, abs=1e-12)
        assert metrics[name]["change"] == pytest.approx(value - metrics[name]["before"], abs=1e-12)
    assert metrics["CI"]["before"] == pytest.approx(0.4, abs=0.1) and metrics["DPL"]["before"] > 0.2
    assert metrics["CI"]["after"] == 0 and metrics["DPL"]["after"] == pytest.approx(0, abs=1e-12)
    if method.startswith("random"):  # every row is one of the data's rows
        merged = out.merge(original.drop_duplicates(), how="left", indicator=True)
        assert (merged["_merge"] == "both").all()
        if method == "random-undersample":
            assert not out.duplicated().any()
    else:  # a synthetic row lies between rows of its own group: within the group's range, ages whole numbers
        for (gender, label), group in out.groupby(["gender", "y"]):
            source = original[(original.gender == gender) & (original.y == label)]
            for column in ("age", "income"):
                assert source[column].min() <= group[column].min() and group[column].max() <= source[column].max()
        assert out.age.dtype == np.int64
    # seeded: the same seed gives the same rows
    assert run_rebalance(path, tmp_path / "again", "--method", method, "--seed", "3") == 0
    assert pd.read_csv(tmp_path / "again" / "rebalanced.csv").equals(out)


def test_smotenc_takes_mixed_columns(biased_csv, tmp_path):
    path, original = biased_csv
    mixed = original.assign(city=np.where(np.arange(N) % 3 == 0, "x", "y"))
    mixed.to_csv(path, index=False)
    assert run_rebalance(path, tmp_path / "out", "--method", "smotenc") == 0
    out = pd.read_csv(tmp_path / "out" / "rebalanced.csv")
    assert set(out.city) == {"x", "y"} and (cells(out) == cells(original).max()).all()


def test_bad_input_exits_2_and_says_what(biased_csv, tmp_path, capsys):
    path, original = biased_csv
    original.assign(y=1).to_csv(tmp_path / "one.csv", index=False)
    assert run_rebalance(tmp_path / "one.csv", tmp_path / "o1") == 2
    assert "every row has the same value (1)" in capsys.readouterr().err
    original.assign(y=np.where(original.gender == "female", 0, original.y)).to_csv(tmp_path / "empty.csv", index=False)
    assert run_rebalance(tmp_path / "empty.csv", tmp_path / "o2") == 2
    assert "group female has no row with label 1" in capsys.readouterr().err
    assert main(["rebalance", str(path), "--label", "y", "--facet", "gender", "--facet-values", "other",
                 "-o", str(tmp_path / "o3")]) == 2
    assert "never occur in column 'gender'" in capsys.readouterr().err
    original.assign(city="x").to_csv(tmp_path / "text.csv", index=False)
    assert run_rebalance(tmp_path / "text.csv", tmp_path / "o4", "--method", "smote") == 2
    assert "column(s) 'city' are not numeric: use --method smotenc" in capsys.readouterr().err
    assert main(["rebalance", str(path), "--label", "nope", "--facet", "gender", "-o", str(tmp_path / "o5")]) == 2
    assert "--label: no column 'nope'" in capsys.readouterr().err


def test_a_small_file_with_a_0_1_label_is_rebalanced_by_its_classes(tmp_path):
    """30 rows: smclarify's rule would call the 0/1 label continuous (2 values are >= 5% of the rows)."""
    frame = pd.DataFrame({"x": np.arange(30.0), "gender": ["female"] * 10 + ["male"] * 20,
                          "y": [1, 0, 0, 0, 0, 0, 0, 0, 0, 0] + [1] * 12 + [0] * 8})
    frame.to_csv(tmp_path / "small.csv", index=False)
    assert run_rebalance(tmp_path / "small.csv", tmp_path / "out") == 0
    out = pd.read_csv(tmp_path / "out" / "rebalanced.csv")
    assert (cells(out) == 12).all()
    metrics = {m["name"]: m for m in json.loads((tmp_path / "out" / "rebalance.json").read_text())
               ["pre_training_bias_metrics"]}
    assert metrics["DPL"]["before"] == pytest.approx(12 / 20 - 1 / 10) and metrics["DPL"]["after"] == 0
