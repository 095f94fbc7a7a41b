"""Clarify-compatible bias metrics, vectorised over whole columns.

Conventions, as SageMaker Clarify and its open-source `smclarify` library define them:
- `d` is the sensitive facet group (a boolean mask), `a` everyone else;
- positive labels and predictions are boolean masks too;
- x/0 is +-inf, 0/0 is 0, and inf - inf is 0;
- KL, JS, LP, TVD and KS compare the label distributions of the two groups, keeping only the
  label values that are non-zero in *both* groups, without renormalising (`textbook=True`
  compares the full distributions instead). KL and JS use the natural logarithm.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from fmeval.errors import UserError

Mask = np.ndarray


def divide(numerator: float, denominator: float) -> float:
    """Clarify's division: x/0 is +-inf, 0/0 is 0."""
    if denominator == 0:
        return 0.0 if numerator == 0 else math.copysign(math.inf, numerator)
    return numerator / denominator


def subtract(x: float, y: float) -> float:
    """Clarify's difference: inf - inf (either sign, equal) is 0."""
    if math.isinf(x) and math.isinf(y) and x == y:
        return 0.0
    return x - y


def _groups(d: Mask) -> tuple[Mask, Mask]:
    d = np.asarray(d, dtype=bool)
    if not d.any():
        raise UserError("the sensitive facet group is empty: no row has the facet value given")
    if d.all():
        raise UserError("every row is in the sensitive facet group: there is nothing to compare it with")
    return d, ~d


# -- pre-training ------------------------------------------------------------------------------------
def class_imbalance(d: Mask) -> float:
    """CI = (n_a - n_d) / (n_a + n_d)."""
    d, a = _groups(d)
    return (a.sum() - d.sum()) / d.size


def difference_in_positive_proportions(d: Mask, positive: Mask) -> float:
    """DPL (on labels) or DPPL (on predicted labels) = q_a - q_d."""
    d, a = _groups(d)
    return subtract(divide(positive[a].sum(), a.sum()), divide(positive[d].sum(), d.sum()))


def _distributions(labels: np.ndarray, d: Mask, *extra: Mask, textbook: bool) -> list[np.ndarray]:
    """Label-value distributions of each group (and of `extra` masks), aligned on the values."""
    d, a = _groups(d)
    values, codes = np.unique(labels, return_inverse=True)
    masks = [a, d, *extra]
    pdfs = [np.bincount(codes[m], minlength=values.size) / max(m.sum(), 1) for m in masks]
    if textbook:
        return pdfs
    keep = np.all([p > 0 for p in pdfs], axis=0)
    return [p[keep] for p in pdfs]


def kl_divergence(labels: np.ndarray, d: Mask, *, textbook: bool = False) -> float:
    """KL(P_a || P_d) = sum P_a log(P_a / P_d). Can be negative under Clarify's convention."""
    pa, pd_ = _distributions(labels, d, textbook=textbook)
    if textbook:
        with np.errstate(divide="ignore"):
            terms = np.where(pa > 0, pa * np.log(np.where(pa > 0, pa, 1) / np.where(pd_ > 0, pd_, 0)), 0.0)
        return float(np.sum(terms))
    return float(np.sum(pa * np.log(pa / pd_)))


def js_divergence(labels: np.ndarray, d: Mask, *, textbook: bool = False) -> float:
    """JS = 0.5 [KL(P_a || P) + KL(P_d || P)]: Clarify takes P as the whole label column's
    distribution; the textbook definition takes the mixture (P_a + P_d) / 2."""
    if textbook:
        pa, pd_ = _distributions(labels, d, textbook=True)
        mixture = (pa + pd_) / 2
        return 0.5 * (_kl(pa, mixture) + _kl(pd_, mixture))
    everyone = np.ones(len(labels), dtype=bool)
    pa, pd_, p = _distributions(labels, d, everyone, textbook=False)
    return 0.5 * (_kl(pa, p) + _kl(pd_, p))


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    support = p > 0
    return float(np.sum(p[support] * np.log(p[support] / q[support])))


def lp_norm(labels: np.ndarray, d: Mask, *, order: float = 2, textbook: bool = False) -> float:
    """LP = ||P_a - P_d||_p (p = 2 by default)."""
    pa, pd_ = _distributions(labels, d, textbook=textbook)
    return float(np.linalg.norm(pa - pd_, order))


def total_variation_distance(labels: np.ndarray, d: Mask, *, textbook: bool = False) -> float:
    """TVD = 0.5 ||P_a - P_d||_1."""
    return 0.5 * lp_norm(labels, d, order=1, textbook=textbook)


