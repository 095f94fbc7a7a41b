"""Rebalancing, as SageMaker Data Wrangler's "Rebalance data": every (facet group, label) cell
brought to the same number of rows, with imbalanced-learn's samplers, seeded.

The cells are the label's values crossed with the facet's values (or, for a continuous facet
with a threshold, the two sides of the threshold). `random-undersample` keeps, at random, as many
rows of each cell as the smallest has; `random-oversample` repeats rows of each cell, at random,
up to the largest; `smote` and `smotenc` add synthetic rows between a row and one of its nearest
neighbours in the same cell, up to the largest. Plain SMOTE interpolates every column, so all
columns but the label and a categorical facet must be numeric; SMOTENC takes the other
non-numeric columns as categorical (a synthetic row takes its neighbours' most frequent value).
The report is the pre-training bias metrics (CI, DPL, KL, JS, LP, TVD, KS) before and after,
each with its change.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fmeval.bias.frame import BiasFrame
from fmeval.bias.groups import is_continuous, select
from fmeval.bias.metrics import PRE_TRAINING
from fmeval.bias.names import REBALANCE_METHODS as METHODS
from fmeval.errors import UserError

SMOTE_NEIGHBOURS = 5
MAX_CLASSES = 20
ERR_ONE_CLASS = "label {label!r}: every row has the same value ({value}); there is nothing to rebalance"
ERR_NON_NUMERIC = ("plain SMOTE interpolates every column, and column(s) {columns} are not numeric: use --method "
                   "smotenc (SMOTE for mixed columns), encode them, or drop them")


@dataclass
class Rebalanced:
    """The rebalanced rows and the pre-training bias report before and after."""

    data: pd.DataFrame
    report: pd.DataFrame
    """A row per (facet, value_or_threshold, metric): before, after and change (after - before)."""
    cells: pd.DataFrame
    """Rows per (facet cell, label value), before and after."""


def rebalance(frame: pd.DataFrame, *, label: str, facet: str, method: str = "random-oversample",
              label_values: Any = (1,), facet_values: Any = None, facet_type: str | None = None,
              seed: int = 0) -> Rebalanced:
    """Rebalance `frame`'s (facet, label) cells with `method` (see the module's docstring)."""
    if method not in METHODS:
        raise UserError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    for name, what in ((label, "--label"), (facet, "--facet")):
        if name not in frame.columns:
            raise UserError(f"{what}: no column {name!r} in the data; columns: {', '.join(map(str, frame.columns))}")
    if label == facet:
        raise UserError("--label and --facet must be different columns")
    missing = frame[[label, facet]].isna().any(axis=1).to_numpy()
    if missing.any():
        rows = ", ".join(map(str, np.flatnonzero(missing)[:20]))
        raise UserError(f"{int(missing.sum())} row(s) have no value in {label} or {facet} (rows {rows}); drop or "
                        f"fill them first")
    labels = frame[label]
    if labels.nunique() < 2:
        raise UserError(ERR_ONE_CLASS.format(label=label, value=labels.iloc[0]))
    if labels.nunique() > MAX_CLASSES:
        raise UserError(f"label {label!r} has {labels.nunique()} distinct values: rebalancing balances the label's "
                        f"classes (at most {MAX_CLASSES}); bin it into classes first")
    # the label's values are its classes, however few rows there are (smclarify's rule would call a 0/1
    # column of under 40 rows continuous)
    before = BiasFrame(y_true=labels, sensitive_features=frame[facet], label_values=label_values,
                       facet_values=facet_values, facet_type=facet_type, label_type="categorical")
    facet_cell = _facet_cells(frame[facet], facet_values, facet_type)
    cells = pd.Series(pd.factorize(pd.Series(list(zip(facet_cell, labels.astype(str)))))[0])
    names = pd.DataFrame({"facet_cell": facet_cell, "label": labels}).groupby(cells.to_numpy()).first()
    for facet_group in pd.unique(facet_cell):
        present = set(labels[facet_cell == facet_group].astype(str))
        absent = sorted(set(labels.astype(str)) - present)
        if absent:
            raise UserError(f"facet {facet!r} group {facet_group} has no row with label {', '.join(absent)}: that "
                            f"(facet, label) group is empty, and no sampler can fill an empty group")
    data = _resample(frame, cells.to_numpy(), method=method, label=label, facet=facet,
                     facet_numeric=_threshold_facet(frame[facet], facet_values, facet_type),
                     names=names, seed=seed)
    after = BiasFrame(y_true=data[label], sensitive_features=data[facet], label_values=label_values,
                      facet_values=facet_values, facet_type=facet_type, label_type="categorical")
    metrics = [m for m in PRE_TRAINING if m != "CDDL"]  # CDDL needs a group variable
    old, new = before.pre_training(metrics), after.pre_training(metrics)
    report = pd.DataFrame({"before": old.stack(), "after": new.reindex(old.index).stack()})
    report.index.names = ["facet", "value_or_threshold", "metric"]
    report["change"] = report["after"] - report["before"]
    new_cells = pd.DataFrame({"facet_cell": _facet_cells(data[facet], facet_values, facet_type),
                              "label": data[label]}).value_counts()
    old_cells = pd.DataFrame({"facet_cell": facet_cell, "label": labels}).value_counts()
    table = pd.DataFrame({"before": old_cells, "after": new_cells}).fillna(0).astype(int)
    return Rebalanced(data=data, report=report, cells=table)


def _threshold_facet(values: pd.Series, facet_values: Any, facet_type: str | None) -> bool:
    return facet_values is not None and is_continuous(values, facet_values, facet_type)


def _facet_cells(values: pd.Series, facet_values: Any, facet_type: str | None) -> pd.Series:
    """Each row's facet cell: its value, or for a threshold on a continuous facet, the side of it."""
    values = values.reset_index(drop=True)
    if _threshold_facet(values, facet_values, facet_type):
        above = select(values, facet_values, "facet_values", kind=facet_type)
        return pd.Series(np.where(above.mask, above.description, f"not {above.description}"), dtype=object)
    if facet_values is None and is_continuous(values, None, facet_type):
        raise UserError(f"facet {values.name!r} is continuous: give a threshold (--facet-values NUMBER), or "
                        f"--facet-type categorical to balance each of its values")
    return values.astype(str).astype(object)


