"""`fmeval mitigate` on data generated with known bias (men get the positive label more often, and a
feature carries gender). The oracle: fairlearn 0.15.0's own demographic_parity_difference and
equalized_odds_difference on the saved model's predictions of the test rows agree with the report's
DPPL, and with max(|RD|, |SD|) (true- and false-positive rate differences) where the definitions coincide."""
import json

import joblib
import numpy as np
import pandas as pd
import pytest

from fmeval.cli import main

N = 600


@pytest.fixture
def biased_csv(tmp_path):
    rng = np.random.default_rng(0)
    gender = rng.choice(["female", "male"], N, p=[0.4, 0.6])
    x1, x2 = rng.normal(size=N), rng.normal(size=N)
    male = (gender == "male").astype(float)
    label = (rng.random(N) < 1 / (1 + np.exp(-(x1 + 0.5 * x2 + 1.5 * male - 0.7)))).astype(int)
    frame = pd.DataFrame({"x1": x1, "x2": x2, "income": x1 + 1.5 * male, "gender": gender, "y": label})
    path = tmp_path / "loans.csv"
    frame.to_csv(path, index=False)
    return path, frame


def mitigate(path, output, *extra):
    return main(["mitigate", str(path), "--label", "y", "--facet", "gender", "--facet-values", "female",
                 "-o", str(output), *extra])


def fairlearn_agrees(output, frame, constraint_metrics):
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

    provenance = json.loads((output / "provenance.json").read_text())
    summary = json.loads((output / "mitigation.json").read_text())
    model = joblib.load(output / "model.joblib")
    test = frame.iloc[provenance["test_rows"]].reset_index(drop=True)
    X = test[provenance["features"]]
    from fmeval.bias.mitigate import predict

    predicted = predict(model, X, test.gender, provenance["seed"])
    chosen = summary["chosen"]["metrics"]
    assert abs(chosen["DPPL"]) == pytest.approx(
        demographic_parity_difference(test.y, predicted, sensitive_features=test.gender), abs=1e-12)
    assert max(abs(chosen["RD"]), abs(chosen["SD"])) == pytest.approx(
        equalized_odds_difference(test.y, predicted, sensitive_features=test.gender), abs=1e-12)
    assert summary["chosen"]["accuracy"] == pytest.approx(np.mean(predicted == test.y), abs=1e-12)
    return summary, provenance


def test_exponentiated_gradient_narrows_dppl_and_the_card_records_it(biased_csv, tmp_path):
    path, frame = biased_csv
    out = tmp_path / "eg"
    assert mitigate(out.parent / "loans.csv", out, "--seed", "1") == 0
    summary, provenance = fairlearn_agrees(out, frame, None)
    before, after = summary["baseline"]["metrics"]["DPPL"], summary["chosen"]["metrics"]["DPPL"]
    assert before > 0.2 and abs(after) < before / 2  # the bias built in, and most of it removed
    low, high = summary["chosen"]["ci"]["DPPL"]
    assert low < after < high
    assert provenance["method"] == "exponentiated-gradient" and len(provenance["data_sha256"]) == 64
    assert provenance["versions"]["fairlearn"] == "0.15.0"
    assert summary["split"] == {"train": 360, "validation": 120, "test": 120}
    assert main(["cards", "create", "loans", "--from-analysis", str(out), "--store", str(tmp_path / "s.sqlite"),
                 "--create"]) == 0
    assert main(["cards", "export", "loans", "--format", "json", "-o", str(tmp_path / "card.json"),
                 "--store", str(tmp_path / "s.sqlite")]) == 0
    card = json.loads((tmp_path / "card.json").read_text())
    job = card["evaluation_details"][0]
    assert job["evaluation_observation"].startswith("fmeval mitigate: exponentiated-gradient under demographic-parity")
    groups = {g["name"]: {m["name"]: m["value"] for m in g["metric_data"]} for g in job["metric_groups"]}
    assert groups["bias mitigation, chosen: mitigated"]["DPPL"] == pytest.approx(after)
    assert groups["bias mitigation, baseline: unmitigated"]["DPPL"] == pytest.approx(before)


