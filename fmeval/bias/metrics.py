"""Clarify-compatible bias metrics, as functions of counts.

Every metric but the flip test is a function of how many rows fall in each cell of a small
table: facet group (a, the rest, or d, the sensitive group) x label (negative, positive) x
predicted label (negative, positive), per subgroup of the group variable when there is one.
`Counts` is that table. Counts of disjoint parts of a dataset add up, so a dataset larger than
memory is counted block by block (or on Ray workers) and gives exactly the metrics of the whole.

Formulas and conventions are those of smclarify 0.5 (SageMaker Clarify's open-source library,
src/smclarify/bias/metrics at commit 024329d):
- labels are binarised before anything else: the positive label values (or the values above a
  threshold) against the rest, so KL, JS, LP, TVD and KS compare the two groups' shares of
  negative and positive labels;
- those distributions keep only the values that occur in both groups, without renormalising,
  and are undefined ("no instance of common facet") when none does;
- JS is 0.5 [KL(Pa || P) + KL(Pd || P)] with the mixture P = (Pa + Pd) / 2;
- x/0 is +inf (or -inf), 0/0 is 0, and the difference of two +inf is 0;
- the flip test trains k-nearest-neighbours (k = 5, or 1 when a has 9 rows or fewer) on a's rows
  and predicted labels, and FT = (#(1 -> 0) - #(0 -> 1)) / n_d over d's rows.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Callable

from numpy.typing import ArrayLike
import numpy as np

from fmeval.bias.names import POST_TRAINING, PRE_TRAINING  # noqa: F401  (the tables, as bias.PRE_TRAINING)

from fmeval.errors import UserError

logger = logging.getLogger(__name__)
A, D = 0, 1  # the facet axis: the rest, and the sensitive group
NEGATIVE, POSITIVE = 0, 1
NO_COMMON_VALUE = "No instance of common facet found, dataset may be too small"



class MetricUndefined(ValueError):
    """The metric has no value on these data (e.g. an empty group); the reason is the message."""


def divide(numerator: float, denominator: float) -> float:
    """Clarify's division: x/0 is +-inf, 0/0 is 0."""
    if denominator == 0:
        return 0.0 if numerator == 0 else math.copysign(math.inf, numerator)
    return numerator / denominator


def subtract(x: float, y: float) -> float:
    """Clarify's difference: inf - inf is 0."""
    if math.isinf(x) and x == y:
        return 0.0
    return x - y


@dataclass
class Counts:
    """Rows per (facet group, label, predicted label), in total and per subgroup; `+` merges."""

    table: np.ndarray = field(default_factory=lambda: np.zeros((2, 2, 2), dtype=np.int64))
    """table[facet group, label, predicted label]; without predictions every row counts as predicted negative."""
    subgroups: dict[str, np.ndarray] = field(default_factory=dict)
    """The same table for each value of the group variable (for CDDL and CDDPL)."""

    @classmethod
    def of(cls, d: np.ndarray, positive: np.ndarray, predicted: np.ndarray | None = None, *,
           group: ArrayLike | None = None) -> Counts:
        """Count boolean masks (sensitive group, positive label, positive prediction), and an
        optional group variable (any values)."""
        cell = _cell(d, positive, predicted)
        counts = cls(np.bincount(cell, minlength=8).reshape(2, 2, 2).astype(np.int64))
        if group is not None:
            import pandas as pd

            codes, names = pd.factorize(group if hasattr(group, "dtype") else np.asarray(group), use_na_sentinel=False)
            per_group = np.bincount(codes * 8 + cell, minlength=8 * len(names)).reshape(len(names), 2, 2, 2)
            counts.subgroups = {str(name): per_group[i].astype(np.int64) for i, name in enumerate(names)}
        return counts

    def __add__(self, other: Counts) -> Counts:
        subgroups = {name: table.copy() for name, table in self.subgroups.items()}
        for name, table in other.subgroups.items():
            subgroups[name] = subgroups[name] + table if name in subgroups else table.copy()
        return Counts(self.table + other.table, subgroups)

    def n(self, group: int) -> int:
        return int(self.table[group].sum())

    def labels(self, group: int) -> np.ndarray:
        """[negative, positive] label counts of a facet group."""
        return self.table[group].sum(axis=1)

    def predictions(self, group: int) -> np.ndarray:
        return self.table[group].sum(axis=0)

    def confusion(self, group: int) -> dict[str, int]:
        t = self.table[group]
        return {"TP": int(t[1, 1]), "FP": int(t[0, 1]), "FN": int(t[1, 0]), "TN": int(t[0, 0])}


def _cell(d: np.ndarray, positive: np.ndarray, predicted: np.ndarray | None) -> np.ndarray:
    cell = np.asarray(d, dtype=np.int64) * 4 + np.asarray(positive, dtype=np.int64) * 2
    if predicted is not None:
        cell += np.asarray(predicted, dtype=np.int64)
    return cell


