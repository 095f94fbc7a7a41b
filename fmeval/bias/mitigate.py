"""Bias mitigation of scikit-learn-compatible classifiers, with a before/after report.

The rows are split, stratified by (facet group, label) and seeded, into training, validation and
test rows (60/20/20). The unmitigated model and the mitigated one are fitted on the training rows;
a candidate is judged on the validation rows and the chosen one reported on the test rows, which
played no part in choosing it. Mitigations are fairlearn's:
- `exponentiated-gradient` and `grid-search` (reductions: the model refitted under a
  DemographicParity or EqualizedOdds constraint with a difference bound);
- `threshold-optimizer` (a threshold per group on the fitted model's scores; it needs the facet at
  prediction time).

`search` is Fair Bayesian Optimization's idea: a multi-objective search (Optuna's NSGA-II sampler,
seeded) over the model's regularisation `C` (when it has one) and the constraint's difference
bound, maximising accuracy and minimising the distance of a chosen post-training metric (DPPL, DI,
DAR, ...) from its ideal (1 for DI, 0 otherwise). The candidates on the Pareto front are those no
other beats on both; the chosen point is the front's most accurate candidate whose distance is at
most `max_bias`, else the front's least biased (the report says which rule chose it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fmeval.bias.frame import BiasFrame
from fmeval.bias.groups import select
from fmeval.bias.names import CONSTRAINTS, SEARCH_METRICS
from fmeval.bias.names import MITIGATION_METHODS as METHODS
from fmeval.errors import UserError

REPORTED = ("DPPL", "DI", "DAR", "DRR", "RD", "SD", "AD", "TE")
N_BOOTSTRAP = 1000
C_RANGE = (1e-3, 1e2)
BOUND_RANGE = (0.001, 0.2)
DEFAULT_BOUND = 0.01


def ideal(metric: str) -> float:
    return 1.0 if metric == "DI" else 0.0


@dataclass
class Candidate:
    """One fitted model and how it did on the rows it was judged on."""

    name: str
    params: dict[str, Any]
    accuracy: float
    metrics: pd.DataFrame
    """A row per reported metric: value, ci_low, ci_high."""
    bias: float
    """|metric - ideal| of the chosen metric."""
    model: Any = field(repr=False, default=None)
    on_front: bool = False


@dataclass
class Mitigation:
    baseline: Candidate
    """The unmitigated model, on the test rows."""
    chosen: Candidate
    """The mitigated model chosen, on the test rows."""
    candidates: list[Candidate]
    """Every model tried, on the validation rows (one without search)."""
    rule: str
    settings: dict[str, Any]
    test_frame: BiasFrame
    split: dict[str, int]
    test_rows: list[int]
    """The data's row numbers (from 0) of the test rows, in the order predicted (exponentiated gradient's and the
    threshold optimizer's seeded random choices follow the rows' order)."""


def _constraint(name: str, bound: float) -> Any:
    from fairlearn.reductions import DemographicParity, EqualizedOdds

    return (DemographicParity if name == "demographic-parity" else EqualizedOdds)(difference_bound=bound)


def _fit(method: str, constraint: str, estimator: Any, X: pd.DataFrame, y: np.ndarray, facet: pd.Series,
         bound: float, seed: int) -> Any:
    from fairlearn.postprocessing import ThresholdOptimizer
    from fairlearn.reductions import ExponentiatedGradient, GridSearch
    from sklearn.base import clone

    if method == "threshold-optimizer":
        fitted = clone(estimator).fit(X, y)
        prediction = "predict_proba" if hasattr(fitted, "predict_proba") else "decision_function"
        model = ThresholdOptimizer(estimator=fitted, constraints=constraint.replace("-", "_"), prefit=True,
                                   predict_method=prediction)
        return model.fit(X, y, sensitive_features=facet)
    if method == "grid-search":
        model = GridSearch(clone(estimator), constraints=_constraint(constraint, bound), grid_size=10)
    else:
        model = ExponentiatedGradient(clone(estimator), constraints=_constraint(constraint, bound))
    return model.fit(X, y, sensitive_features=facet)


def predict(model: Any, X: pd.DataFrame, facet: pd.Series, seed: int) -> np.ndarray:
    """Predicted labels; the randomised predictors (exponentiated gradient, threshold optimizer) seeded."""
    from fairlearn.postprocessing import ThresholdOptimizer
    from fairlearn.reductions import ExponentiatedGradient

    if isinstance(model, ThresholdOptimizer):
        return np.asarray(model.predict(X, sensitive_features=facet, random_state=seed))
    if isinstance(model, ExponentiatedGradient):
        return np.asarray(model.predict(X, random_state=seed))
    return np.asarray(model.predict(X))


def _judged(name: str, params: dict[str, Any], model: Any, X: pd.DataFrame, y: np.ndarray, facet: pd.Series,
            facet_values: Any, metric: str, seed: int) -> tuple[Candidate, BiasFrame]:
    predicted = predict(model, X, facet, seed).astype(int)
    frame = BiasFrame(y_true=y, y_pred=predicted, sensitive_features=facet, facet_values=facet_values,
                      label_type="categorical")  # 0/1, however few rows
    names = sorted({*REPORTED, metric})
    table = frame.post_training(names, ci=True, n_bootstrap=N_BOOTSTRAP, seed=seed).iloc[0]
    metrics = table.unstack("statistic")[["value", "ci_low", "ci_high"]]
    value = metrics.loc[metric, "value"]
    distance = abs(value - ideal(metric)) if np.isfinite(value) else np.inf
    return Candidate(name, params, float(np.mean(predicted == y)), metrics, float(distance), model), frame


def pareto_front(candidates: list[Candidate]) -> list[Candidate]:
    """The candidates no other is at least as good as on both objectives and better on one."""
    def dominated(c: Candidate) -> bool:
        return any(o.accuracy >= c.accuracy and o.bias <= c.bias and (o.accuracy > c.accuracy or o.bias < c.bias)
                   for o in candidates)

    return [c for c in candidates if not dominated(c)]


def mitigate(frame: pd.DataFrame, *, label: str, facet: str, facet_values: Any, label_values: Any = (1,),
             method: str = "exponentiated-gradient", constraint: str = "demographic-parity", estimator: Any = None,
             search: bool = False, n_trials: int = 20, metric: str = "DPPL", max_bias: float = 0.1,
             seed: int = 0) -> Mitigation:
    """Mitigate the bias of `estimator` (default: logistic regression) against `facet`'s group
    `facet_values`; see the module's docstring."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    if method not in METHODS:
        raise UserError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if constraint not in CONSTRAINTS:
        raise UserError(f"constraint must be one of {', '.join(CONSTRAINTS)}, got {constraint!r}")
    if metric not in SEARCH_METRICS:
        raise UserError(f"metric must be one of {', '.join(SEARCH_METRICS)}, got {metric!r}")
    if search and method == "threshold-optimizer":
        raise UserError("--search tunes a reduction's difference bound and the model's C: use --method "
                        "exponentiated-gradient or grid-search")
    if search and (isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 2):
        raise UserError(f"n_trials must be an integer >= 2, got {n_trials!r}")
    if facet_values is None:
        raise UserError("--facet-values: name the sensitive group (value(s) of the facet column)")
    for name, what in ((label, "--label"), (facet, "--facet")):
        if name not in frame.columns:
            raise UserError(f"{what}: no column {name!r} in the data; columns: {', '.join(map(str, frame.columns))}")
    features = [c for c in frame.columns if c not in (label, facet)]
    text = [c for c in features if not pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c])]
    if text:
        raise UserError(f"feature column(s) {', '.join(map(repr, text))} are not numeric; encode them first")
    if not features:
        raise UserError("there is no feature column besides the label and the facet")
    if frame[[label, facet, *features]].isna().any().any():
        raise UserError("the data have missing values; drop or fill them first")
    y = select(frame[label], list(label_values) if isinstance(label_values, (list, tuple)) else label_values,
               "--label-values", required=False, kind="categorical").mask.astype(int)
    if y.min() == y.max():
        raise UserError(f"label {label!r}: every row has the same outcome; there is nothing to learn")
    group = select(frame[facet], facet_values, f"facet {facet!r}").mask
    strata = group.astype(int) * 2 + y
    if np.bincount(strata, minlength=4).min() < 5:
        raise UserError("each (facet group, label) pair needs at least 5 rows to split into training, validation "
                        "and test rows")
    rows = np.arange(len(frame))
    train, rest = train_test_split(rows, test_size=0.4, random_state=seed, stratify=strata)
    validation, test = train_test_split(rest, test_size=0.5, random_state=seed, stratify=strata[rest])
    X, facet_column = frame[features].reset_index(drop=True), frame[facet].reset_index(drop=True)
    part = {name: (X.iloc[r].reset_index(drop=True), y[r], facet_column.iloc[r].reset_index(drop=True))
            for name, r in (("train", train), ("validation", validation), ("test", test))}
    estimator = estimator if estimator is not None else LogisticRegression(max_iter=1000)
    Xt, yt, ft = part["train"]

    def candidate(name: str, params: dict[str, Any], on: str) -> tuple[Candidate, BiasFrame]:
        model = _fit(method, constraint, _with_c(estimator, params.get("C")), Xt, yt, ft,
                     params.get("difference_bound", DEFAULT_BOUND), seed)
        return _judged(name, params, model, *part[on], facet_values, metric, seed)

    if search:
        candidates = _search(candidate, estimator, n_trials, seed)
    else:
        params = {} if method == "threshold-optimizer" else {"difference_bound": DEFAULT_BOUND}
        candidates = [candidate("mitigated", params, "validation")[0]]
    front = pareto_front(candidates)
    for c in front:
        c.on_front = True
    within = [c for c in front if c.bias <= max_bias]
    if within:
        picked = max(within, key=lambda c: (c.accuracy, -c.bias))
        rule = f"the most accurate on the Pareto front with |{metric} - {ideal(metric):g}| <= {max_bias:g}"
    else:
        picked = min(front, key=lambda c: (c.bias, -c.accuracy))
        rule = f"none on the front had |{metric} - {ideal(metric):g}| <= {max_bias:g}: the least biased on the front"
    from sklearn.base import clone

    plain = clone(estimator).fit(Xt, yt)
    baseline, _ = _judged("unmitigated", {}, plain, *part["test"], facet_values, metric, seed)
    chosen, test_frame = _judged(picked.name, picked.params, picked.model, *part["test"], facet_values, metric, seed)
    settings = {"method": method, "constraint": constraint, "metric": metric, "max_bias": max_bias, "seed": seed,
                "search": search, "n_trials": n_trials if search else None, "features": features, "label": label,
                "facet": facet, "facet_values": facet_values, "label_values": list(np.atleast_1d(label_values)),
                "estimator": repr(estimator)}
    return Mitigation(baseline, chosen, candidates, rule, settings, test_frame,
                      {name: len(r) for name, r in (("train", train), ("validation", validation), ("test", test))},
                      [int(r) for r in test])


def _with_c(estimator: Any, c: float | None) -> Any:
    from sklearn.base import clone

    return clone(estimator) if c is None else clone(estimator).set_params(C=c)


def _search(candidate: Any, estimator: Any, n_trials: int, seed: int) -> list[Candidate]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tunes_c = "C" in estimator.get_params()
    candidates: list[Candidate] = []

    def objective(trial: Any) -> tuple[float, float]:
        params = {"difference_bound": trial.suggest_float("difference_bound", *BOUND_RANGE, log=True)}
        if tunes_c:
            params["C"] = trial.suggest_float("C", *C_RANGE, log=True)
        judged, _ = candidate(f"trial {trial.number}", params, "validation")
        candidates.append(judged)
        return judged.accuracy, judged.bias

    sampler = optuna.samplers.NSGAIISampler(seed=seed, population_size=max(2, min(10, n_trials // 2)))
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(objective, n_trials=n_trials)
    return candidates
