"""`BiasFrame`: Clarify's bias metrics of labels and predictions in memory, as pandas frames.

    frame = BiasFrame(y_true=df.approved, y_pred=model.predict(X), sensitive_features=df.gender,
                      label_values=[1], facet_values=["female"])
    frame.pre_training()             # CI, DPL, KL, JS, LP, TVD, KS (and CDDL with group_variable)
    frame.post_training(ci=True)     # DPPL, DI, ..., each with a 95% bootstrap interval
    frame.by_group                   # counts, rates, confusion matrix, accuracy, precision, recall, F1
    frame.difference(), frame.ratio()

Groups and outcomes are chosen as `fmeval analyze` chooses them (`fmeval.bias.groups`): labels
(and predicted labels) are binarised by `label_values` (the positive values, or a threshold on a
continuous label), and each facet's sensitive group is `facet_values` (values, or a threshold),
or, without it, each of its values against the rest. A row is in group d (the sensitive group) or
a (the rest); differences are a's minus d's and ratios d's over a's, Clarify's signs (DPPL =
difference()["selection_rate"], DI = ratio()["selection_rate"]).

The confidence intervals are 95% percentile-bootstrap intervals over `n_bootstrap` seeded
resamples of the rows. Every metric but the flip test is a function of the counts per cell (facet
group x label x prediction x subgroup), so a resample is one multinomial draw of those counts: the
same distribution as resampling rows, at a cost that does not grow with the data. The flip test
(a nearest-neighbour model on the features) gets no interval.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from fmeval.bias import metrics as bias
from fmeval.bias.groups import Selection, _facet_groups, _maximum, _one_outcome, _threshold, is_continuous, select
from fmeval.errors import UserError
from fmeval.stats import CONFIDENCE

ERR_LENGTHS = "y_true, y_pred, sensitive_features, group_variable and features must have one entry per row"
ERR_NO_PREDICTIONS = "post-training metrics need predictions: pass y_pred"
ERR_MISSING = "{count} row(s) have no value in {column} (rows {rows}); drop or fill them first"
NO_FLIP_TEST_FEATURES = ("FlipTest needs at least one feature column besides the facet, label and prediction "
                         "columns: there is none to find each row's nearest neighbours on")
NO_FT_INTERVAL = "the flip test gets no bootstrap interval (it refits a nearest-neighbour model)"
CI_COLUMNS = ("value", "ci_low", "ci_high")
RATES = ("label_positive_rate", "selection_rate", "accuracy", "precision", "recall", "specificity",
         "false_positive_rate", "f1")
"""The by-group columns that `difference()` and `ratio()` compare."""


def _series(values: Any, name: str) -> pd.Series:
    if isinstance(values, pd.Series):
        return values.reset_index(drop=True)
    array = np.asarray(values)
    if array.ndim != 1:
        raise UserError(f"{name} must be one-dimensional, got shape {array.shape}")
    return pd.Series(array, name=name)


def _facet_columns(sensitive_features: Any) -> pd.DataFrame:
    if isinstance(sensitive_features, pd.DataFrame):
        return sensitive_features.reset_index(drop=True)
    if isinstance(sensitive_features, Mapping):
        return pd.DataFrame({str(k): _series(v, str(k)) for k, v in sensitive_features.items()})
    column = _series(sensitive_features, "sensitive_feature")
    return column.rename(column.name if column.name is not None else "sensitive_feature").to_frame()


class BiasFrame:
    """Clarify's pre- and post-training bias metrics, per facet group, of labels and predictions."""

    def __init__(
        self,
        *,
        y_true: Any,
        sensitive_features: Any,
        y_pred: Any = None,
        predicted_positive: Any = None,
        label_values: Any = (1,),
        facet_values: Any = None,
        group_variable: Any = None,
        features: Any = None,
        label_type: str | None = None,
        facet_type: str | Mapping[str, str | None] | None = None,
    ):
        """
        y_true: the observed labels. y_pred: the predicted labels (in the labels' own values),
        for the post-training metrics; or predicted_positive instead: the predictions already
        binarised (True for the positive outcome, e.g. a probability above a threshold).
        sensitive_features: one column (a Series or array), or
        several (a DataFrame or a mapping of name to column), each a facet.
        label_values: the positive label values (a list), or a threshold (a number) on a
        continuous label. facet_values: each facet's sensitive group, values or a threshold; a
        mapping of facet name to that when there are several facets; None: each value of the
        facet against the rest. group_variable: the subgroups of CDDL and CDDPL. features:
        numeric feature columns, for the flip test (FT). label_type, facet_type: `categorical`
        or `continuous`, to override smclarify's rule (facet_type: one for all facets, or a mapping).
        """
        self.y_true = _series(y_true, "label")
        self.facets = _facet_columns(sensitive_features)
        if y_pred is not None and predicted_positive is not None:
            raise UserError("pass y_pred (predicted labels) or predicted_positive (binarised predictions), not both")
        self.y_pred = None if y_pred is None else _series(y_pred, "predicted_label")
        positive_predictions = None if predicted_positive is None else _series(predicted_positive, "predicted_positive")
        self.group = None if group_variable is None else _series(group_variable, "group_variable")
        self.features = None if features is None else pd.DataFrame(features).reset_index(drop=True)
        n = len(self.y_true)
        if n == 0:
            raise UserError("y_true is empty: there are no rows to measure bias on")
        others = [self.facets, self.y_pred, positive_predictions, self.group, self.features]
        if any(other is not None and len(other) != n for other in others):
            raise UserError(f"{ERR_LENGTHS}; y_true has {n}, the others "
                            f"{', '.join(str(len(o)) for o in others if o is not None)}")
        for column, values in [("y_true", self.y_true), ("y_pred", self.y_pred), ("group_variable", self.group),
                               *((f"sensitive_features[{c!r}]", self.facets[c]) for c in self.facets.columns)]:
            if values is not None and values.isna().any():
                missing = np.flatnonzero(values.isna().to_numpy())
                raise UserError(ERR_MISSING.format(count=len(missing), column=column,
                                                   rows=", ".join(map(str, missing[:20]))))
        self.label_values = list(label_values) if isinstance(label_values, (tuple, list)) else label_values
        label = select(self.y_true, self.label_values, "label_values", kind=label_type)
        if label.mask.all() or not label.mask.any():
            raise UserError(_one_outcome(self.y_true, self.label_values, label_type, bool(label.mask.all())))
        self.label_description = label.description
        self.positive = label.mask
        self.predicted = None if self.y_pred is None else binarised_predictions(
            self.y_true, self.y_pred, self.label_values, label_type)
        if positive_predictions is not None:
            self.predicted = positive_predictions.to_numpy(dtype=bool)
        if isinstance(facet_values, Mapping):
            unknown = sorted(set(map(str, facet_values)) - set(map(str, self.facets.columns)))
            if unknown:
                raise UserError(f"facet_values names {', '.join(unknown)}, which are not among sensitive_features "
                                f"({', '.join(map(str, self.facets.columns))})")
        self.groups: list[tuple[str, Selection]] = []
        for column in self.facets.columns:
            chosen = facet_values.get(column) if isinstance(facet_values, Mapping) else facet_values
            kind = facet_type.get(column) if isinstance(facet_type, Mapping) else facet_type
            spec = {"value_or_threshold": chosen, "type": kind}
            for selection in _facet_groups(self.facets[column], spec, str(column)):
                self.groups.append((str(column), selection))

    # -- the metrics --------------------------------------------------------------------------------
    def counts(self, d: np.ndarray) -> bias.Counts:
        """The cell counts of one facet group (d: its rows)."""
        return bias.Counts.of(d, self.positive, self.predicted, group=self.group)

    def computed(self, stage: str, d: np.ndarray, facet: str) -> dict[str, Any]:
        """Each metric of `stage` ("pre" or "post") for the sensitive group `d`, computed when called."""
        if stage == "pre":
            return bias.pre_training(self.counts(d))
        if self.predicted is None:
            raise UserError(ERR_NO_PREDICTIONS)
        metrics = bias.post_training(self.counts(d))
        metrics["FT"] = lambda: self._flip_test(d, facet)
        return metrics

    def _flip_test(self, d: np.ndarray, facet: str) -> float:
        if self.features is None:
            raise bias.MetricUndefined("FlipTest needs the features: pass features=")
        features = self.features.drop(columns=[facet], errors="ignore")
        if features.shape[1] == 0:
            raise bias.MetricUndefined(NO_FLIP_TEST_FEATURES)
        if features.shape[1] != features.select_dtypes([np.number, bool]).shape[1]:
            raise bias.MetricUndefined("FlipTest does not support non-numeric columns")
        return bias.flip_test(features.to_numpy(dtype=float), d, self.predicted)

    def results(self, stage: str, metrics: Sequence[str] | str = "all") -> list[tuple[str, Selection, dict[str, float | str]]]:
        """Per facet group, each chosen metric's value, or the reason it is undefined on these data."""
        available = bias.PRE_TRAINING if stage == "pre" else bias.POST_TRAINING
        chosen = _chosen(metrics, available)
        return [(facet, selection, bias.evaluate(self.computed(stage, selection.mask, facet), chosen))
                for facet, selection in self.groups]

    def pre_training(self, metrics: Sequence[str] | str = "all", *, ci: bool = False, n_bootstrap: int = 1000,
                     seed: int = 0) -> pd.DataFrame:
        """Pre-training metrics: a row per facet group (facet, value_or_threshold), a column per metric;
        with `ci=True` a column per (metric, value / ci_low / ci_high). An undefined metric is NaN, with
        its reason in `.attrs["errors"]`."""
        return self._table("pre", metrics, ci, n_bootstrap, seed)

    def post_training(self, metrics: Sequence[str] | str = "all", *, ci: bool = False, n_bootstrap: int = 1000,
                      seed: int = 0) -> pd.DataFrame:
        """Post-training metrics (needs y_pred; FT needs features), laid out as `pre_training`'s."""
        if self.predicted is None:
            raise UserError(ERR_NO_PREDICTIONS)
        return self._table("post", metrics, ci, n_bootstrap, seed)

    def _table(self, stage: str, metrics: Sequence[str] | str, ci: bool, n_bootstrap: int, seed: int) -> pd.DataFrame:
        if ci and (isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int) or n_bootstrap < 1):
            raise UserError(f"n_bootstrap must be an integer >= 1, got {n_bootstrap!r}")
        rows, errors, index = [], {}, []
        for facet, selection, values in self.results(stage, metrics):
            index.append((facet, selection.description))
            intervals = self._intervals(stage, selection.mask, list(values), n_bootstrap, seed) if ci else {}
            row: dict[Any, float] = {}
            for name, value in values.items():
                if isinstance(value, str):
                    errors[(facet, selection.description, name)] = value
                number = np.nan if isinstance(value, str) else value
                if ci:
                    low, high = intervals.get(name, (np.nan, np.nan))
                    row.update({(name, "value"): number, (name, "ci_low"): low, (name, "ci_high"): high})
                else:
                    row[name] = number
            rows.append(row)
        table = pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["facet", "value_or_threshold"]))
        if ci:
            table.columns = pd.MultiIndex.from_tuples(table.columns, names=["metric", "statistic"])
            if "FT" in {name for name, _ in table.columns}:
                table.attrs["notes"] = [NO_FT_INTERVAL]
        table.attrs["errors"] = errors
        return table

    def _intervals(self, stage: str, d: np.ndarray, names: list[str], n_bootstrap: int,
                   seed: int) -> dict[str, tuple[float, float]]:
        """Each metric's 95% percentile interval over multinomial resamples of the cell counts; a
        metric undefined in a resample counts as missing there (NaN) and none if it always is."""
        counts = self.counts(d)
        subgroups = sorted(counts.subgroups)
        cells = np.stack([counts.subgroups[name] for name in subgroups]) if subgroups else counts.table[None]
        n = int(cells.sum())
        draws = np.random.default_rng(seed).multinomial(n, cells.reshape(-1) / n, size=n_bootstrap)
        names = [name for name in names if name != "FT"]
        samples = np.full((n_bootstrap, len(names)), np.nan)
        for b, draw in enumerate(draws):
            tables = draw.reshape(cells.shape)
            resampled = bias.Counts(tables.sum(axis=0), dict(zip(subgroups, tables)) if subgroups else {})
            metrics = bias.pre_training(resampled) if stage == "pre" else bias.post_training(resampled)
            for j, name in enumerate(names):
                try:
                    samples[b, j] = metrics[name]()
                except bias.MetricUndefined:
                    pass
        tail = (1 - CONFIDENCE) / 2 * 100
        out = {}
        for j, name in enumerate(names):
            finite = samples[:, j][~np.isnan(samples[:, j])]
            if finite.size:
                low, high = np.percentile(finite, [tail, 100 - tail])
                out[name] = (float(low), float(high))
        return out

    def analysis_section(self, stage: str, metrics: Sequence[str] | str = "all", *,
                         label_name: str | None = None) -> dict[str, Any]:
        """analysis.json's `pre_training_bias_metrics` (stage "pre") or `post_training_bias_metrics`
        ("post"): per facet, per group, each metric's value or error, in Clarify's layout."""
        if stage == "post" and self.predicted is None:
            raise UserError(ERR_NO_PREDICTIONS)
        descriptions = bias.PRE_TRAINING if stage == "pre" else bias.POST_TRAINING
        facets: dict[str, list[dict[str, Any]]] = {}
        for facet, selection, values in self.results(stage, metrics):
            facets.setdefault(facet, []).append({"value_or_threshold": selection.description,
                                                 "metrics": described(values, descriptions)})
        return {"label": str(label_name if label_name is not None else self.y_true.name),
                "label_value_or_threshold": self.label_description, "facets": facets}

    # -- by group ----------------------------------------------------------------------------------
    @property
    def by_group(self) -> pd.DataFrame:
        """Per facet group and side (`sensitive`: d, `rest`: a): count, proportion of all rows, the
        positive label rate; with predictions the selection rate, TP, FP, FN, TN, accuracy,
        precision, recall, specificity, false-positive rate and F1 (x/0 is 0/0 = 0 as in smclarify)."""
        rows, index = [], []
        n = len(self.y_true)
        for facet, selection in self.groups:
            counts = self.counts(selection.mask)
            for side, group in (("sensitive", bias.D), ("rest", bias.A)):
                size = counts.n(group)
                row: dict[str, float] = {"count": size, "proportion": size / n,
                                         "label_positive_rate": bias.divide(counts.labels(group)[1], size)}
                if self.predicted is not None:
                    c = counts.confusion(group)
                    precision, recall = bias.divide(c["TP"], c["TP"] + c["FP"]), bias.divide(c["TP"], c["TP"] + c["FN"])
                    row.update({
                        "selection_rate": bias.divide(c["TP"] + c["FP"], size), **c,
                        "accuracy": bias.divide(c["TP"] + c["TN"], size), "precision": precision, "recall": recall,
                        "specificity": bias.divide(c["TN"], c["TN"] + c["FP"]),
                        "false_positive_rate": bias.divide(c["FP"], c["TN"] + c["FP"]),
                        "f1": 2 * bias.divide(precision * recall, precision + recall)})
                rows.append(row)
                index.append((facet, selection.description, side))
        return pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["facet", "value_or_threshold",
                                                                                "group"]))

    def difference(self) -> pd.DataFrame:
        """Per facet group, each rate of the rest (a) minus the sensitive group's (d)."""
        table = self._rates()
        return table.xs("rest", level="group") - table.xs("sensitive", level="group")

    def ratio(self) -> pd.DataFrame:
        """Per facet group, each rate of the sensitive group (d) over the rest's (a); x/0 is inf, 0/0 NaN."""
        table = self._rates()
        with np.errstate(divide="ignore", invalid="ignore"):
            return table.xs("sensitive", level="group") / table.xs("rest", level="group")

    def _rates(self) -> pd.DataFrame:
        table = self.by_group
        return table[[c for c in RATES if c in table.columns]].astype(float)

    # -- Clarify's shapes ---------------------------------------------------------------------------
    def bias_basic_stats(self, stage: str = "post") -> dict[str, list[dict[str, Any]]]:
        """smclarify's `bias_basic_stats` per facet: the sensitive group's proportion of the rows, its
        [positive, negative] label shares and (post-training) its [TP, FP, FN, TN] fractions."""
        out: dict[str, list[dict[str, Any]]] = {}
        for facet, selection in self.groups:
            counts = self.counts(selection.mask)
            size = counts.n(bias.D)
            positive = bias.divide(counts.labels(bias.D)[1], size)
            metrics = [{"name": "proportion", "description": "Proportion of examples in sensitive facet.",
                        "value": size / len(self.y_true)},
                       {"name": "observed_label_distribution",
                        "description": "Distribution of observed label outcomes for sensitive facet",
                        "value": [positive, 1 - positive]}]
            if stage == "post" and self.predicted is not None:
                c = counts.confusion(bias.D)
                metrics.append({"name": "confusion_matrix", "description": "Fractions of TP, FP, FN, TN.",
                                "value": [bias.divide(c[k], size) for k in ("TP", "FP", "FN", "TN")]})
            out.setdefault(facet, []).append({"value_or_threshold": selection.description, "metrics": metrics})
        return out

    def model_performance_report(self) -> dict[str, Any]:
        """smclarify's `model_performance_report` over all rows: accuracy, rates, precision, F1, the
        binary confusion matrix ([TP, FP, FN, TN] fractions) and, for a categorical label, the
        confusion matrix of the label values (rows: observed, columns: predicted)."""
        if self.predicted is None:
            raise UserError(ERR_NO_PREDICTIONS)
        c = bias.Counts.of(np.zeros(len(self.y_true), dtype=bool), self.positive, self.predicted).confusion(bias.A)
        tp, fp, fn, tn = c["TP"], c["FP"], c["FN"], c["TN"]
        n = tp + fp + fn + tn
        precision, recall = bias.divide(tp, tp + fp), bias.divide(tp, tp + fn)
        values = [
            ("Accuracy", "Proportion of inputs assigned the correct predicted label by the model.", bias.divide(tp + tn, n)),
            ("Proportion of Positive Predictions in Labels", "Proportion of input assigned in positive predicted label.",
             bias.divide(tp + fp, n)),
            ("Proportion of Negative Predictions in Labels", "Proportion of input assigned the negative predicted label.",
             bias.divide(tn + fn, n)),
            ("True Positive Rate / Recall", "Proportion of inputs with positive observed label correctly assigned the "
             "positive predicted label.", recall),
            ("True Negative Rate / Specificity", "Proportion of inputs with negative observed label correctly assigned "
             "the negative predicted label.", bias.divide(tn, tn + fp)),
            ("Acceptance Rate / Precision", "Proportion of inputs with positive predicted label that actually have a "
             "positive observed label.", precision),
            ("Rejection Rate", "Proportion of inputs with negative predicted label that actually have a negative "
             "observed label.", bias.divide(tn, tn + fn)),
            ("Conditional Acceptance", "Ratio between the positive observed labels and positive predicted labels.",
             bias.divide(tp + fn, tp + fp)),
            ("Conditional Rejection", "Ratio between the negative observed labels and negative predicted labels.",
             bias.divide(tn + fp, tn + fn)),
            ("F1 Score", "Harmonic mean of precision and recall.", 2 * bias.divide(precision * recall, precision + recall)),
        ]
        report: dict[str, Any] = {
            "label": str(self.y_true.name), "model_performance_metrics": [
                {"name": name, "description": description, "value": value} for name, description, value in values],
            "binary_confusion_matrix": [bias.divide(v, n) for v in (tp, fp, fn, tn)]}
        if not is_continuous(self.y_true, self.label_values):
            labels = sorted(pd.unique(self.y_true))
            table = pd.crosstab(pd.Categorical(self.y_true, categories=labels),
                                pd.Categorical(self.y_pred, categories=labels), dropna=False)
            report["confusion_matrix"] = {str(t): {str(p): float(table.loc[t, p]) for p in labels} for t in labels}
        return report


