"""Facet groups and positive outcomes, chosen as smclarify 0.5 chooses them.

A column is continuous when it is float-typed, or numeric (or numeric text) with at least 5%
distinct values, unless the caller's type (`categorical` or `continuous`) says otherwise. On a
continuous column a single number, or a one-element list, is a threshold: the group is the values
above it, reported as the interval `(threshold, max]`. Otherwise the values listed select the
group; without a value a facet is reported one-vs-all for each of its values.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from fmeval.errors import UserError

UNIQUENESS_THRESHOLD = 0.05
"""smclarify's: a numeric column with at least this share of distinct values is continuous."""

def value_class(values: pd.Series) -> str:
    """What smclarify's rule looks at in a column's type: categorical, bool, float, int or text."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return "categorical"
    if pd.api.types.is_bool_dtype(values):
        return "bool"
    if pd.api.types.is_float_dtype(values):
        return "float"
    return "int" if pd.api.types.is_integer_dtype(values) else "text"


def integral_text(distinct: Any) -> bool:
    """Whether every one of these values is an integer written as text (e.g. "3")."""
    numbers = pd.to_numeric(pd.Series(distinct), errors="coerce")
    return bool(numbers.notna().all() and (numbers == np.round(numbers)).all())


def continuous_by_rule(value_kind: str, present: int, distinct: int, all_integral_text: Callable[[], bool]) -> bool:
    """smclarify's rule: float-typed, or numeric (or numeric text) with at least 5% distinct values."""
    if value_kind in ("categorical", "bool"):
        return False
    if value_kind == "float":
        return present > 0
    if present == 0 or distinct < UNIQUENESS_THRESHOLD * present:
        return False
    return value_kind == "int" or all_integral_text()


def is_continuous(values: pd.Series, chosen: Any = None, kind: str | None = None) -> bool:
    """smclarify's rule (`continuous_by_rule`); categorical whatever the values when several
    values are chosen. `kind` overrides it."""
    if kind is not None:
        return kind == "continuous"
    if isinstance(chosen, list) and len(chosen) > 1:
        return False
    present = values.dropna()
    distinct = pd.unique(present) if value_class(values) not in ("categorical", "bool", "float") else ()
    # the distinct values only are parsed: fast on text
    return continuous_by_rule(value_class(values), len(present), len(distinct), lambda: integral_text(distinct))


def _threshold(chosen: Any) -> int | float | None:
    """A number, or a one-element list of one (Clarify's usual spelling of a threshold). An int
    stays an int: the group's label, `(2, 4]`, is written as smclarify writes it."""
    if isinstance(chosen, list) and len(chosen) == 1:
        chosen = chosen[0]
    if isinstance(chosen, (int, float)) and not isinstance(chosen, bool):
        return chosen
    if isinstance(chosen, str):
        for parse in (int, float):
            try:
                return parse(chosen)
            except ValueError:
                pass
    return None


def _maximum(values: pd.Series) -> int | float:
    """The largest number in a column, an int for an integer column."""
    return pd.to_numeric(values, errors="coerce").max().item()


@dataclass
class Selection:
    """A group of rows (or the positive outcomes) and how analysis.json names it."""

    description: str
    mask: np.ndarray


class _Encoded:
    """A column's values, factorised once: selections are then comparisons of integer codes."""

    def __init__(self, values: pd.Series):
        self.values = values
        self.codes, self.uniques = pd.factorize(values, use_na_sentinel=True)

    def of_values(self, wanted: list[Any], what: str, *, required: bool = True) -> np.ndarray:
        numeric = pd.api.types.is_numeric_dtype(self.values) and not pd.api.types.is_bool_dtype(self.values)

        def key(value: Any) -> Any:
            if numeric:
                try:
                    return float(value)
                except (TypeError, ValueError):
                    return None
            return str(value).lower() if isinstance(value, bool) else str(value)

        index = {key(value): code for code, value in enumerate(self.uniques)}
        found = [index[key(v)] for v in wanted if key(v) in index]
        if not found and required:  # some absent values are fine (smclarify allows them), none present is a typo
            raise UserError(f"{what}: value(s) {', '.join(map(str, wanted))} never occur in column "
                            f"{self.values.name!r}")
        return np.isin(self.codes, found)

    def one_vs_all(self) -> list[Selection]:
        return [Selection(str(value), self.codes == code) for code, value in sorted(
            enumerate(self.uniques), key=lambda pair: str(pair[1]))]


def select(values: pd.Series, chosen: Any, what: str, *, kind: str | None = None, required: bool = True,
           encoded: _Encoded | None = None, upper: int | float | None = None) -> Selection:
    """The rows a facet value (or label value) picks: above a threshold on a continuous column,
    else the values listed. `upper` is the top of the threshold's interval (default: the column's max)."""
    threshold = _threshold(chosen)
    if threshold is not None and is_continuous(values, chosen, kind):
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        top = upper if upper is not None else _maximum(values)
        return Selection(str(pd.Interval(threshold, max(top, threshold), closed="right")), numbers > threshold)
    if kind == "continuous":
        raise UserError(f"{what}: a continuous column needs a threshold (a number), got {chosen!r}")
    wanted = chosen if isinstance(chosen, list) else [chosen]
    mask = (encoded or _Encoded(values)).of_values(wanted, what, required=required)
    return Selection(",".join(map(str, wanted)), mask)


def _one_outcome(labels: pd.Series, label_spec: Any, label_type: str | None, all_positive: bool) -> str:
    message = (f"label: every row has the same outcome ({'positive' if all_positive else 'negative'}) under "
               f"label_values_or_threshold {label_spec!r}")
    if label_type is None and _threshold(label_spec) is not None and is_continuous(labels, label_spec):
        present = labels.dropna()
        message += (f". Column {labels.name!r} counts as continuous ({present.nunique()} distinct values in "
                    f"{len(present)} rows, at least {UNIQUENESS_THRESHOLD:.0%}: smclarify's rule), so "
                    f"{label_spec!r} is a threshold and the positive labels are those above it; set "
                    f'"label_type": "categorical" to match the value instead')
    return message


def _facet_groups(values: pd.Series, facet: Mapping[str, Any], column: str) -> list[Selection]:
    chosen, kind = facet.get("value_or_threshold"), facet.get("type")
    if chosen is not None:
        return [select(values, chosen, f"facet {column!r}", kind=kind)]
    if is_continuous(values, None, kind):
        raise UserError(f"facet {column!r} is continuous: give a threshold (value_or_threshold: [number]), or "
                        f'"type": "categorical" to report each of its values')
    return _Encoded(values).one_vs_all()