def _both_groups(counts: Counts) -> tuple[int, int]:
    n_a, n_d = counts.n(A), counts.n(D)
    if n_d == 0:
        raise MetricUndefined("Facet set is empty")
    if n_a == 0:
        raise MetricUndefined("Negated facet set is empty")
    return n_a, n_d


# -- distributions of label values ---------------------------------------------------------------------
def aligned_nonzero(*histograms: np.ndarray) -> list[np.ndarray]:
    """Each histogram as a distribution, restricted to the values counted in all of them (aligned,
    not renormalised), as smclarify's pdfs_aligned_nonzero."""
    keep = np.all([np.asarray(h) > 0 for h in histograms], axis=0)
    if not keep.any():
        raise MetricUndefined(NO_COMMON_VALUE)
    return [np.asarray(h, dtype=float)[keep] / np.sum(h) for h in histograms]


def kl(histogram_a: np.ndarray, histogram_d: np.ndarray) -> float:
    """KL(Pa || Pd) = sum Pa log(Pa / Pd) (natural log); negative when values were dropped."""
    pa, pd_ = aligned_nonzero(histogram_a, histogram_d)
    return float(np.sum(pa * np.log(pa / pd_)))


def js(histogram_a: np.ndarray, histogram_d: np.ndarray) -> float:
    """JS = 0.5 [KL(Pa || P) + KL(Pd || P)], P = (Pa + Pd) / 2."""
    pa, pd_ = aligned_nonzero(histogram_a, histogram_d)
    mixture = (pa + pd_) / 2
    return float(0.5 * (np.sum(pa * np.log(pa / mixture)) + np.sum(pd_ * np.log(pd_ / mixture))))


def lp(histogram_a: np.ndarray, histogram_d: np.ndarray, order: float = 2) -> float:
    """||Pa - Pd||_p."""
    pa, pd_ = aligned_nonzero(histogram_a, histogram_d)
    return float(np.linalg.norm(pa - pd_, order))


def cdd(subgroups: dict[str, np.ndarray], axis: int) -> float:
    """CDD = sum_i n_i DD_i / sum_i n_i, DD_i = (share of subgroup i's rejections in d) - (share
    of its acceptances in d); acceptance is the label (axis 1) or the prediction (axis 2)."""
    if not subgroups:
        raise MetricUndefined("Group variable is empty or not provided")
    # in a fixed order, so that the sum is the same bit for bit however the counts were merged
    tables = np.stack([subgroups[name] for name in sorted(subgroups)])  # subgroup, facet, label, predicted
    outcome = tables.sum(axis=3 if axis == 1 else 2)  # subgroup, facet, outcome
    accepted, rejected = outcome[:, :, POSITIVE], outcome[:, :, NEGATIVE]
    if accepted.sum() == 0:
        raise MetricUndefined("No positive labels in set")
    if rejected.sum() == 0:
        raise MetricUndefined("No negative labels in set")
    share_accepted = np.divide(accepted[:, D], accepted.sum(axis=1), out=np.zeros(len(tables)),
                               where=accepted.sum(axis=1) > 0)
    share_rejected = np.divide(rejected[:, D], rejected.sum(axis=1), out=np.zeros(len(tables)),
                               where=rejected.sum(axis=1) > 0)
    sizes = tables.sum(axis=(1, 2, 3))
    return divide(float(np.sum(sizes * (share_rejected - share_accepted))), float(sizes.sum()))


# -- pre-training ------------------------------------------------------------------------------------
def pre_training(counts: Counts) -> dict[str, Callable[[], float]]:
    """Each pre-training metric of these counts, computed when called (a metric may be undefined)."""
    def dpl() -> float:
        n_a, n_d = _both_groups(counts)
        return counts.labels(A)[POSITIVE] / n_a - counts.labels(D)[POSITIVE] / n_d

    def ci() -> float:
        n_a, n_d = _both_groups(counts)
        return float(n_a - n_d) / (n_a + n_d)

    a, d = counts.labels(A), counts.labels(D)
    return {
        "CI": ci,
        "DPL": dpl,
        "KL": lambda: kl(a, d),
        "JS": lambda: js(a, d),
        "LP": lambda: lp(a, d, 2),
        "TVD": lambda: 0.5 * lp(a, d, 1),
        "KS": lambda: lp(a, d, np.inf),
        "CDDL": lambda: cdd(counts.subgroups, axis=1),
    }