def kolmogorov_smirnov(labels: np.ndarray, d: Mask, *, textbook: bool = False) -> float:
    """KS = max |P_a - P_d| over label values."""
    pa, pd_ = _distributions(labels, d, textbook=textbook)
    return float(np.max(np.abs(pa - pd_))) if pa.size else 0.0


def conditional_demographic_disparity(d: Mask, positive: Mask, group: np.ndarray) -> float:
    """CDD = (1/n) sum_i n_i DD_i over the subgroups i of `group`, where DD_i is the share of
    the subgroup's rejected rows that are in d minus the share of its accepted rows that are
    in d. On labels it is CDDL, on predicted labels CDDPL."""
    d, _ = _groups(d)
    positive = np.asarray(positive, dtype=bool)
    _, codes = np.unique(group, return_inverse=True)
    groups = codes.max() + 1
    count = np.bincount(codes, minlength=groups)
    accepted = np.bincount(codes[positive], minlength=groups)
    accepted_d = np.bincount(codes[positive & d], minlength=groups)
    rejected = np.bincount(codes[~positive], minlength=groups)
    rejected_d = np.bincount(codes[~positive & d], minlength=groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        share_rejected = np.where(rejected > 0, rejected_d / np.maximum(rejected, 1), 0.0)
        share_accepted = np.where(accepted > 0, accepted_d / np.maximum(accepted, 1), 0.0)
    return float(np.sum(count * (share_rejected - share_accepted)) / count.sum())


# -- post-training -----------------------------------------------------------------------------------
def _confusion(d: Mask, label: Mask, predicted: Mask) -> dict[str, dict[str, int]]:
    d, a = _groups(d)
    label, predicted = np.asarray(label, dtype=bool), np.asarray(predicted, dtype=bool)
    out = {}
    for name, group in (("a", a), ("d", d)):
        y, p = label[group], predicted[group]
        out[name] = {"TP": int((y & p).sum()), "FP": int((~y & p).sum()), "TN": int((~y & ~p).sum()),
                     "FN": int((y & ~p).sum()), "n": int(group.sum())}
    return out


def post_training(d: Mask, label: Mask, predicted: Mask) -> dict[str, float]:
    """DPPL, DI, DCA, DCR, RD, SD, DAR, DRR, AD and TE from the two groups' confusion counts."""
    c = _confusion(d, label, predicted)
    a, dd = c["a"], c["d"]

    def rate(group: dict[str, int], numerator: str, *denominator: str) -> float:
        return divide(sum(group[k] for k in numerator.split("+")), sum(group[k] for k in denominator))

    predicted_positive = lambda g: divide(g["TP"] + g["FP"], g["n"])  # noqa: E731
    return {
        "DPPL": subtract(predicted_positive(a), predicted_positive(dd)),
        "DI": divide(predicted_positive(dd), predicted_positive(a)),
        # conditional acceptance: observed positives per predicted positive (and the same for rejections)
        "DCA": subtract(rate(a, "TP+FN", "TP", "FP"), rate(dd, "TP+FN", "TP", "FP")),
        "DCR": subtract(rate(dd, "TN+FP", "TN", "FN"), rate(a, "TN+FP", "TN", "FN")),
        "RD": subtract(rate(a, "TP", "TP", "FN"), rate(dd, "TP", "TP", "FN")),
        "SD": subtract(rate(dd, "TN", "TN", "FP"), rate(a, "TN", "TN", "FP")),
        "DAR": subtract(rate(a, "TP", "TP", "FP"), rate(dd, "TP", "TP", "FP")),
        "DRR": subtract(rate(dd, "TN", "TN", "FN"), rate(a, "TN", "TN", "FN")),
        "AD": subtract(rate(a, "TP+TN", "n"), rate(dd, "TP+TN", "n")),
        "TE": subtract(divide(dd["FN"], dd["FP"]), divide(a["FN"], a["FP"])),
    }


def generalized_entropy(label: Mask, predicted: Mask, *, alpha: float = 2.0) -> float:
    """GE = 1 / (n a (a - 1)) sum [(b_i / mean b)^a - 1], with benefit b_i = yhat_i - y_i + 1."""
    benefit = np.asarray(predicted, dtype=float) - np.asarray(label, dtype=float) + 1
    mean = benefit.mean()
    if mean == 0:
        return 0.0
    return float(np.sum((benefit / mean) ** alpha - 1) / (benefit.size * alpha * (alpha - 1)))


def flip_test(features: np.ndarray, d: Mask, predicted: Mask, *, k: int = 5) -> float:
    """FT: each member of d gets the majority prediction of its k nearest neighbours in a (its
    counterfactual); FT = (#(1 -> 0) - #(0 -> 1)) / n_d over the d members whose prediction flips."""
    from sklearn.neighbors import KNeighborsClassifier

    d, a = _groups(d)
    predicted = np.asarray(predicted, dtype=bool)
    if a.sum() < k:
        raise UserError(f"the flip test needs at least k={k} rows outside the facet group, found {int(a.sum())}")
    model = KNeighborsClassifier(n_neighbors=k).fit(features[a], predicted[a])
    counterfactual = model.predict(features[d]).astype(bool)
    own = predicted[d]
    return divide(int((own & ~counterfactual).sum()) - int((~own & counterfactual).sum()), int(d.sum()))


PRE_TRAINING: dict[str, str] = {
    "CI": "Class Imbalance (CI)",
    "DPL": "Difference in Positive Proportions in Labels (DPL)",
    "KL": "Kullback-Liebler Divergence (KL)",
    "JS": "Jensen-Shannon Divergence (JS)",
    "LP": "L-p Norm (LP)",
    "TVD": "Total Variation Distance (TVD)",
    "KS": "Kolmogorov-Smirnov Distance (KS)",
    "CDDL": "Conditional Demographic Disparity in Labels (CDDL)",
}
POST_TRAINING: dict[str, str] = {
    "DPPL": "Difference in Positive Proportions in Predicted Labels (DPPL)",
    "DI": "Disparate Impact (DI)",
    "DCA": "Difference in Conditional Acceptance (DCA)",
    "DCR": "Difference in Conditional Rejection (DCR)",
    "RD": "Recall Difference (RD)",
    "SD": "Specificity Difference (SD)",
    "DAR": "Difference in Acceptance Rates (DAR)",
    "DRR": "Difference in Rejection Rates (DRR)",
    "AD": "Accuracy Difference (AD)",
    "CDDPL": "Conditional Demographic Disparity in Predicted Labels (CDDPL)",
    "TE": "Treatment Equality (TE)",
    "FT": "Flip Test (FT)",
    "GE": "Generalized Entropy (GE)",
}


def pre_training_metrics(
    d: Mask, labels: np.ndarray, positive: Mask, *, group: np.ndarray | None = None,
    methods: list[str] | None = None, textbook: bool = False,
) -> dict[str, float]:
    """The chosen pre-training metrics (all by default; CDDL only with a group variable)."""
    compute: dict[str, Callable[[], float]] = {
        "CI": lambda: class_imbalance(d),
        "DPL": lambda: difference_in_positive_proportions(d, positive),
        "KL": lambda: kl_divergence(labels, d, textbook=textbook),
        "JS": lambda: js_divergence(labels, d, textbook=textbook),
        "LP": lambda: lp_norm(labels, d, textbook=textbook),
        "TVD": lambda: total_variation_distance(labels, d, textbook=textbook),
        "KS": lambda: kolmogorov_smirnov(labels, d, textbook=textbook),
        "CDDL": lambda: conditional_demographic_disparity(d, positive, group),  # type: ignore[arg-type]
    }
    chosen = methods or [m for m in compute if m != "CDDL" or group is not None]
    return {name: _checked(name, compute) for name in chosen}


def post_training_metrics(
    d: Mask, label: Mask, predicted: Mask, *, features: np.ndarray | None = None, group: np.ndarray | None = None,
    methods: list[str] | None = None,
) -> dict[str, float]:
    """The chosen post-training metrics (all by default; CDDPL needs a group variable, FT features)."""
    counts = post_training(d, label, predicted)
    compute: dict[str, Callable[[], float]] = {name: (lambda v=value: v) for name, value in counts.items()}
    compute["CDDPL"] = lambda: conditional_demographic_disparity(d, predicted, group)  # type: ignore[arg-type]
    compute["FT"] = lambda: flip_test(features, d, predicted)  # type: ignore[arg-type]
    compute["GE"] = lambda: generalized_entropy(label, predicted)
    available = [m for m in POST_TRAINING if (m != "CDDPL" or group is not None) and (m != "FT" or features is not None)]
    return {name: _checked(name, compute) for name in (methods or available)}


def _checked(name: str, compute: dict[str, Callable[[], float]]) -> float:
    if name not in compute:
        raise UserError(f"unknown bias metric {name!r}; known: {', '.join(compute)}")
    return float(compute[name]())
