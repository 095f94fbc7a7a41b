"""Model quality: the metrics of a deployed model's predictions merged with ground truth, for a
baseline and for later windows, with thresholds derived from the baseline.

SageMaker Model Monitor's model quality monitor merges captured predictions with ground truth,
computes a problem type's metrics (binary classification, multiclass classification or regression)
for a baseline and writes them to `statistics.json` (each metric a value and a standard
deviation), suggests `constraints.json` (a threshold and a comparison operator per metric), and on
each later window reports the metrics whose values cross their thresholds as violations.

We write the same two files and the same violations, with three differences:

- Each metric carries a seeded 95% percentile-bootstrap confidence interval beside its standard
  deviation (the standard deviation of the same bootstrap distribution; `standard_deviation` and
  `confidence_interval` are None below two rows). A resample is a row of counts per column: with
  at most `fmeval.stats._FEW_LEVELS` distinct combinations of label, prediction (and score, for
  AUC), a column is a combination and the counts are one multinomial draw (the same bootstrap
  distribution, at a cost that does not grow with the rows), as `fmeval.stats` does; otherwise
  the rows are drawn with replacement and counted. Every metric of a block of resamples is then a
  few vector operations (AUC by Mann-Whitney, from cumulative counts of the negatives).
- **Decision rule.** A constrained metric of a window is a violation only when both hold:
  its value crosses the threshold (`LessThanThreshold`: value < threshold, and so on), *and* the
  window's 95% confidence interval lies entirely on the bad side of the baseline's value (for
  metrics where higher is better, the interval's upper end is below the baseline value; where lower
  is better, its lower end is above it). A drop that the window's own noise could explain is not an
  alert. When the baseline statistics hold no value for the metric, the threshold is the reference.
  A window of fewer than two rows has no interval, and so no violation. The percentile bootstrap
  is too narrow on windows of a few rows (one negative label, predicted positive, gives a false
  positive rate of 1 with the interval [1, 1]), so a metric that is a proportion (accuracy,
  precision, recall, the true- and false-positive rates) also needs its exact (Clopper-Pearson)
  95% interval, of its successes among its trials, on the bad side of the baseline.
- Undefined metrics are `None`, never a crash and never a violation: AUC of a window with one
  class, binary precision with no positive predictions, recall and the true-positive rate with no
  positive labels, the false-positive rate with no negative labels, r2 with constant labels.
  Resamples in which a metric is undefined are left out of its interval. In the weighted
  multiclass metrics a class that has labels but is never predicted counts with precision 0
  (scikit-learn's `zero_division=0`, Spark's convention, which Model Monitor uses).

Point values come from scikit-learn. Metrics per problem type (see `METRICS`):

- binary: accuracy, precision, recall, f1, true_positive_rate (= recall), false_positive_rate,
  and auc when `probabilities` (scores of the positive class) are given;
- multiclass: accuracy, weighted_precision, weighted_recall, weighted_f1 (weights: label counts);
- regression: mae, mse, rmse, r2.

Inputs: `labels` and `predictions` are class labels (strings, or numbers; both of one kind) for
classification, numbers for regression. For binary problems scores are not predictions: pass the
predicted labels as `predictions` and the scores of the positive class as `probabilities`.
`positive_label` defaults to the larger of the two classes; the baseline's positive label is
recorded in its statistics (`dataset.positive_label`) and reused by `check_quality`.

`suggest_constraints` derives thresholds from the baseline: for metrics where higher is better,
baseline − tolerance; for the false-positive rate, baseline + tolerance; for the errors (mae, mse,
rmse), whose scale is the data's, the tolerance is relative: baseline × (1 + tolerance).
"""
from __future__ import annotations

import math
import numbers
import operator
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from fmeval.errors import UserError
from fmeval.stats import _FEW_LEVELS, CONFIDENCE, percentile_interval

