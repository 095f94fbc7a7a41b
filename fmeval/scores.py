"""Score types every layer shares: `MetricSpec` (what a metric means), `EvalScore`, `CategoryScore`."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class MetricSpec:
    """What a metric's numbers mean, declared by the evaluation that computes it.

    Reports and `fmeval compare` read these from each run's summary, so that they know which
    way is better without knowing metric names.
    """

    name: str
    higher_is_better: bool | None = True
    """True or False; None for metrics judged by their distance to `ideal` (e.g. 0.5 for stereotyping)."""
    ideal: float | None = None
    """The best possible value, when there is one inside the range (prompt stereotyping: 0.5)."""
    range: tuple[float, float] = (0.0, 1.0)
    """The values the metric can take; infinite bounds are allowed."""
    per_record: bool = True
    """False for dataset-level metrics that are not a mean of per-record scores (e.g. balanced accuracy)."""

    def __post_init__(self) -> None:
        if self.higher_is_better is None and self.ideal is None:
            raise ValueError(f"metric {self.name!r}: give higher_is_better, or an ideal value")

    @property
    def direction(self) -> str:
        """'higher' or 'lower' is better, or 'target:<ideal>'."""
        if self.higher_is_better is None:
            return f"target:{self.ideal}"
        return "higher" if self.higher_is_better else "lower"

    def worsening(self, baseline: float, candidate: float) -> float:
        """How much worse `candidate` is than `baseline`, in the metric's units (negative: better)."""
        if self.higher_is_better is None:
            return abs(candidate - self.ideal) - abs(baseline - self.ideal)  # type: ignore[operator]
        return baseline - candidate if self.higher_is_better else candidate - baseline

    def goodness(self, value: float) -> float:
        """A number that grows as `value` gets better (to rank examples)."""
        if self.higher_is_better is None:
            return -abs(value - self.ideal)  # type: ignore[operator]
        return value if self.higher_is_better else -value

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["range"] = [_json_number(bound) for bound in self.range]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MetricSpec:
        low, high = (float(bound) for bound in data.get("range", (0.0, 1.0)))
        return cls(name=data["name"], higher_is_better=data.get("higher_is_better", True), ideal=data.get("ideal"),
                   range=(low, high), per_record=data.get("per_record", True))


def _json_number(value: float) -> float | str:
    """JSON has no infinity: write it as the string float() reads back."""
    return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")


@dataclass(frozen=True)
class EvalScore:
    """One aggregate score. `ci_lower`/`ci_upper` bound a 95% bootstrap confidence interval."""

    name: str
    value: float | None
    error: str | None = None
    ci_lower: float | None = None
    ci_upper: float | None = None
    count: int | None = None
    """How many records the value is computed from (records with errors are left out)."""


@dataclass(frozen=True)
class CategoryScore:
    """The scores of the records of one category (e.g. one CrowS-Pairs bias type)."""

    name: str
    scores: list[EvalScore]