def test_threshold_optimizer_under_equalized_odds(biased_csv, tmp_path):
    path, frame = biased_csv
    assert mitigate(path, tmp_path / "to", "--method", "threshold-optimizer", "--constraint", "equalized-odds") == 0
    summary, provenance = fairlearn_agrees(tmp_path / "to", frame, None)
    assert provenance["predicts_with"] == "predict(X, sensitive_features=facet)"
    baseline, chosen = summary["baseline"]["metrics"], summary["chosen"]["metrics"]
    assert max(abs(chosen["RD"]), abs(chosen["SD"])) < max(abs(baseline["RD"]), abs(baseline["SD"]))


def test_search_gives_the_pareto_front_and_a_chosen_point_on_it(biased_csv, tmp_path):
    path, frame = biased_csv
    assert mitigate(path, tmp_path / "search", "--method", "grid-search", "--search", "--n-trials", "6",
                    "--metric", "DI", "--max-bias", "0.3") == 0
    summary, _ = fairlearn_agrees(tmp_path / "search", frame, None)
    candidates = summary["candidates"]
    assert len(candidates) == 6 and all({"C", "difference_bound"} <= set(c["params"]) for c in candidates)
    for c in candidates:  # the front, checked by brute force on (accuracy up, |DI - 1| down)
        dominated = any(o["accuracy"] >= c["accuracy"] and o["bias"] <= c["bias"]
                        and (o["accuracy"] > c["accuracy"] or o["bias"] < c["bias"]) for o in candidates)
        assert c["on_front"] == (not dominated)
        assert c["bias"] == pytest.approx(abs(c["metrics"]["DI"] - 1))
    chosen = next(c for c in candidates if c["name"] == summary["chosen"]["name"])
    assert chosen["on_front"]
    within = [c for c in candidates if c["on_front"] and c["bias"] <= 0.3]
    if within:
        assert chosen["accuracy"] == max(c["accuracy"] for c in within)
        assert "most accurate on the Pareto front" in summary["rule"]
    else:
        assert chosen["bias"] == min(c["bias"] for c in candidates if c["on_front"])


def test_bad_input_exits_2(biased_csv, tmp_path, capsys):
    path, frame = biased_csv
    joblib.dump(object(), tmp_path / "model.joblib")
    assert mitigate(path, tmp_path / "o", "--model", str(tmp_path / "model.joblib")) == 2
    assert "pass --trust-model" in capsys.readouterr().err
    assert mitigate(path, tmp_path / "o", "--model", str(tmp_path / "model.joblib"), "--trust-model") == 2
    assert "not a scikit-learn-compatible estimator" in capsys.readouterr().err
    assert mitigate(path, tmp_path / "o", "--method", "threshold-optimizer", "--search") == 2
    assert "--search tunes a reduction" in capsys.readouterr().err
    frame.assign(city="x").to_csv(tmp_path / "text.csv", index=False)
    assert mitigate(tmp_path / "text.csv", tmp_path / "o") == 2
    assert "feature column(s) 'city' are not numeric" in capsys.readouterr().err
    frame.assign(y=0).to_csv(tmp_path / "one.csv", index=False)
    assert mitigate(tmp_path / "one.csv", tmp_path / "o") == 2
    assert "every row has the same outcome" in capsys.readouterr().err


def test_a_small_file_is_judged_by_its_0_1_label(biased_csv, tmp_path):
    """100 rows, so 20 test rows: smclarify's rule would call a 0/1 column of so few rows continuous."""
    path, frame = biased_csv
    frame.iloc[:100].to_csv(tmp_path / "small.csv", index=False)
    assert mitigate(tmp_path / "small.csv", tmp_path / "small", "--method", "threshold-optimizer") == 0
    summary = json.loads((tmp_path / "small" / "mitigation.json").read_text())
    assert summary["split"]["test"] == 20 and summary["baseline"]["metrics"]["DPPL"] is not None
