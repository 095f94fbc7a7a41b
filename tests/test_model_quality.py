"""Model-quality monitoring: values computed by hand and checked against scikit-learn, the
vectorised bootstrap checked resample by resample, Model Monitor's files, planted drift found
(and noise not taken for drift), and bad input named."""
import json

import numpy as np
import pytest
from sklearn import metrics as sk

from fmeval.errors import UserError
from fmeval.monitoring import model_quality as mq

# 4 positives, 6 negatives: tp = 3 (rows 0-2), fn = 1 (row 3), fp = 2 (rows 4-5), tn = 4 (rows 6-9)
LABELS = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
PREDICTIONS = [1, 1, 1, 0, 1, 1, 0, 0, 0, 0]
# positives score 0.9, 0.8, 0.7, 0.3; negatives 0.6, 0.75, 0.2, 0.1, 0.3, 0.5
SCORES = [0.9, 0.8, 0.7, 0.3, 0.6, 0.75, 0.2, 0.1, 0.3, 0.5]


def metrics_of(statistics):
    section = next(v for k, v in statistics.items() if k.endswith("_metrics"))
    return {m: e["value"] for m, e in section.items() if m != "confusion_matrix"}


def classifier(n, seed, accuracy=0.9):
    """Balanced 0/1 labels; each prediction wrong with probability 1 - accuracy."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    wrong = rng.random(n) > accuracy
    return labels, np.where(wrong, 1 - labels, labels)


def test_binary_values_computed_by_hand():
    stats = mq.quality_statistics(problem_type="binary", labels=LABELS, predictions=PREDICTIONS,
                                  probabilities=SCORES, n_bootstrap=200)
    values = metrics_of(stats)
    assert values["accuracy"] == pytest.approx(7 / 10)  # tp + tn = 3 + 4
    assert values["precision"] == pytest.approx(3 / 5)  # tp / (tp + fp)
    assert values["recall"] == values["true_positive_rate"] == pytest.approx(3 / 4)  # tp / (tp + fn)
    assert values["f1"] == pytest.approx(2 / 3)  # 2 * 0.6 * 0.75 / (0.6 + 0.75) = 0.9 / 1.35
    assert values["false_positive_rate"] == pytest.approx(2 / 6)  # fp / (fp + tn)
    # AUC = ordered (positive, negative) pairs / 24: negatives below 0.9: 6, below 0.8: 6,
    # below 0.7: 5, below 0.3: 2 plus one tie counting half -> 19.5 / 24
    assert values["auc"] == pytest.approx(19.5 / 24)
    assert stats["dataset"] == {"item_count": 10, "positive_label": 1}
    assert stats["binary_classification_metrics"]["confusion_matrix"] == {"0": {"0": 4, "1": 2}, "1": {"0": 1, "1": 3}}
    assert stats["version"] == 0.0

    words = {1: "yes", 0: "no"}
    as_words = dict(problem_type="binary", labels=[words[v] for v in LABELS],
                    predictions=[words[v] for v in PREDICTIONS], n_bootstrap=50)
    stats = mq.quality_statistics(**as_words)  # "yes" > "no": yes is positive by default
    assert metrics_of(stats)["f1"] == pytest.approx(2 / 3) and stats["dataset"]["positive_label"] == "yes"
    matrix = stats["binary_classification_metrics"]["confusion_matrix"]
    assert matrix == {"no": {"no": 4, "yes": 2}, "yes": {"no": 1, "yes": 3}}
    flipped = metrics_of(mq.quality_statistics(**as_words, positive_label="no"))
    # "no" positive: tp = 4, fp = 1 (a yes called no), fn = 2 (two no called yes)
    assert flipped["precision"] == pytest.approx(4 / 5) and flipped["recall"] == pytest.approx(4 / 6)
    assert flipped["false_positive_rate"] == pytest.approx(1 / 4)


def test_values_match_sklearn_on_random_data():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 3000)
    scores = np.clip(0.35 * labels + 0.65 * rng.random(3000), 0, 1)
    predictions = (scores > 0.5).astype(int)
    values = metrics_of(mq.quality_statistics(problem_type="binary", labels=labels, predictions=predictions,
                                              probabilities=scores, n_bootstrap=100))
    assert values["accuracy"] == pytest.approx(sk.accuracy_score(labels, predictions))
    assert values["precision"] == pytest.approx(sk.precision_score(labels, predictions))
    assert values["recall"] == pytest.approx(sk.recall_score(labels, predictions))
    assert values["f1"] == pytest.approx(sk.f1_score(labels, predictions))
    assert values["auc"] == pytest.approx(sk.roc_auc_score(labels, scores))

    truth = rng.normal(10, 3, 3000)
    guess = truth + rng.normal(0.5, 1.5, 3000)
    values = metrics_of(mq.quality_statistics(problem_type="regression", labels=truth, predictions=guess,
                                              n_bootstrap=100))
    assert values["mae"] == pytest.approx(sk.mean_absolute_error(truth, guess))
    assert values["mse"] == pytest.approx(sk.mean_squared_error(truth, guess))
    assert values["rmse"] == pytest.approx(np.sqrt(sk.mean_squared_error(truth, guess)))
    assert values["r2"] == pytest.approx(sk.r2_score(truth, guess))


def test_multiclass_weighted_metrics_match_sklearn():
    rng = np.random.default_rng(3)
    classes = np.array(["bird", "cat", "dog", "fish"])
    labels = rng.choice(classes, 1500, p=[0.1, 0.2, 0.3, 0.4])
    predictions = np.where(rng.random(1500) < 0.7, labels, rng.choice(classes[1:], 1500))
    predictions[labels == "bird"] = "cat"  # a class with labels that is never predicted: precision counts 0
    stats = mq.quality_statistics(problem_type="multiclass", labels=labels, predictions=predictions, n_bootstrap=200)
    values = metrics_of(stats)
    assert values["accuracy"] == pytest.approx(sk.accuracy_score(labels, predictions))
    for name, metric in [("weighted_f1", sk.f1_score), ("weighted_precision", sk.precision_score),
                         ("weighted_recall", sk.recall_score)]:
        assert values[name] == pytest.approx(metric(labels, predictions, average="weighted", zero_division=0)), name
    matrix = stats["multiclass_classification_metrics"]["confusion_matrix"]
    assert sorted(matrix) == list(classes) and matrix["bird"]["cat"] == int(np.sum(labels == "bird"))
    assert sum(sum(row.values()) for row in matrix.values()) == 1500


@pytest.mark.parametrize("rounding", [2, None])  # few distinct scores (multinomial), or many (rows resampled)
def test_vectorised_resamples_match_sklearn_resample_by_resample(rounding):
    """The bootstrap's metric of a resample, from counts per column, equals sklearn's on the rows."""
    rng = np.random.default_rng(11)
    labels = rng.integers(0, 2, 800)
    scores = 0.3 * labels + 0.7 * rng.random(800)
    scores = np.round(scores, rounding) if rounding else np.round(scores, 3)  # 3 decimals: ties, many levels
    predictions = (scores > 0.5).astype(int)
    # rows in the sampler's column order (label, score, prediction), so that column i is row i
    order = np.lexsort((predictions, scores, labels))
    labels, scores, predictions = labels[order], scores[order], predictions[order]
    groups, n_columns, sample = mq._binary_sampler(labels == 1, predictions == 1, scores)
    assert (groups is None) == (rounding is None)
    resamples = rng.integers(0, 800, (5, 800))
    columns = [r if groups is None else groups[r] for r in resamples]
    counts = np.stack([np.bincount(c, minlength=n_columns) for c in columns]).astype(float)
    got = sample(counts)
    for i, rows in enumerate(resamples):
        y, p, s = labels[rows], predictions[rows], scores[rows]
        assert got["auc"][i] == pytest.approx(sk.roc_auc_score(y, s), abs=1e-12)
        assert got["f1"][i] == pytest.approx(sk.f1_score(y, p))
        assert got["precision"][i] == pytest.approx(sk.precision_score(y, p))
        assert got["accuracy"][i] == pytest.approx(sk.accuracy_score(y, p))
        tn, fp, _, _ = sk.confusion_matrix(y, p).ravel()
        assert got["false_positive_rate"][i] == pytest.approx(fp / (fp + tn))

    k = 30  # many cells: rows resampled; rows sorted by (label, prediction)
    y = np.sort(rng.integers(0, k, 2000))
    f = np.where(rng.random(2000) < 0.6, y, rng.integers(0, k, 2000))
    order = np.lexsort((f, y))
    y, f = y[order], f[order]
    groups, n_columns, sample = mq._multiclass_sampler(y, f, k)
    assert groups is None
    rows = rng.integers(0, 2000, 2000)
    got = sample(np.bincount(rows, minlength=2000)[None, :].astype(float))
    assert got["weighted_f1"][0] == pytest.approx(sk.f1_score(y[rows], f[rows], average="weighted", zero_division=0))
    expected = sk.precision_score(y[rows], f[rows], average="weighted", zero_division=0)
    assert got["weighted_precision"][0] == pytest.approx(expected)

    truth = rng.normal(5, 2, 1000)
    guess = truth + rng.normal(0, 1, 1000)
    _, _, sample = mq._regression_sampler(truth, guess)
    rows = rng.integers(0, 1000, 1000)
    got = sample(np.bincount(rows, minlength=1000)[None, :].astype(float))
    assert got["r2"][0] == pytest.approx(sk.r2_score(truth[rows], guess[rows]))
    assert got["mae"][0] == pytest.approx(sk.mean_absolute_error(truth[rows], guess[rows]))


def test_bootstrap_interval_is_seeded_and_contains_the_value():
    labels, predictions = classifier(500, 4)
    first = mq.quality_statistics(problem_type="binary", labels=labels, predictions=predictions, seed=5)
    again = mq.quality_statistics(problem_type="binary", labels=labels, predictions=predictions, seed=5)
    other = mq.quality_statistics(problem_type="binary", labels=labels, predictions=predictions, seed=6)
    assert first == again
    f1, f1_other = first["binary_classification_metrics"]["f1"], other["binary_classification_metrics"]["f1"]
    assert f1["confidence_interval"] != f1_other["confidence_interval"]
    low, high = f1["confidence_interval"]
    assert low < f1["value"] < high
    # a proportion's bootstrap spread is close to the binomial one, sqrt(p (1 - p) / n)
    accuracy = first["binary_classification_metrics"]["accuracy"]
    binomial = np.sqrt(accuracy["value"] * (1 - accuracy["value"]) / 500)
    assert accuracy["standard_deviation"] == pytest.approx(binomial, rel=0.15)
    assert high - low == pytest.approx(2 * 1.96 * f1["standard_deviation"], rel=0.2)


def test_suggested_constraints_follow_each_metrics_direction():
    labels, predictions = classifier(2000, 0)
    stats = mq.quality_statistics(problem_type="binary", labels=labels, predictions=predictions, n_bootstrap=100)
    values = metrics_of(stats)
    constraints = mq.suggest_constraints(json.loads(json.dumps(stats)), tolerance={"f1": 0.1})
    rules = constraints["binary_classification_constraints"]
    assert constraints["version"] == 0.0 and "auc" not in rules  # no probabilities, no auc
    assert rules["f1"] == {"threshold": pytest.approx(values["f1"] - 0.1), "comparison_operator": "LessThanThreshold"}
    assert rules["accuracy"]["threshold"] == pytest.approx(values["accuracy"] - mq.DEFAULT_TOLERANCE)
    assert rules["false_positive_rate"] == {"threshold": pytest.approx(values["false_positive_rate"] + 0.05),
                                            "comparison_operator": "GreaterThanThreshold"}

    rng = np.random.default_rng(1)
    truth = rng.normal(size=500)
    stats = mq.quality_statistics(problem_type="regression", labels=truth, predictions=truth + rng.normal(0, 0.5, 500),
                                  n_bootstrap=100)
    rules = mq.suggest_constraints(stats, tolerance=0.2)["regression_constraints"]
    mae = stats["regression_metrics"]["mae"]["value"]
    assert rules["mae"] == {"threshold": pytest.approx(mae * 1.2),  # relative
                            "comparison_operator": "GreaterThanThreshold"}
    assert rules["r2"]["threshold"] == pytest.approx(stats["regression_metrics"]["r2"]["value"] - 0.2)  # absolute


def test_planted_binary_drift_is_a_violation_and_noise_is_not():
    labels, predictions = classifier(2000, 0)
    baseline = mq.quality_statistics(problem_type="binary", labels=labels, predictions=predictions)
    constraints = mq.suggest_constraints(baseline)
    base_f1 = baseline["binary_classification_metrics"]["f1"]["value"]
    assert 0.88 < base_f1 < 0.92

    same_labels, same_predictions = classifier(2000, 1)
    same = mq.check_quality(baseline, constraints, labels=same_labels, predictions=same_predictions)
    assert same["status"] == "Completed" and same["violations"] == []
    assert not any(d["violated"] for d in same["decisions"].values())

    flip = np.random.default_rng(2).random(2000) < 0.3  # 30% of the predictions flipped
    drifted = mq.check_quality(baseline, constraints, labels=same_labels,
                               predictions=np.where(flip, 1 - same_predictions, same_predictions))
    assert drifted["status"] == "CompletedWithViolations"
    violated = {v["metric_name"]: v for v in drifted["violations"]}
    assert {"accuracy", "f1"} <= set(violated)
    assert violated["f1"]["constraint_check_type"] == "LessThanThreshold"
    assert violated["f1"]["description"].startswith("Metric f1 with 0.6")
    decision = drifted["decisions"]["f1"]
    assert decision["value"] < decision["threshold"] and decision["ci"][1] < decision["baseline"] == base_f1
    assert drifted["metrics"]["accuracy"] == pytest.approx(0.66, abs=0.03)  # 0.9 * 0.7 + 0.1 * 0.3

    # 30 rows with f1 = 0.8 (tp 12, fn 3, fp 3, tn 12): below the threshold, but within the noise
    small_labels = [1] * 15 + [0] * 15
    small_predictions = [1] * 12 + [0] * 3 + [1] * 3 + [0] * 12
    small = mq.check_quality(baseline, constraints, labels=small_labels, predictions=small_predictions)
    decision = small["decisions"]["f1"]
    assert decision["value"] == pytest.approx(0.8) and decision["value"] < decision["threshold"]
    assert decision["ci"][0] < decision["value"] < decision["baseline"] < decision["ci"][1]
    assert not decision["significant"] and not decision["violated"]
    assert small["status"] == "Completed" and small["violations"] == []
    # the same shares over 600 rows: the interval narrows below the baseline, and it is a violation
    large = mq.check_quality(baseline, constraints, labels=small_labels * 20, predictions=small_predictions * 20)
    assert large["decisions"]["f1"]["significant"] and "f1" in {v["metric_name"] for v in large["violations"]}


def test_a_rate_of_one_row_is_no_alarm_whatever_its_bootstrap_interval():
    """30 rows, one of them a negative label predicted positive: the false-positive rate is 1 of 1, and every
    resample that holds the row gives 1, so the bootstrap interval is [1, 1] and "lay entirely above" the
    baseline's 0.1: an alarm from one row. The exact interval (statsmodels 0.15's Clopper-Pearson, its
    `method="beta"`) is [0.025, 1]: no alarm. 20 of 20 wrong is one still."""
    from statsmodels.stats.proportion import proportion_confint

    labels, predictions = classifier(2000, 0)
    baseline = mq.quality_statistics(problem_type="binary", labels=labels, predictions=predictions)
    constraints = mq.suggest_constraints(baseline)
    one = mq.check_quality(baseline, constraints, labels=[1] * 29 + [0], predictions=[1] * 30)
    fpr = one["decisions"]["false_positive_rate"]
    assert fpr["value"] == 1 and fpr["ci"] == [1, 1] and fpr["value"] > fpr["threshold"]
    assert not fpr["violated"] and one["violations"] == []
    assert fpr["exact_ci"] == pytest.approx(list(proportion_confint(1, 1, alpha=0.05, method="beta")), rel=1e-9)
    wrong = mq.check_quality(baseline, constraints, labels=[1] * 20, predictions=[0] * 20)
    accuracy = wrong["decisions"]["accuracy"]
    assert accuracy["exact_ci"] == pytest.approx(list(proportion_confint(0, 20, alpha=0.05, method="beta")), abs=1e-12)
    assert accuracy["violated"] and "exact binomial interval [0, 0.1684] (0 of 20)" in next(
        v["description"] for v in wrong["violations"] if v["metric_name"] == "accuracy")


def test_planted_regression_drift_doubled_noise_is_an_mae_violation():
    rng = np.random.default_rng(8)

    def window(n, noise):
        truth = rng.normal(50, 10, n)
        return truth, truth + rng.normal(0, noise, n)

    truth, guess = window(2000, 2.0)
    baseline = mq.quality_statistics(problem_type="regression", labels=truth, predictions=guess)
    constraints = mq.suggest_constraints(baseline)
    truth, guess = window(2000, 2.0)
    assert mq.check_quality(baseline, constraints, labels=truth, predictions=guess)["violations"] == []
    truth, guess = window(2000, 4.0)
    drifted = mq.check_quality(baseline, constraints, labels=truth, predictions=guess)
    kinds = {v["metric_name"]: v["constraint_check_type"] for v in drifted["violations"]}
    assert kinds["mae"] == kinds["rmse"] == "GreaterThanThreshold" and kinds["r2"] == "LessThanThreshold"
    assert drifted["metrics"]["mae"] == pytest.approx(2 * baseline["regression_metrics"]["mae"]["value"], rel=0.1)


def test_undefined_auc_and_empty_windows_are_reported_not_raised():
    labels, predictions = classifier(400, 9)
    scores = np.clip(0.4 * labels + 0.6 * np.random.default_rng(9).random(400), 0, 1)
    baseline = mq.quality_statistics(problem_type="binary", labels=labels, predictions=predictions,
                                     probabilities=scores, n_bootstrap=200)
    constraints = mq.suggest_constraints(baseline)
    assert "auc" in constraints["binary_classification_constraints"]
    # only negatives: auc, recall undefined; the baseline's positive label (1) is used although absent
    window = mq.check_quality(baseline, constraints, labels=[0] * 20, predictions=[0] * 18 + [1, 1],
                              probabilities=[0.2] * 20, n_bootstrap=200)
    section = window["statistics"]["binary_classification_metrics"]
    assert section["auc"] == {"value": None, "standard_deviation": None, "confidence_interval": None}
    assert section["recall"]["value"] is None and section["false_positive_rate"]["value"] == pytest.approx(0.1)
    assert window["decisions"]["auc"]["violated"] is False and "auc" not in window["metrics"]
    assert "auc" not in {v["metric_name"] for v in window["violations"]}
    assert section["confusion_matrix"] == {"0": {"0": 18, "1": 2}, "1": {"0": 0, "1": 0}}

    empty = mq.check_quality(baseline, constraints, labels=[], predictions=[], probabilities=[])
    assert empty["status"] == "NoData" and empty["violations"] == []
    assert empty["statistics"]["dataset"]["item_count"] == 0


def test_bad_input_says_what_is_wrong():
    def stats(**options):
        return mq.quality_statistics(**{"problem_type": "binary", "labels": LABELS, "predictions": PREDICTIONS,
                                        "n_bootstrap": 10, **options})

    with pytest.raises(UserError, match="labels has 10 values but predictions has 9"):
        stats(predictions=PREDICTIONS[:-1])
    with pytest.raises(UserError, match="problem_type must be one of binary, multiclass, regression; got 'ranking'"):
        stats(problem_type="ranking")
    with pytest.raises(UserError, match="binary problem has two classes, but labels and predictions hold 3"):
        stats(labels=[0, 1, 2] * 3 + [0])
    with pytest.raises(UserError, match="probabilities="):  # scores passed as predictions
        stats(predictions=SCORES)
    with pytest.raises(UserError, match="regression needs numbers, but labels holds strings such as 'a'"):
        mq.quality_statistics(problem_type="regression", labels=["a", "b"], predictions=[1.0, 2.0])
    with pytest.raises(UserError, match=r"labels\[1\] is missing"):
        mq.quality_statistics(problem_type="regression", labels=[1.0, float("nan")], predictions=[1.0, 2.0])
    with pytest.raises(UserError, match=r"labels mixes strings and other values: labels\[0\] is 'yes' but labels\[2\] is 1$"):
        stats(labels=["yes", "no", 1, "no"], predictions=["yes"] * 4)
    with pytest.raises(UserError, match="labels are strings but predictions are numbers"):
        stats(labels=["yes", "no"], predictions=[1, 0])
    with pytest.raises(UserError, match="positive_label 2 is not one of the classes 0, 1"):
        stats(positive_label=2)
    with pytest.raises(UserError, match=r"only one class \(1\)"):
        stats(labels=[1] * 10, predictions=[1] * 10)
    with pytest.raises(UserError, match="for binary problems only"):
        mq.quality_statistics(problem_type="regression", labels=[1.0, 2.0], predictions=[1.0, 2.0],
                              probabilities=[0.1, 0.2])
    with pytest.raises(UserError, match="probabilities has 2 values but labels has 10"):
        stats(probabilities=[0.1, 0.2])
    with pytest.raises(UserError, match="n_bootstrap must be a whole number of at least 1; got 0"):
        stats(n_bootstrap=0)
    with pytest.raises(UserError, match="labels and predictions are empty"):
        stats(labels=[], predictions=[])

    baseline = stats()
    constraints = mq.suggest_constraints(baseline)
    with pytest.raises(UserError, match="tolerance names 'mae', which is not a binary metric"):
        mq.suggest_constraints(baseline, tolerance={"mae": 0.1})
    with pytest.raises(UserError, match="tolerance must be a number of at least 0; got -0.1"):
        mq.suggest_constraints(baseline, tolerance=-0.1)
    with pytest.raises(UserError, match="statistics is not model-quality statistics"):
        mq.suggest_constraints({"version": 0.0, "features": []})
    with pytest.raises(UserError, match="constraints have no binary_classification_constraints.*regression_constraints"):
        mq.check_quality(baseline, {"regression_constraints": {}}, labels=LABELS, predictions=PREDICTIONS)
    def only(metric, operator):
        return {"binary_classification_constraints": {metric: {"threshold": 0.5, "comparison_operator": operator}}}

    with pytest.raises(UserError, match="f1.comparison_operator must be one of LessThanThreshold, .*; got 'Below'"):
        mq.check_quality(baseline, only("f1", "Below"), labels=LABELS, predictions=PREDICTIONS)
    with pytest.raises(UserError, match="constraints check auc but no probabilities were given"):
        mq.check_quality(baseline, only("auc", "LessThanThreshold"), labels=LABELS, predictions=PREDICTIONS)
    with pytest.raises(UserError, match="positive_label 0 differs from the baseline's 1"):
        mq.check_quality(baseline, constraints, labels=LABELS, predictions=PREDICTIONS, positive_label=0)