PROBLEM_TYPES = ("binary", "multiclass", "regression")
METRICS = {
    "binary": ("accuracy", "precision", "recall", "f1", "auc", "true_positive_rate", "false_positive_rate"),
    "multiclass": ("accuracy", "weighted_precision", "weighted_recall", "weighted_f1"),
    "regression": ("mae", "mse", "rmse", "r2"),
}
LOWER_IS_BETTER = frozenset({"mae", "mse", "rmse", "false_positive_rate"})
RELATIVE_TOLERANCE = frozenset({"mae", "mse", "rmse"})  # threshold = baseline * (1 + tolerance)
DEFAULT_TOLERANCE = 0.05
VERSION = 0.0
# Resample in blocks of about this many draws: blocks that stay in the processor's cache are
# several times faster than larger ones.
_BLOCK_DRAWS = 1 << 19
_PREFIX = {"binary": "binary_classification", "multiclass": "multiclass_classification", "regression": "regression"}
LESS_THAN, GREATER_THAN = "LessThanThreshold", "GreaterThanThreshold"
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    LESS_THAN: operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
    GREATER_THAN: operator.gt,
    "GreaterThanOrEqualToThreshold": operator.ge,
}

Sampler = Callable[[np.ndarray], dict[str, np.ndarray]]


# ---------------------------------------------------------------------------------------------
# public API