def _resample(frame: pd.DataFrame, cells: np.ndarray, *, method: str, label: str, facet: str, facet_numeric: bool,
              names: pd.DataFrame, seed: int) -> pd.DataFrame:
    from imblearn.over_sampling import SMOTE, SMOTENC, RandomOverSampler
    from imblearn.under_sampling import RandomUnderSampler

    if method in ("random-undersample", "random-oversample"):
        sampler = (RandomUnderSampler if method == "random-undersample" else RandomOverSampler)(random_state=seed)
        sampler.fit_resample(np.zeros((len(frame), 1)), cells)
        return frame.iloc[np.sort(sampler.sample_indices_)].reset_index(drop=True) if method == "random-undersample" \
            else frame.iloc[sampler.sample_indices_].reset_index(drop=True)
    # SMOTE: the label and a categorical facet come back from the cell; every other column is interpolated
    derived = [label] if facet_numeric else [label, facet]
    columns = [c for c in frame.columns if c not in derived]
    non_numeric = [c for c in columns if not pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c])]
    if method == "smote" and non_numeric:
        raise UserError(ERR_NON_NUMERIC.format(columns=", ".join(map(repr, non_numeric))))
    if method == "smotenc" and not non_numeric:
        raise UserError("smotenc is SMOTE for mixed columns, and every column is numeric: use --method smote")
    if not columns:
        raise UserError("SMOTE needs at least one feature column besides the label and the facet to interpolate")
    missing = [c for c in columns if frame[c].isna().any()]
    if missing:
        raise UserError(f"SMOTE cannot interpolate missing values: column(s) {', '.join(map(repr, missing))} have "
                        f"some; fill them first")
    smallest = int(np.bincount(cells).min())
    if smallest < 2:
        raise UserError("a (facet, label) group has a single row: SMOTE needs at least two to interpolate between; "
                        "use --method random-oversample")
    neighbours = min(SMOTE_NEIGHBOURS, smallest - 1)
    features = frame[columns]
    if method == "smote":
        sampler = SMOTE(k_neighbors=neighbours, random_state=seed)
    else:
        sampler = SMOTENC(categorical_features=[columns.index(c) for c in non_numeric], k_neighbors=neighbours,
                          random_state=seed)
    resampled, resampled_cells = sampler.fit_resample(features, cells)
    out = pd.DataFrame(resampled, columns=columns).reset_index(drop=True)
    original = frame.reset_index(drop=True)
    for column in derived:
        source = names["label"] if column == label else names["facet_cell"]
        values = source.to_numpy()[resampled_cells]
        out[column] = pd.Series(values).astype(original[column].dtype)
    for column in columns:  # integer columns stay integers (synthetic values rounded)
        if pd.api.types.is_integer_dtype(original[column]):
            out[column] = np.round(out[column].astype(float)).astype(original[column].dtype)
        elif column not in non_numeric:
            out[column] = out[column].astype(original[column].dtype)
    return out[list(frame.columns)]