# -- post-training -----------------------------------------------------------------------------------
def post_training(counts: Counts) -> dict[str, Callable[[], float]]:
    """Each post-training metric of these counts but the flip test, computed when called."""
    def rates(numerator: Callable[[dict[str, int]], int], denominator: Callable[[dict[str, int]], int]) -> tuple[float, float]:
        _both_groups(counts)
        a, d = counts.confusion(A), counts.confusion(D)
        return divide(numerator(a), denominator(a)), divide(numerator(d), denominator(d))

    def difference(first: str, numerator: Callable, denominator: Callable) -> Callable[[], float]:
        """a's rate minus d's (first="a"), or d's minus a's."""
        def compute() -> float:
            rate_a, rate_d = rates(numerator, denominator)
            return subtract(rate_a, rate_d) if first == "a" else subtract(rate_d, rate_a)

        return compute

    def di() -> float:
        q_a, q_d = rates(lambda g: g["TP"] + g["FP"], lambda g: sum(g.values()))
        return divide(q_d, q_a)

    def te() -> float:
        tau_a, tau_d = rates(lambda g: g["FN"], lambda g: g["FP"])
        return subtract(tau_d, tau_a)

    positive = lambda g: g["TP"] + g["FN"]  # noqa: E731 - labelled positive
    negative = lambda g: g["TN"] + g["FP"]  # noqa: E731
    predicted_positive = lambda g: g["TP"] + g["FP"]  # noqa: E731
    predicted_negative = lambda g: g["TN"] + g["FN"]  # noqa: E731
    return {
        "DPPL": difference("a", predicted_positive, lambda g: sum(g.values())),
        "DI": di,
        "DCA": difference("a", positive, predicted_positive),
        "DCR": difference("d", negative, predicted_negative),
        "RD": difference("a", lambda g: g["TP"], positive),
        "SD": difference("d", lambda g: g["TN"], negative),
        "DAR": difference("a", lambda g: g["TP"], predicted_positive),
        "DRR": difference("d", lambda g: g["TN"], predicted_negative),
        "AD": difference("a", lambda g: g["TP"] + g["TN"], lambda g: sum(g.values())),
        "CDDPL": lambda: cdd(counts.subgroups, axis=2),
        "TE": te,
        "GE": lambda: generalized_entropy(counts),
    }


def generalized_entropy(counts: Counts, alpha: float = 2.0) -> float:
    """GE = sum_i [(b_i / mean b)^alpha - 1] / (n alpha (alpha - 1)), benefit b_i = yhat_i - y_i + 1:
    0 for a false negative, 2 for a false positive, 1 otherwise."""
    t = counts.table.sum(axis=0)  # label, predicted
    by_benefit = {0.0: t[1, 0], 1.0: t[0, 0] + t[1, 1], 2.0: t[0, 1]}
    n = int(t.sum())
    if n == 0:
        raise MetricUndefined("dataset must be non-empty")
    mean = sum(b * c for b, c in by_benefit.items()) / n
    if mean == 0:
        raise MetricUndefined("All predicted labels are false negatives. There should be at least one prediction "
                              "that is not false negative.")
    return float(sum(c * ((b / mean) ** alpha - 1) for b, c in by_benefit.items()) / (n * alpha * (alpha - 1)))


FT_NEIGHBOURS, FT_FEW_NEIGHBOURS, FT_FEW_ROWS = 5, 1, 9


def flip_test(features: np.ndarray, d: np.ndarray, predicted: np.ndarray) -> float:
    """FT: each row of d gets the prediction of its nearest neighbours among a's rows (k = 5, or 1
    when a has 9 rows or fewer); FT = (#(1 -> 0) - #(0 -> 1)) / n_d."""
    from sklearn.neighbors import KNeighborsClassifier

    d = np.asarray(d, dtype=bool)
    predicted = np.asarray(predicted, dtype=bool)
    if not d.any():
        raise MetricUndefined("Facet set is empty")
    if d.all():
        raise MetricUndefined("Negated Facet set is empty")
    a = ~d
    k = FT_NEIGHBOURS if a.sum() > FT_FEW_ROWS else FT_FEW_NEIGHBOURS
    model = KNeighborsClassifier(n_neighbors=k, n_jobs=-1).fit(features[a], predicted[a])  # same neighbours, all cores
    counterfactual = model.predict(features[d]).astype(bool)
    own = predicted[d]
    return divide(int((own & ~counterfactual).sum()) - int((~own & counterfactual).sum()), int(d.sum()))


def evaluate(metrics: dict[str, Callable[[], float]], chosen: list[str]) -> dict[str, float | str]:
    """The chosen metrics' values, or for a metric that cannot be computed on these data, the reason.

    As smclarify's report does, one metric's failure (of any kind) is that metric's error, and the
    other metrics are still computed; only a bad configuration (UserError) stops the analysis."""
    results: dict[str, float | str] = {}
    for name in chosen:
        if name not in metrics:
            raise UserError(f"unknown bias metric {name!r}; known: {', '.join(metrics)}")
        try:
            results[name] = float(metrics[name]())
        except UserError:
            raise
        except MetricUndefined as exc:
            results[name] = str(exc)
        except Exception as exc:  # noqa: BLE001 - reported on the metric, as smclarify does
            logger.warning("bias metric %s failed", name, exc_info=True)
            results[name] = f"{type(exc).__name__}: {exc}"
    return results