def quality_statistics(
    *,
    problem_type: str,
    labels: Any,
    predictions: Any,
    probabilities: Any = None,
    positive_label: Any = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> dict:
    """Model-quality statistics of `predictions` against ground-truth `labels`, in Model
    Monitor's `statistics.json` layout: `{"version": 0.0, "dataset": {"item_count": n, ...},
    "<problem>_metrics": {metric: {"value", "standard_deviation", "confidence_interval"}, ...,
    "confusion_matrix": {label: {predicted: count}}}}` (no confusion matrix for regression).

    `problem_type` is one of `PROBLEM_TYPES`. `probabilities` (binary only) are scores of the
    positive class, for AUC. `positive_label` (binary only) defaults to the larger of the two
    classes. The standard deviation and the 95% interval come from `n_bootstrap` resamples of the
    rows, seeded by `seed`; undefined values are None (see the module docstring).
    """
    problem = _problem_type(problem_type)
    _check_bootstrap(n_bootstrap, seed)
    truth, predicted, scores = _inputs(labels, predictions, probabilities)
    if truth.size == 0:
        raise UserError("labels and predictions are empty: statistics need at least one row")
    return _statistics(problem, truth, predicted, scores, positive_label, n_bootstrap, seed)


def suggest_constraints(statistics: dict, *, tolerance: float | Mapping[str, float] = DEFAULT_TOLERANCE) -> dict:
    """Model Monitor's `constraints.json` for a baseline's `statistics` (as `quality_statistics`
    writes them): `{"version": 0.0, "<problem>_constraints": {metric: {"threshold": t,
    "comparison_operator": "LessThanThreshold" | "GreaterThanThreshold"}}}`.

    Where higher is better, t = baseline − tolerance and a value below t is a violation; for the
    false-positive rate, t = baseline + tolerance; for the errors mae, mse and rmse the tolerance
    is relative, t = baseline × (1 + tolerance), because their scale is the data's. `tolerance` is
    one number for every metric, or a dict of metric -> tolerance (metrics it leaves out get
    `DEFAULT_TOLERANCE`). Metrics whose baseline value is undefined get no constraint.
    """
    problem, section = _metrics_section(statistics, "statistics")
    tolerances = _tolerances(tolerance, problem)
    suggested = {}
    for metric in METRICS[problem]:
        entry = section.get(metric)
        value = entry.get("value") if isinstance(entry, Mapping) else None
        if not _is_number(value):
            continue
        slack = tolerances.get(metric, DEFAULT_TOLERANCE)
        if metric in RELATIVE_TOLERANCE:
            suggested[metric] = {"threshold": float(value) * (1 + slack), "comparison_operator": GREATER_THAN}
        elif metric in LOWER_IS_BETTER:
            suggested[metric] = {"threshold": float(value) + slack, "comparison_operator": GREATER_THAN}
        else:
            suggested[metric] = {"threshold": float(value) - slack, "comparison_operator": LESS_THAN}
    return {"version": VERSION, f"{_PREFIX[problem]}_constraints": suggested}


def check_quality(
    statistics_of_baseline: dict,
    constraints: dict,
    *,
    labels: Any,
    predictions: Any,
    probabilities: Any = None,
    positive_label: Any = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> dict:
    """Check a window of `labels` and `predictions` against `constraints` derived from a baseline.

    Returns `{"status": "Completed" | "CompletedWithViolations" | "NoData", "statistics": the
    window's `quality_statistics`, "violations": [{"metric_name", "constraint_check_type",
    "description"}], "metrics": {metric: value} (defined values only), "decisions": {metric:
    {"value", "ci", "baseline", "threshold", "comparison_operator", "violated", "significant"}}}`.

    A metric is violated when its value crosses the threshold and its 95% interval lies entirely
    on the bad side of the baseline's value (`significant`); see the module docstring. The problem
    type and the positive label are the baseline's; an empty window is `NoData`.
    """
    problem, baseline = _metrics_section(statistics_of_baseline, "statistics_of_baseline")
    checks = _constraint_section(constraints, problem)
    if "auc" in checks and probabilities is None:
        raise UserError("constraints check auc but no probabilities were given: pass the scores of the "
                        "positive class as probabilities=, or drop the auc constraint")
    _check_bootstrap(n_bootstrap, seed)
    truth, predicted, scores = _inputs(labels, predictions, probabilities)
    if truth.size == 0:
        return {"status": "NoData", "statistics": {"version": VERSION, "dataset": {"item_count": 0}},
                "violations": [], "metrics": {}, "decisions": {}}
    if problem == "binary":
        dataset = statistics_of_baseline.get("dataset")
        recorded = dataset.get("positive_label") if isinstance(dataset, Mapping) else None
        if recorded is not None and positive_label is not None and positive_label != recorded:
            raise UserError(f"positive_label {_shown(positive_label)} differs from the baseline's {_shown(recorded)}: "
                            "a window is checked with the baseline's positive label")
        positive_label = recorded if recorded is not None else positive_label
    statistics = _statistics(problem, truth, predicted, scores, positive_label, n_bootstrap, seed)
    window = statistics[f"{_PREFIX[problem]}_metrics"]
    proportions = _proportions(problem, truth, predicted, statistics["dataset"].get("positive_label"))

    violations, decisions = [], {}
    for metric, rule in checks.items():
        entry = window.get(metric) or {}
        value, ci, spread = entry.get("value"), entry.get("confidence_interval"), entry.get("standard_deviation")
        base_entry = baseline.get(metric)
        base = base_entry.get("value") if isinstance(base_entry, Mapping) else None
        base = float(base) if _is_number(base) else None
        comparison, threshold = rule["comparison_operator"], float(rule["threshold"])
        worse_below = comparison.startswith("Less")
        reference = base if base is not None else threshold
        crossed = value is not None and _OPERATORS[comparison](value, threshold)
        exact = _exact_interval(*proportions[metric]) if metric in proportions else None

        def beyond(interval: Sequence[float]) -> bool:
            return interval[1] < reference if worse_below else interval[0] > reference

        significant = ci is not None and beyond(ci) and (exact is None or beyond(exact))
        violated = bool(crossed and significant)
        decisions[metric] = {"value": value, "ci": ci, "exact_ci": exact, "baseline": base, "threshold": threshold,
                             "comparison_operator": comparison, "violated": violated, "significant": bool(significant)}
        if violated:
            side = "below" if worse_below else "above"
            against = f"the baseline value {base:.4g}" if base is not None else "the threshold"
            violations.append({
                "metric_name": metric,
                "constraint_check_type": comparison,
                "description": f"Metric {metric} with {value:.4g} +/- {spread:.4g} was {comparison} '{threshold:.4g}', "
                               f"and its {CONFIDENCE:.0%} confidence interval [{ci[0]:.4g}, {ci[1]:.4g}] "
                               f"lies entirely {side} {against}"
                               + (f", as does its exact binomial interval [{exact[0]:.4g}, {exact[1]:.4g}] "
                                  f"({proportions[metric][0]} of {proportions[metric][1]})" if exact else ""),
            })
    return {
        "status": "CompletedWithViolations" if violations else "Completed",
        "statistics": statistics,
        "violations": violations,
        "metrics": {m: e["value"] for m, e in window.items()
                    if m != "confusion_matrix" and e.get("value") is not None},
        "decisions": decisions,
    }


# ---------------------------------------------------------------------------------------------
# validation


def _problem_type(problem_type: Any) -> str:
    if problem_type not in PROBLEM_TYPES:
        raise UserError(f"problem_type must be one of {', '.join(PROBLEM_TYPES)}; got {problem_type!r}")
    return problem_type


def _check_bootstrap(n_bootstrap: Any, seed: Any) -> None:
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, numbers.Integral) or n_bootstrap < 1:
        raise UserError(f"n_bootstrap must be a whole number of at least 1; got {_shown(n_bootstrap)}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise UserError(f"seed must be a whole number of at least 0; got {_shown(seed)}")


def _shown(value: Any) -> str:
    """repr of a value as the user wrote it (1, 'yes'), not numpy's (np.int64(1))."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _column(values: Any, name: str) -> np.ndarray:
    """One-dimensional array of numbers or strings; says which row is missing or of another kind."""
    if values is None:
        raise UserError(f"{name} is required")
    if isinstance(values, (str, bytes, Mapping)) or not hasattr(values, "__len__"):
        raise UserError(f"{name} must be a list or an array of values, not {type(values).__name__}")
    if hasattr(values, "to_numpy"):  # pandas
        values = values.to_numpy()
    if isinstance(values, np.ndarray) and values.dtype.kind != "O":
        array = values
    else:
        items = list(values)
        strings = [isinstance(v, str) for v in items]
        if any(strings) and not all(strings):
            other = strings.index(not strings[0])
            raise UserError(f"{name} mixes strings and other values: {name}[0] is {_shown(items[0])} "
                            f"but {name}[{other}] is {_shown(items[other])}")
        array = np.asarray(items)
    if array.ndim != 1:
        raise UserError(f"{name} must be one-dimensional (one value a row); got shape {array.shape}")
    if array.dtype.kind not in "biufU":
        bad = next((i for i, v in enumerate(array.tolist()) if not isinstance(v, (numbers.Real, str))), 0)
        raise UserError(f"{name} must hold numbers or strings: {name}[{bad}] is {_shown(array[bad])}")
    if array.dtype.kind == "f" and np.isnan(array).any():
        raise UserError(f"{name}[{int(np.flatnonzero(np.isnan(array))[0])}] is missing (NaN): every row needs a value")
    return array


def _inputs(labels: Any, predictions: Any, probabilities: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    truth, predicted = _column(labels, "labels"), _column(predictions, "predictions")
    if truth.size != predicted.size:
        raise UserError(f"labels has {truth.size} values but predictions has {predicted.size}: "
                        "each row needs a label and a prediction")
    scores = None
    if probabilities is not None:
        scores = _column(probabilities, "probabilities")
        if scores.size != truth.size:
            raise UserError(f"probabilities has {scores.size} values but labels has {truth.size}: one score a row")
        if scores.dtype.kind not in "biuf":
            raise UserError(f"probabilities must be numbers (scores of the positive class); got {_shown(scores[0])}")
        if not np.isfinite(scores).all():
            raise UserError(f"probabilities[{int(np.flatnonzero(~np.isfinite(scores))[0])}] is not a finite number")
        scores = scores.astype(np.float64)
    return truth, predicted, scores


def _numbers(values: np.ndarray, name: str) -> np.ndarray:
    if values.dtype.kind not in "biuf":
        raise UserError(f"a regression needs numbers, but {name} holds strings such as {_shown(values[0])} ({name}[0])")
    values = values.astype(np.float64)
    if not np.isfinite(values).all():
        raise UserError(f"{name}[{int(np.flatnonzero(~np.isfinite(values))[0])}] is not a finite number")
    return values


def _metrics_section(statistics: Any, name: str) -> tuple[str, dict]:
    found = [p for p in PROBLEM_TYPES
             if isinstance(statistics, Mapping) and isinstance(statistics.get(f"{_PREFIX[p]}_metrics"), Mapping)]
    if len(found) != 1:
        keys = ", ".join(f"{_PREFIX[p]}_metrics" for p in PROBLEM_TYPES)
        raise UserError(f"{name} is not model-quality statistics: it needs exactly one of {keys} "
                        "(as quality_statistics writes them)")
    return found[0], statistics[f"{_PREFIX[found[0]]}_metrics"]


def _constraint_section(constraints: Any, problem: str) -> dict:
    key = f"{_PREFIX[problem]}_constraints"
    if not isinstance(constraints, Mapping):
        raise UserError(f"constraints must be a dict (constraints.json); got {type(constraints).__name__}")
    if not isinstance(constraints.get(key), Mapping):
        others = [k for k in constraints if str(k).endswith("_constraints")]
        found = f"; they hold {', '.join(map(str, others))}" if others else ""
        raise UserError(f"constraints have no {key}, but the baseline statistics are for a {problem} problem{found}")
    checks = {}
    for metric, rule in constraints[key].items():
        if metric not in METRICS[problem]:
            raise UserError(f"constraints: {key} names {metric!r}, which is not a {problem} metric; "
                            f"known: {', '.join(METRICS[problem])}")
        if not isinstance(rule, Mapping) or not _is_number(rule.get("threshold")):
            raise UserError(f"constraints: {key}.{metric} needs a finite number as threshold; got {rule!r}")
        if rule.get("comparison_operator") not in _OPERATORS:
            raise UserError(f"constraints: {key}.{metric}.comparison_operator must be one of "
                            f"{', '.join(_OPERATORS)}; got {rule.get('comparison_operator')!r}")
        checks[metric] = rule
    return checks


def _tolerances(tolerance: Any, problem: str) -> dict[str, float]:
    def valid(value: Any, where: str) -> float:
        if not _is_number(value) or value < 0:
            raise UserError(f"{where} must be a number of at least 0; got {_shown(value)}")
        return float(value)

    if isinstance(tolerance, Mapping):
        unknown = [m for m in tolerance if m not in METRICS[problem]]
        if unknown:
            raise UserError(f"tolerance names {unknown[0]!r}, which is not a {problem} metric; "
                            f"known: {', '.join(METRICS[problem])}")
        return {m: valid(v, f"tolerance[{m!r}]") for m, v in tolerance.items()}
    slack = valid(tolerance, "tolerance")
    return {m: slack for m in METRICS[problem]}


# ---------------------------------------------------------------------------------------------
# statistics


def _statistics(problem: str, truth: np.ndarray, predicted: np.ndarray, scores: np.ndarray | None,
                positive_label: Any, n_bootstrap: int, seed: int) -> dict:
    n = truth.size
    dataset: dict[str, Any] = {"item_count": int(n)}
    confusion = None
    if problem == "regression":
        if positive_label is not None or scores is not None:
            raise UserError("positive_label and probabilities are for binary problems only; "
                            "a regression takes labels and predictions")
        y, f = _numbers(truth, "labels"), _numbers(predicted, "predictions")
        values = _regression_values(y, f)
        groups, n_groups, sampler = _regression_sampler(y, f)
    else:
        classes = _classes(truth, predicted)
        if problem == "binary":
            classes, positive = _positive(classes, positive_label)
        y, f = np.searchsorted(classes, truth), np.searchsorted(classes, predicted)  # class indices
        if problem == "binary":
            dataset["positive_label"] = positive.item() if isinstance(positive, np.generic) else positive
            is_true, is_predicted = truth == positive, predicted == positive
            values = _binary_values(is_true, is_predicted, scores)
            groups, n_groups, sampler = _binary_sampler(is_true, is_predicted, scores)
        else:
            if positive_label is not None or scores is not None:
                raise UserError("positive_label and probabilities are for binary problems only; "
                                "a multiclass problem takes class labels as labels and predictions")
            values = _multiclass_values(y, f)
            groups, n_groups, sampler = _multiclass_sampler(y, f, classes.size)
        k = classes.size
        counts = np.bincount(y * k + f, minlength=k * k).reshape(k, k)
        names = [_key(c) for c in classes]
        confusion = {names[i]: {names[j]: int(counts[i, j]) for j in range(k)} for i in range(k)}

    samples = _bootstrap(groups, n_groups, n, sampler, n_bootstrap, np.random.default_rng(seed)) if n >= 2 else {}
    section: dict[str, Any] = {}
    for metric in METRICS[problem]:
        if metric in values:
            section[metric] = _entry(values[metric], samples.get(metric))
    if confusion is not None:
        section["confusion_matrix"] = confusion
    return {"version": VERSION, "dataset": dataset, f"{_PREFIX[problem]}_metrics": section}


def _entry(value: float | None, samples: np.ndarray | None) -> dict:
    entry: dict[str, Any] = {"value": value, "standard_deviation": None, "confidence_interval": None}
    if value is None or samples is None:
        return entry
    defined = samples[np.isfinite(samples)]
    if defined.size >= 2:
        entry["standard_deviation"] = float(np.std(defined, ddof=1))
        entry["confidence_interval"] = list(percentile_interval(defined))
    return entry


def _key(value: Any) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value.item() if isinstance(value, np.generic) else value)


def _classes(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """The sorted classes of labels and predictions together."""
    if (truth.dtype.kind == "U") != (predicted.dtype.kind == "U"):
        kinds = {True: "strings", False: "numbers"}
        raise UserError(f"labels are {kinds[truth.dtype.kind == 'U']} but predictions are "
                        f"{kinds[predicted.dtype.kind == 'U']} (e.g. {_shown(truth[0])} and {_shown(predicted[0])}): "
                        "predictions must be class labels of the same kind")
    return np.unique(np.concatenate([truth, predicted]))


def _positive(classes: np.ndarray, positive_label: Any) -> tuple[np.ndarray, Any]:
    """The classes of a binary problem (the positive label among them) and the positive label."""
    shown = ", ".join(_shown(c) for c in classes[:5]) + (", ..." if classes.size > 5 else "")
    if classes.size > 2:
        raise UserError(f"a binary problem has two classes, but labels and predictions hold {classes.size}: {shown}. "
                        "Use problem_type='multiclass' for more classes; predictions must be class labels "
                        "(pass scores of the positive class as probabilities=)")
    if positive_label is None:
        if classes.size < 2:
            raise UserError(f"only one class ({shown}) appears in labels and predictions: "
                            "pass positive_label= to say which class is positive")
        return classes, classes[-1]
    if not isinstance(positive_label, (str, numbers.Real)) or isinstance(positive_label, str) != (classes.dtype.kind == "U"):
        raise UserError(f"positive_label {_shown(positive_label)} is not of the labels' kind: the classes are {shown}")
    if classes.size == 2 and positive_label not in classes.tolist():
        raise UserError(f"positive_label {_shown(positive_label)} is not one of the classes {shown}")
    if positive_label not in classes.tolist():  # a window with negatives only
        classes = np.sort(np.append(classes, positive_label))
    return classes, positive_label


def _proportions(problem: str, truth: np.ndarray, predicted: np.ndarray, positive: Any) -> dict[str, tuple[int, int]]:
    """The successes and trials of each metric that is a proportion (for its exact interval)."""
    if problem == "regression":
        return {}
    if problem == "multiclass":
        return {"accuracy": (int(np.count_nonzero(truth == predicted)), truth.size)}
    is_true, is_predicted = truth == positive, predicted == positive
    tp, fp = int(np.count_nonzero(is_true & is_predicted)), int(np.count_nonzero(~is_true & is_predicted))
    fn = int(np.count_nonzero(is_true & ~is_predicted))
    tn = truth.size - tp - fp - fn
    return {"accuracy": (tp + tn, truth.size), "precision": (tp, tp + fp), "recall": (tp, tp + fn),
            "true_positive_rate": (tp, tp + fn), "false_positive_rate": (fp, fp + tn)}


def _exact_interval(successes: int, trials: int) -> list[float] | None:
    """The Clopper-Pearson interval of a proportion at CONFIDENCE (scipy's exact binomial test)."""
    if trials == 0:
        return None
    from scipy.stats import binomtest

    interval = binomtest(successes, trials).proportion_ci(confidence_level=CONFIDENCE, method="exact")
    return [float(interval.low), float(interval.high)]


def _defined(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _binary_values(is_true: np.ndarray, is_predicted: np.ndarray, scores: np.ndarray | None) -> dict:
    from sklearn import metrics as sk

    y, f = is_true.astype(int), is_predicted.astype(int)
    tn, fp, _, _ = sk.confusion_matrix(y, f, labels=[0, 1]).ravel()
    recall = _defined(sk.recall_score(y, f, zero_division=np.nan))
    values = {
        "accuracy": float(sk.accuracy_score(y, f)),
        "precision": _defined(sk.precision_score(y, f, zero_division=np.nan)),
        "recall": recall,
        "f1": _defined(sk.f1_score(y, f, zero_division=np.nan)),
        "true_positive_rate": recall,
        "false_positive_rate": float(fp / (fp + tn)) if fp + tn else None,
    }
    if scores is not None:
        values["auc"] = float(sk.roc_auc_score(y, scores)) if 0 < y.sum() < y.size else None
    return values


def _multiclass_values(y: np.ndarray, f: np.ndarray) -> dict:
    from sklearn import metrics as sk

    return {
        "accuracy": float(sk.accuracy_score(y, f)),
        "weighted_precision": float(sk.precision_score(y, f, average="weighted", zero_division=0)),
        "weighted_recall": float(sk.recall_score(y, f, average="weighted", zero_division=0)),
        "weighted_f1": float(sk.f1_score(y, f, average="weighted", zero_division=0)),
    }


def _regression_values(y: np.ndarray, f: np.ndarray) -> dict:
    from sklearn import metrics as sk

    return {
        "mae": float(sk.mean_absolute_error(y, f)),
        "mse": float(sk.mean_squared_error(y, f)),
        "rmse": float(sk.root_mean_squared_error(y, f)),
        "r2": float(sk.r2_score(y, f)) if np.ptp(y) > 0 else None,  # constant labels: undefined
    }


# ---------------------------------------------------------------------------------------------
# bootstrap: every resample is a row of counts per group of identical rows; a sampler turns a
# block of such rows into each metric's value per resample


def _resampled_counts(groups: np.ndarray | None, n_columns: int, n: int, n_bootstrap: int,
                      rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Blocks of resamples (one a row) counting how often each column is drawn when n rows are
    drawn with replacement; row i is in column `groups[i]`, or column i when `groups` is None."""
    if n_columns <= _FEW_LEVELS:  # as fmeval.stats does: counts of few levels are a multinomial
        frequencies = (np.ones(n) if groups is None else np.bincount(groups, minlength=n_columns)) / n
        rows = max(1, _BLOCK_DRAWS // n_columns)
        for start in range(0, n_bootstrap, rows):
            yield rng.multinomial(n, frequencies, size=min(rows, n_bootstrap - start)).astype(np.float64)
        return
    rows = max(1, _BLOCK_DRAWS // n)
    for start in range(0, n_bootstrap, rows):
        drawn = rng.integers(0, n, size=(min(rows, n_bootstrap - start), n))
        if groups is not None:
            drawn = groups[drawn]
        drawn += (np.arange(drawn.shape[0]) * n_columns)[:, None]  # resample r counts in r * n_columns + column
        counts = np.bincount(drawn.ravel(), minlength=drawn.shape[0] * n_columns)
        yield counts.reshape(-1, n_columns).astype(np.float64)


def _bootstrap(groups: np.ndarray | None, n_groups: int, n: int, sampler: Sampler, n_bootstrap: int,
               rng: np.random.Generator) -> dict[str, np.ndarray]:
    blocks = [sampler(counts) for counts in _resampled_counts(groups, n_groups, n, n_bootstrap, rng)]
    return {metric: np.concatenate([block[metric] for block in blocks]) for metric in blocks[0]}


def _ratio(numerator: np.ndarray, denominator: np.ndarray, undefined: float = np.nan) -> np.ndarray:
    out = np.full(np.broadcast(numerator, denominator).shape, undefined)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _groups(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The resampling columns for rows with these keys, in key order, and each row's column. With
    few distinct keys a column is a key (rows drawn as one multinomial per resample); otherwise a
    column is a row of the sorted rows (`None`: resample the sorted rows themselves, which draws
    from the same distribution, since every row is equally likely)."""
    ordered = np.sort(keys)
    starts = np.flatnonzero(np.diff(ordered, prepend=ordered[0] - 1)) if ordered.size else ordered
    if starts.size <= _FEW_LEVELS:
        unique = ordered[starts]
        return unique, np.searchsorted(unique, keys)
    return ordered, None


def _runs(values: np.ndarray) -> np.ndarray:
    """Where each run of equal values starts, in a sorted array."""
    return np.flatnonzero(np.diff(values, prepend=values[0] - 1)) if values.size else values


def _binary_sampler(is_true: np.ndarray, is_predicted: np.ndarray,
                    scores: np.ndarray | None) -> tuple[np.ndarray | None, int, Sampler]:
    """Columns: negative labels first, then positive ones; each by score, then prediction."""
    if scores is None:
        level = np.zeros(is_true.size, np.int64)
    else:
        level = np.unique(scores, return_inverse=True)[1].reshape(-1)  # distinct scores, in order
    n_levels = int(level.max()) + 1
    columns, groups = _groups((is_true.astype(np.int64) * n_levels + level) * 2 + is_predicted)
    truth = columns >= 2 * n_levels
    called = (columns % 2 == 1).astype(np.float64)
    n_negative = int(np.count_nonzero(~truth))  # the negative labels' columns come first
    both = 0 < n_negative < columns.size
    if scores is not None and both:
        column_level = (columns // 2) % n_levels
        negative_levels, positive_levels = column_level[:n_negative], column_level[n_negative:]
        # per positive column, how many negative columns score lower (or the same): nondecreasing,
        # so the positive columns with none below are a prefix, left out of the sums
        ranks = [np.searchsorted(negative_levels, positive_levels, side) for side in ("left", "right")]
        if np.array_equal(*ranks):  # no negative shares a score with a positive
            ranks = ranks[:1]
        prefixes = [int(np.count_nonzero(rank == 0)) for rank in ranks]

    def sample(counts: np.ndarray) -> dict[str, np.ndarray]:
        negative, positive = counts[:, :n_negative], counts[:, n_negative:]
        negatives, positives = negative.sum(axis=1), positive.sum(axis=1)
        tp = np.einsum("ij,j->i", positive, called[n_negative:])
        fp = np.einsum("ij,j->i", negative, called[:n_negative])
        fn, tn = positives - tp, negatives - fp
        recall = _ratio(tp, positives)
        out = {
            "accuracy": (tp + tn) / (positives + negatives),
            "precision": _ratio(tp, tp + fp),
            "recall": recall,
            "f1": _ratio(2 * tp, 2 * tp + fp + fn),
            "true_positive_rate": recall,
            "false_positive_rate": _ratio(fp, negatives),
        }
        if scores is not None and both:  # Mann-Whitney: pairs ordered right, ties counting half
            below = np.cumsum(negative, axis=1)  # below[:, j]: drawn negatives in columns 0..j
            pairs = sum(np.einsum("ij,ij->i", positive[:, skip:], np.take(below, rank[skip:] - 1, axis=1))
                        for rank, skip in zip(ranks, prefixes))
            out["auc"] = _ratio(pairs / len(ranks), positives * negatives)
        elif scores is not None:
            out["auc"] = np.full(counts.shape[0], np.nan)
        return out

    return groups, columns.size, sample


def _multiclass_sampler(y: np.ndarray, f: np.ndarray, k: int) -> tuple[np.ndarray | None, int, Sampler]:
    """Columns: cells of the confusion matrix (or rows), by label, then prediction."""
    columns, groups = _groups(y.astype(np.int64) * k + f)
    true, predicted = columns // k, columns % k
    true_starts = _runs(true)
    by_predicted = np.argsort(predicted, kind="stable")
    predicted_starts = _runs(predicted[by_predicted])
    predicted_classes = predicted[by_predicted][predicted_starts]
    diagonal = np.flatnonzero(true == predicted)
    diagonal_starts = _runs(true[diagonal])

    def sample(counts: np.ndarray) -> dict[str, np.ndarray]:
        rows = counts.shape[0]
        support, called, hits = np.zeros((rows, k)), np.zeros((rows, k)), np.zeros((rows, k))
        support[:, true[true_starts]] = np.add.reduceat(counts, true_starts, axis=1)
        called[:, predicted_classes] = np.add.reduceat(counts[:, by_predicted], predicted_starts, axis=1)
        if diagonal.size:
            hits[:, true[diagonal][diagonal_starts]] = np.add.reduceat(counts[:, diagonal], diagonal_starts, axis=1)
        total = support.sum(axis=1)
        accuracy = hits.sum(axis=1) / total
        return {
            "accuracy": accuracy,
            "weighted_precision": (support * _ratio(hits, called, 0.0)).sum(axis=1) / total,
            "weighted_recall": accuracy,  # the support-weighted mean of per-class recall
            "weighted_f1": (support * _ratio(2 * hits, support + called, 0.0)).sum(axis=1) / total,
        }

    return groups, columns.size, sample


def _regression_sampler(y: np.ndarray, f: np.ndarray) -> tuple[None, int, Sampler]:
    """Each row its own group; r2's total sum of squares from sums of the centred labels."""
    centred, error = y - y.mean(), f - y
    features = (np.abs(error), error**2, centred, centred**2)

    def sample(counts: np.ndarray) -> dict[str, np.ndarray]:
        total = counts.sum(axis=1)
        absolute, squared, level, square = (np.einsum("ij,j->i", counts, feature) for feature in features)
        mse = squared / total
        spread = square - level * level / total
        spread = np.where(spread > 1e-12 * square, spread, 0.0)  # a resample of one label value: r2 undefined
        return {"mae": absolute / total, "mse": mse, "rmse": np.sqrt(mse), "r2": 1 - _ratio(squared, spread)}

    return None, y.size, sample