def binarised_predictions(labels: pd.Series, predicted: pd.Series, label_values: Any,
                          label_type: str | None = None) -> np.ndarray:
    """Predicted labels binarised as the labels are: the same values, or the same threshold (whose
    interval spans both columns, as smclarify's)."""
    upper = _maximum(pd.concat([labels, predicted])) if _threshold(label_values) is not None else None
    kind = "continuous" if is_continuous(labels, label_values, label_type) else "categorical"
    return select(predicted, label_values, "predicted labels", kind=kind, required=False, upper=upper).mask


def described(values: dict[str, float | str], descriptions: dict[str, str]) -> list[dict[str, Any]]:
    """Clarify's layout: name, description and value ("Infinity" as a string, as Clarify writes it),
    or value null and the error for a metric undefined on these data."""
    def entry(value: float | str) -> dict[str, Any]:
        if isinstance(value, str):
            return {"value": None, "error": value}
        return {"value": str(value).replace("inf", "Infinity") if math.isinf(value) else value}

    return [{"name": name, "description": descriptions[name], **entry(value)} for name, value in values.items()]


def _chosen(metrics: Sequence[str] | str, available: dict[str, str]) -> list[str]:
    """The metrics asked for, in Clarify's (alphabetical) order."""
    if metrics == "all":
        return sorted(available)
    if isinstance(metrics, str):
        metrics = [metrics]
    unknown = [m for m in metrics if m not in available]
    if unknown:
        raise UserError(f"unknown bias metric(s) {', '.join(unknown)}; known: {', '.join(available)}")
    return sorted(set(metrics))
