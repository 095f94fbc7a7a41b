"""Data quality: a baseline's statistics and constraints, in SageMaker Model Monitor's formats,
and checks of later windows against them, with drift statistics per column.

Statistics come from one streaming pass of mergeable pieces (`Profile`, `+` merges): per column
the inferred type (Integral, Fractional or String), completeness, min, max, sum, mean and
standard deviation (Chan's parallel update), a KLL quantile sketch (Apache DataSketches) for
numbers, and value counts for strings (the first `MAX_CATEGORIES` distinct values exactly, the
rest counted together). Numeric columns of up to `EXACT_LIMIT` values also keep the values
themselves, so that small windows get exact tests.

A check writes `constraint_violations.json` with Model Monitor's check types: missing_column_check,
extra_column_check, data_type_check (a share of values of another type above
`datatype_check_threshold`, fractional numbers in an Integral column among them),
completeness_check (a one-sided binomial test against the baseline's completeness less a
tolerance, at alpha), negative_values_check, categorical_values_check and baseline_drift_check
(the L-infinity distance above `comparison_threshold`, 0.1 by default, and with `comparison_method`
Robust also a significant drift). constraints.json's `monitoring_config` and each feature's
`monitoringConfigOverrides` are honoured. Schema changes are violations, never crashes.

Drift per column is calibrated by default: each column's test (normed Wasserstein for numbers,
Jensen-Shannon for categories, or the column's own: KS, chi-square, PSI, L-infinity) gets a
p-value at the reference's and the window's sizes, so that a 200-row window and a million-row one
alarm on an undrifted column with the same probability alpha (0.01); Holm's correction across
columns keeps the chance that an undrifted window marks any column at alpha. `drift_method =
"evidently"` follows Evidently 0.7.23's DataDriftPreset exactly instead (its column types, its
test by the reference's size, its fixed thresholds; the dataset drifts when half of its columns
do). PSI, KS and the L-infinity distance are reported for every column.
"""
from __future__ import annotations

import glob
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd

from fmeval.errors import DataError, UserError
from fmeval.monitoring.options import DataQualityOptions
from fmeval.monitoring.windows import is_capture


KLL_K = 2000  # rank error about 0.2%: distances within about 0.003 of the exact ones
MAX_CATEGORIES = 10_000
DOMAIN_MAX_VALUES = 120  # Deequ's lowCardinalityHistogramThreshold: above it, no histogram and so no domain
DOMAIN_MAX_SINGLETONS = 0.1  # Deequ's CategoricalRangeRule: at most this share of the values seen only once
EXACT_LIMIT = 100_000
EXACT_CHEAP = 10_000  # up to this many values a side, SciPy's exact KS and Wasserstein are computed in any mode
SMALL_REFERENCE = 1000  # Evidently: up to this many reference rows, statistical tests; above, distances
BUCKETS = 10
KLL_C = 2 / 3  # DataSketches' compactor shrink factor
KLL_M = 8  # DataSketches' smallest compactor
KLL_FAMILY = 15  # DataSketches' family id of KLL sketches
SAGEMAKER_CHECKS = ("data_type_check", "completeness_check", "baseline_drift_check", "missing_column_check",
                    "extra_column_check", "categorical_values_check")
FEW_VALUES = 20  # Evidently compares numbers by their value counts up to this many distinct values
INTEGER_CARDINALITY_LIMIT = 10  # Evidently: an integer column with at most this many distinct values is categorical
OTHER = "__other__"
MONITORING_DEFAULTS = {"evaluate_constraints": "Enabled", "emit_metrics": "Enabled", "datatype_check_threshold": 0.1,
                       "domain_content_threshold": 1.0, "perform_comparison": "Enabled", "comparison_threshold": 0.1,
                       "comparison_method": "Robust", "categorical_drift_method": "LInfinity"}
"""What a constraints.json without these monitoring_config keys gets: SageMaker's documented defaults (the
domain threshold is the share of values that must be inside the domain, so 1.0: none outside)."""


@dataclass
class ColumnProfile:
    """What one pass learns about a column; `+` merges two blocks' profiles."""

    kind: str  # Integral, Fractional or String
    present: int = 0
    missing: int = 0
    mean: float = 0.0
    m2: float = 0.0  # sum of squared deviations from the mean (Chan et al.)
    total: float = 0.0
    minimum: float = math.inf
    maximum: float = -math.inf
    sketch: Any = None  # a KLL sketch of the numbers
    counts: dict[str, int] = field(default_factory=dict)  # strings: value -> count (OTHER: the rest)
    exact: np.ndarray | None = None  # numbers: the values themselves, while there are at most EXACT_LIMIT
    integer_dtype: bool = False  # numbers: every block held integers (not floats): how Evidently types columns
    fractional: int = 0  # numbers: how many are not whole (an Integral baseline's data type check)
    values: dict[float, int] | None = None  # numbers: value -> count, while there are at most FEW_VALUES distinct
    numbers: ColumnProfile | None = None  # strings: the profile of those that read as numbers (a number column with some text)

    def __getstate__(self) -> dict[str, Any]:  # pickled (to and from Ray workers) with the sketch as bytes
        state = {key: value for key, value in self.__dict__.items() if key != "_sorted_exact"}
        return {**state, "sketch": self.sketch.serialize() if self.sketch is not None else None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state["sketch"] is not None:
            from datasketches import kll_doubles_sketch

            state = {**state, "sketch": kll_doubles_sketch.deserialize(state["sketch"])}
        self.__dict__.update(state)

    @classmethod
    def of(cls, values: pd.Series) -> ColumnProfile:
        present = values.dropna()
        missing = len(values) - len(present)
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            numbers = present.to_numpy(dtype=float)
            fractional = int(np.count_nonzero(numbers != np.round(numbers)))
            profile = cls("Integral" if fractional == 0 else "Fractional", len(numbers), missing,
                          integer_dtype=pd.api.types.is_integer_dtype(values), fractional=fractional)
            profile.values = _few_values(numbers)
            if len(numbers):
                from datasketches import kll_doubles_sketch

                profile.mean, profile.m2 = float(numbers.mean()), float(((numbers - numbers.mean()) ** 2).sum())
                profile.total, profile.minimum, profile.maximum = float(numbers.sum()), float(numbers.min()), float(numbers.max())
                profile.sketch = kll_doubles_sketch(KLL_K)
                profile.sketch.update(np.array(numbers, dtype=np.float64))  # a writable copy, as the binding needs
            profile.exact = numbers if len(numbers) <= EXACT_LIMIT else None
            return profile
        text = present.astype(str)
        counts = text.value_counts()
        profile = cls("String", len(text), missing)
        profile.counts = _capped(dict(zip(counts.index.tolist(), counts.tolist())))
        if pd.to_numeric(text.iloc[:1000], errors="coerce").notna().any():  # text columns tell at once
            parsed = pd.to_numeric(text, errors="coerce").dropna()
            profile.numbers = cls.of(parsed.reset_index(drop=True))
        return profile

    def __add__(self, other: ColumnProfile) -> ColumnProfile:
        kinds = {self.kind, other.kind}
        if self.present == 0:
            kinds.discard(self.kind)
        if other.present == 0:
            kinds.discard(other.kind)
        kind = kinds.pop() if len(kinds) == 1 else ("Fractional" if kinds == {"Integral", "Fractional"} else
                                                    self.kind if not kinds else "String")
        merged = ColumnProfile(kind, self.present + other.present, self.missing + other.missing,
                               integer_dtype=all(side.integer_dtype for side in (self, other) if side.present),
                               fractional=self.fractional + other.fractional)
        sides = [side for side in (self, other) if side.present]  # a block without values keeps the counts
        if sides and all(side.values is not None for side in sides):
            few: dict[float, int] = {}
            for side in sides:
                for value, count in side.values.items():
                    few[value] = few.get(value, 0) + count
            merged.values = few if len(few) <= FEW_VALUES else None
        if merged.present:
            delta = other.mean - self.mean
            merged.mean = self.mean + delta * other.present / merged.present
            merged.m2 = self.m2 + other.m2 + delta ** 2 * self.present * other.present / merged.present
        merged.total = self.total + other.total
        merged.minimum, merged.maximum = min(self.minimum, other.minimum), max(self.maximum, other.maximum)
        sketches = [s for s in (self.sketch, other.sketch) if s is not None]
        if sketches:
            from datasketches import kll_doubles_sketch

            merged.sketch = kll_doubles_sketch(KLL_K)  # a new one: the operands stay as they were
            for sketch in sketches:
                merged.sketch.merge(sketch)
        counts = dict(self.counts)
        for value, count in other.counts.items():
            counts[value] = counts.get(value, 0) + count
        merged.counts = _capped(counts)
        parts = [side.exact for side in (self, other) if side.present]
        if merged.numeric and merged.present <= EXACT_LIMIT and all(part is not None for part in parts):
            merged.exact = np.concatenate(parts) if parts else np.empty(0)
        if not merged.numeric:  # the numbers among the text, and those of blocks read as numbers
            numbers = [side if side.numeric else side.numbers for side in (self, other) if side.present]
            numbers = [part for part in numbers if part is not None]
            merged.numbers = numbers[0] + numbers[1] if len(numbers) == 2 else (numbers[0] if numbers else None)
        return merged

    @property
    def numeric(self) -> bool:
        return self.kind != "String"

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.present) if self.present else 0.0

    @property
    def completeness(self) -> float:
        total = self.present + self.missing
        return self.present / total if total else 0.0


def _few_values(numbers: np.ndarray) -> dict[float, int] | None:
    """Value counts of numbers with at most FEW_VALUES distinct values (flags, small codes), else None."""
    if len(pd.unique(numbers[:1000])) > FEW_VALUES:  # most columns tell at once
        return None
    values, counts = np.unique(numbers, return_counts=True)
    return dict(zip(values.tolist(), counts.tolist())) if len(values) <= FEW_VALUES else None


def _capped(counts: dict[str, int]) -> dict[str, int]:
    """The most frequent MAX_CATEGORIES values exactly; the others summed under OTHER."""
    if len(counts) <= MAX_CATEGORIES:
        return counts
    ordered = sorted(((v, c) for v, c in counts.items() if v != OTHER), key=lambda item: -item[1])
    kept = dict(ordered[:MAX_CATEGORIES])
    kept[OTHER] = counts.get(OTHER, 0) + sum(c for _, c in ordered[MAX_CATEGORIES:])
    return kept


@dataclass
class Profile:
    """Every column's profile and the row count; `+` merges (across blocks, files, windows)."""

    rows: int = 0
    columns: dict[str, ColumnProfile] = field(default_factory=dict)

    @classmethod
    def of(cls, frame: pd.DataFrame) -> Profile:
        return cls(len(frame), {str(name): ColumnProfile.of(frame[name]) for name in frame.columns})

    def __add__(self, other: Profile) -> Profile:
        columns = dict(self.columns)
        for name, column in other.columns.items():
            if name in columns:
                columns[name] = columns[name] + column
            else:  # absent from earlier blocks: those rows had no value
                columns[name] = ColumnProfile(column.kind, 0, self.rows) + column
        for name in set(self.columns) - set(other.columns):
            columns[name] = columns[name] + ColumnProfile(columns[name].kind, 0, other.rows)
        return Profile(self.rows + other.rows, columns)


def profile(frames: Iterable[pd.DataFrame]) -> Profile:
    """One pass over blocks of rows."""
    return merged(Profile.of(frame) for frame in frames)


def merged(profiles: Iterable[Profile]) -> Profile:
    total = Profile()
    for piece in profiles:
        total = total + piece
    return total


def profile_source(source: str | Path, *, part: str = "input", window: Any = None, stats: Any = None,
                   backend: str = "local", preprocess: Any = None) -> Profile:
    """The profile of a capture (its `window`) or of CSV, Parquet or JSON Lines files, read here
    block by block, or (`backend="ray"`) as one Ray Data job whose blocks are profiled where they
    are read and merged here: a month of capture files, or a folder of Parquet files. `preprocess`
    (see `preprocessor`) turns each captured event into its rows."""
    if backend == "local":
        return profile(blocks(source, part=part, window=window, stats=stats, preprocess=preprocess))
    if backend != "ray":
        raise UserError(f"backend must be local or ray, got {backend!r}")
    if preprocess is not None:
        raise UserError("a record preprocessor runs with the local backend only (--backend local)")
    path = Path(source)
    if is_capture(path):
        return _capture_profile_on_ray(path, part, window, stats)
    from fmeval.bias.scale import data_files, map_blocks

    files = data_files(source)
    return merged(map_blocks(files, _column_names(files[0]), Profile.of, backend="ray"))


def _column_names(path: str) -> list[str]:
    if path.lower().endswith(".parquet"):
        import pyarrow.parquet as pq

        return list(pq.ParquetFile(path).schema_arrow.names)
    with open(path, encoding="utf-8-sig", newline="") as handle:
        import csv

        return next(csv.reader(handle))


def _capture_profile_on_ray(path: Path, part: str, window: Any, stats: Any) -> Profile:
    """Capture files as lines on Ray Data; each block's events (of the window) profiled on a worker.
    Bad lines are counted (Ray does not say which file a line came from)."""
    import pickle

    import ray

    from fmeval.monitoring.data_capture import capture_files
    from fmeval.monitoring.windows import event_row, event_time, may_overlap

    files = [str(f) for f in capture_files(path) if window is None or may_overlap(f, window)]
    if not files:
        return Profile()
    if not ray.is_initialized():
        ray.init(ignore_reinit_error=True, log_to_driver=False)

    def reduce_lines(batch: pd.DataFrame) -> pd.DataFrame:
        rows, bad = [], 0
        for line in batch["text"]:
            if not line.strip():
                continue
            try:
                event = json.loads(line)
                row = event_row(event, part)
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
                bad += 1
                continue
            if window is None or (when := event_time(event)) is not None and window.holds(when):
                rows.append(row)
        return pd.DataFrame({"piece": [pickle.dumps((Profile.of(pd.DataFrame(rows)), len(rows), bad))]})

    total, events, bad = Profile(), 0, 0
    for row in ray.data.read_text(files).map_batches(reduce_lines, batch_format="pandas").iter_rows():
        piece, count, skipped = pickle.loads(row["piece"])
        total, events, bad = total + piece, events + count, bad + skipped
    if stats is not None:
        stats.events += events
        stats.skipped.extend([f"{bad} line(s) skipped on Ray: torn or not capture events"] if bad else [])
    return total


# -- Model Monitor's files -------------------------------------------------------------------------------
def statistics_json(result: Profile) -> dict[str, Any]:
    features = []
    for name, column in result.columns.items():
        common = {"num_present": column.present, "num_missing": column.missing}
        if column.numeric:
            stats: dict[str, Any] = {"common": common, "mean": column.mean, "sum": column.total,
                                     "std_dev": column.std, "min": column.minimum if column.present else None,
                                     "max": column.maximum if column.present else None}
            if column.sketch is not None:
                buckets = BUCKETS if column.maximum > column.minimum else 1  # a constant column: one bucket
                edges = np.linspace(column.minimum, column.maximum, buckets + 1)
                cumulative = np.concatenate([[0.0], _cdf(column, edges[1:-1]), [1.0]])
                stats["distribution"] = {"kll": {
                    "buckets": [{"lower_bound": float(edges[i]), "upper_bound": float(edges[i + 1]),
                                 "count": float((cumulative[i + 1] - cumulative[i]) * column.present)}
                                for i in range(buckets)],
                    "sketch": kll_json(column.sketch)}}
            features.append({"name": name, "inferred_type": column.kind, "numerical_statistics": stats})
        else:
            top = sorted(column.counts.items(), key=lambda item: -item[1])
            features.append({"name": name, "inferred_type": "String", "string_statistics": {
                "common": common, "distinct_count": len(column.counts),
                "distribution": {"categorical": {"buckets": [{"value": v, "count": c} for v, c in top]}}}})
    return {"version": 0.0, "dataset": {"item_count": result.rows}, "features": features}


def kll_json(sketch: Any) -> dict[str, Any]:
    """A KLL sketch as SageMaker's statistics.json holds it: its parameters and its compactor levels,
    lowest first (an item of level h stands for 2**h values), read from DataSketches' compact serial
    format (the binding's item iterator gives a merged sketch's items weight 1). DataSketches'
    compactors shrink by 2/3 a level (Deequ's, behind SageMaker, by 0.64)."""
    import struct

    data = sketch.serialize()
    parameters = {"c": KLL_C, "k": float(sketch.k)}
    if sketch.n <= 1:
        return {"parameters": parameters, "data": [[float(sketch.get_min_value())]] if sketch.n else []}
    depth = data[18]
    offsets = [*struct.unpack_from(f"<{depth}I", data, 20), _capacity(sketch.k, depth)]
    items = struct.unpack_from(f"<{offsets[-1] - offsets[0]}d", data, 20 + 4 * depth + 16)
    start = offsets[0]
    return {"parameters": parameters, "data": [list(items[offsets[h] - start:offsets[h + 1] - start])
                                               for h in range(depth)]}


def _capacity(k: int, depth: int) -> int:
    """The items a DataSketches KLL sketch of `depth` levels has room for."""
    return sum(max(KLL_M, _level_capacity(k, depth - h - 1)) for h in range(depth))


def _level_capacity(k: int, depth: int) -> int:
    """DataSketches' capacity of a compactor `depth` levels below the top: k (2/3)**depth, rounded."""
    if depth > 30:  # as DataSketches computes it, in two steps past 30 levels
        return _level_capacity(_level_capacity(k, depth // 2), depth - depth // 2)
    return (((2 * k) << depth) // 3 ** depth + 1) >> 1


def kll_from_json(sketch: dict[str, Any], minimum: float, maximum: float) -> Any:
    """A DataSketches KLL sketch holding exactly the items and weights of SageMaker's form (see
    `kll_json`), built in DataSketches' compact serial format (preamble, levels, min, max, items)."""
    import struct

    from datasketches import kll_doubles_sketch

    # DataSketches keeps every level above the first sorted; Deequ's levels may hold several sorted runs
    levels = [[float(item) for item in (sorted(level) if h else level)] for h, level in enumerate(sketch.get("data") or [])]
    k = min(0xFFFF, max(KLL_M, int(float(sketch.get("parameters", {}).get("k", KLL_K)))))
    n = sum(len(level) << h for h, level in enumerate(levels))
    if n == 0:
        return kll_doubles_sketch(k)
    if n == 1:
        (item,) = (item for level in levels for item in level)
        return kll_doubles_sketch.deserialize(struct.pack("<BBBBHBBd", 2, 2, KLL_FAMILY, 4, k, KLL_M, 0, item))
    depth = len(levels)
    capacity = _capacity(k, depth)
    retained = sum(len(level) for level in levels)
    offsets, offset = [], capacity - retained
    for level in levels:
        offsets.append(offset)
        offset += len(level)
    items = [item for level in levels for item in level]
    return kll_doubles_sketch.deserialize(
        struct.pack(f"<BBBBHBBQHBB{depth}Idd{retained}d", 5, 1, KLL_FAMILY, 0, k, KLL_M, 0, n, k, depth, 0,
                    *offsets, float(minimum), float(maximum), *items))


def profile_from_statistics(statistics: dict[str, Any]) -> Profile:
    """A baseline's profile from a statistics.json (SageMaker's or fmeval's), for checks against a
    baseline SageMaker made: counts, moments, extremes, the KLL sketch and the categories' counts."""
    columns = {}
    for number, feature in enumerate(statistics.get("features", [])):
        try:
            columns[feature["name"]] = _statistics_column(feature)
        except (KeyError, TypeError, ValueError) as exc:
            name = feature.get("name", f"#{number + 1}") if isinstance(feature, dict) else f"#{number + 1}"
            raise UserError(f"statistics.json: feature {name}: not in Model Monitor's layout "
                            f"({type(exc).__name__}: {exc})") from None
    return Profile(int(statistics.get("dataset", {}).get("item_count", 0)), columns)


def _statistics_column(feature: dict[str, Any]) -> ColumnProfile:
    """One feature of a statistics.json as a column's profile."""
    numeric = feature.get("numerical_statistics")
    stats = numeric or feature.get("string_statistics") or {}
    common = stats.get("common", {})
    present, missing = int(common.get("num_present", 0)), int(common.get("num_missing", 0))
    if numeric is None:
        column = ColumnProfile("String", present, missing)
        buckets = stats.get("distribution", {}).get("categorical", {}).get("buckets", [])
        column.counts = {str(bucket["value"]): int(bucket["count"]) for bucket in buckets}
        return column
    kind = feature.get("inferred_type")
    column = ColumnProfile(kind if kind in ("Integral", "Fractional") else "Fractional", present, missing)
    if present:
        column.mean, column.total = float(numeric["mean"]), float(numeric["sum"])
        column.m2 = float(numeric["std_dev"]) ** 2 * present
        column.minimum, column.maximum = float(numeric["min"]), float(numeric["max"])
        column.sketch = kll_from_json(numeric["distribution"]["kll"]["sketch"], column.minimum, column.maximum)
    return column


def violations_json(violations: list[dict[str, Any]]) -> dict[str, Any]:
    """constraint_violations.json: a check SageMaker does not have carries `"extension": "fmeval"`,
    so that SageMaker's readers can skip it knowingly."""
    return {"violations": [violation if violation["constraint_check_type"] in SAGEMAKER_CHECKS
                           else {**violation, "extension": "fmeval"} for violation in violations]}


def _is_categorical_range(counts: dict[str, int]) -> bool:
    """Whether a string column gets a domain, by the rule of Deequ's CategoricalRangeRule (which Model Monitor
    suggests its constraints with): few distinct values, seldom one seen once. An id or free text has none, so
    that every window's new values are no violation."""
    singletons = sum(1 for count in counts.values() if count == 1)
    return (OTHER not in counts and 0 < len(counts) <= DOMAIN_MAX_VALUES
            and singletons / len(counts) <= DOMAIN_MAX_SINGLETONS)


def constraints_json(result: Profile, *,
                     comparison_threshold: float = DataQualityOptions().comparison_threshold) -> dict[str, Any]:
    """Constraints suggested from a baseline, as Model Monitor suggests them."""
    features = []
    for name, column in result.columns.items():
        entry: dict[str, Any] = {"name": name, "inferred_type": column.kind, "completeness": column.completeness}
        if column.numeric:
            entry["num_constraints"] = {"is_non_negative": bool(column.present and column.minimum >= 0)}
        elif _is_categorical_range(column.counts):
            entry["string_constraints"] = {"domains": sorted(column.counts)}
        features.append(entry)
    written = {key: MONITORING_DEFAULTS[key] for key in ("evaluate_constraints", "emit_metrics",
                                                         "datatype_check_threshold", "domain_content_threshold")}
    comparison = {key: MONITORING_DEFAULTS[key] for key in ("perform_comparison", "comparison_method",
                                                            "categorical_drift_method")}
    return {"version": 0.0, "features": features, "monitoring_config": {**written, "distribution_constraints": {
        **comparison, "comparison_threshold": comparison_threshold, "categorical_comparison_threshold": comparison_threshold}}}


# -- drift ------------------------------------------------------------------------------------------------
def _sorted(column: ColumnProfile) -> np.ndarray:
    """The exact values, sorted once per profile (every quantile and CDF of a check reads them)."""
    if getattr(column, "_sorted_exact", None) is None or len(column._sorted_exact) != len(column.exact):
        column._sorted_exact = np.sort(column.exact)
    return column._sorted_exact


def _quantiles(column: ColumnProfile, points: np.ndarray) -> np.ndarray:
    if column.exact is not None:  # NumPy's default (linear) quantiles, from the sorted values
        values = _sorted(column)
        return np.interp(points * (len(values) - 1), np.arange(len(values)), values)
    return np.asarray(column.sketch.get_quantiles(points.tolist()), dtype=float)


def _cdf(column: ColumnProfile, at: np.ndarray) -> np.ndarray:
    """P(X <= a) for each a of `at` (ascending)."""
    if column.exact is not None:
        values = _sorted(column)
        return np.searchsorted(values, at, side="right") / len(values)
    points = np.unique(at)  # the sketch wants strictly increasing split points
    if points.size == 0:
        return np.zeros(0)
    cdf = np.asarray(column.sketch.get_cdf(points.tolist(), inclusive=True)[:-1], dtype=float)
    return cdf[np.searchsorted(points, at)]


def _frequencies(reference: ColumnProfile, current: ColumnProfile) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Both sides' counts over the union of their values (strings' values, or numbers' few values)."""
    ref_counts = reference.values if reference.numeric else reference.counts
    cur_counts = current.values if current.numeric else current.counts
    keys = sorted(set(ref_counts) | set(cur_counts))
    ref = np.array([ref_counts.get(k, 0) for k in keys], dtype=float)
    cur = np.array([cur_counts.get(k, 0) for k in keys], dtype=float)
    return keys, ref, cur


def _psi(ref: np.ndarray, cur: np.ndarray) -> float:
    return float(_psi_rows(ref[None] / ref.sum(), cur[None] / cur.sum())[0])


def _psi_rows(ref: np.ndarray, cur: np.ndarray) -> np.ndarray:
    """PSI of each row pair of shares (Evidently's floor of 0.0001 for empty bins)."""
    ref, cur = np.clip(ref, 1e-4, None), np.clip(cur, 1e-4, None)
    return np.sum((cur - ref) * np.log(cur / ref), axis=1)


def _js_rows(ref: np.ndarray, cur: np.ndarray) -> np.ndarray:
    """Jensen-Shannon distance (natural log, as SciPy's) of each row pair of shares."""
    middle = (ref + cur) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(ref > 0, ref * np.log(ref / middle), 0.0).sum(axis=1)
        right = np.where(cur > 0, cur * np.log(cur / middle), 0.0).sum(axis=1)
    return np.sqrt(np.clip((left + right) / 2, 0.0, None))


def is_categorical(reference: ColumnProfile, current: ColumnProfile, *, method: str) -> bool:
    """Strings, and integer columns with at most INTEGER_CARDINALITY_LIMIT distinct values (a 0/1 flag), as
    Evidently infers a column's type: from the current window with `evidently`, from the baseline (the same for
    every window) when calibrated. Numbers whose counts were not kept stay numerical."""
    if not reference.numeric:
        return True
    typed = current if method == "evidently" else reference
    return (typed.integer_dtype and typed.values is not None and len(typed.values) <= INTEGER_CARDINALITY_LIMIT
            and reference.values is not None and current.values is not None)


EVIDENTLY_THRESHOLDS = {"ks": 0.05, "chi_square": 0.05, "z": 0.05, "psi": 0.1, "jensen_shannon": 0.1,
                        "wasserstein": 0.1, "linf": 0.1}
"""Evidently's default thresholds: p-values for the tests, distances for the others."""
P_VALUE_TESTS = {"ks", "chi_square", "z"}


def column_drift(reference: ColumnProfile, current: ColumnProfile, *, method: str = "calibrated",
                 alpha: float = 0.01, test: str | None = None, threshold: float | None = None) -> dict[str, Any]:
    """Drift statistics of one column and its test's decision.

    `evidently`: Evidently's DataDriftPreset defaults (its type inference, its test by the reference's size
    and the number of distinct values, its fixed thresholds). `calibrated`: the column's `test` (default: the
    normed Wasserstein distance for numbers, Jensen-Shannon for categories) with a p-value at both sides' sizes:
    an exact test where there is one (KS, chi-square), else a parametric bootstrap of the distance (see
    `_calibrated`). `drifted` is the column's own decision at `alpha` (or `threshold`); `check` corrects it
    across columns."""
    from scipy import stats
    from scipy.spatial import distance

    categorical = is_categorical(reference, current, method=method)
    if categorical and test in ("ks", "wasserstein"):
        raise UserError(f"the {test} test is for numeric columns; use jensen_shannon, psi, linf or chi_square")
    out: dict[str, Any] = {"type": "categorical" if categorical else "numerical"}
    if categorical:
        keys, ref, cur = _frequencies(reference, current)
        out["linf"] = float(np.max(np.abs(ref / ref.sum() - cur / cur.sum())))
        out["psi"] = _psi(ref, cur)
        out["jensen_shannon"] = float(distance.jensenshannon(ref / ref.sum(), cur / cur.sum()))
        expected = ref * cur.sum() / ref.sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            chi = stats.chisquare(cur, expected) if np.all(expected > 0) else None
        out["chi_square"] = {"statistic": float(chi.statistic), "p_value": float(chi.pvalue)} if chi else {
            "statistic": math.inf, "p_value": 0.0}
    else:
        # SciPy's exact KS and Wasserstein where they decide (Evidently's mode, a KS column) or are cheap
        exact = method == "evidently" or test == "ks" or max(reference.present, current.present) <= EXACT_CHEAP
        _numeric_distances(reference, current, out, exact=exact)
    distinct = len(keys) if categorical else (len(set(reference.values) | set(current.values))
                                              if reference.values is not None and current.values is not None
                                              else FEW_VALUES + 1)
    if method == "evidently":
        chosen = test or _evidently_test(reference.present <= SMALL_REFERENCE, categorical, distinct)
        if chosen == "jensen_shannon" and not categorical:  # few numbers: Evidently compares their value counts
            keys, ref, cur = _frequencies(reference, current)
            out["jensen_shannon"] = float(distance.jensenshannon(ref / ref.sum(), cur / cur.sum()))
        if chosen in ("chi_square", "z") and not categorical:
            keys, ref, cur = _frequencies(reference, current)
            expected = ref * cur.sum() / ref.sum()
            chi = stats.chisquare(cur, expected)
            out["chi_square"] = {"statistic": float(chi.statistic), "p_value": float(chi.pvalue)}
        if chosen == "z":
            out["z"] = {"p_value": _z_test(ref, cur)}
        score = _score(out, chosen)
        limit = EVIDENTLY_THRESHOLDS[chosen] if threshold is None else threshold
        drifted = score < limit if chosen in P_VALUE_TESTS else score >= limit
        out.update(test=_TEST_NAMES.get(chosen, chosen), score=score, threshold=limit, drifted=bool(drifted))
        return out
    chosen = test or ("jensen_shannon" if categorical else "wasserstein")
    decision = _calibrated(reference, current, chosen, categorical, alpha, out)
    if threshold is not None:  # a fixed threshold of the user's: decided alone, outside the correction
        decision["drifted"] = bool(decision["p_value"] < threshold if chosen in P_VALUE_TESTS
                                   else decision["statistic"] >= threshold)
        decision["threshold"] = threshold
    out.update(test=_TEST_NAMES.get(chosen, chosen), score=decision["statistic"], **decision)
    return out


_TEST_NAMES = {"wasserstein": "wasserstein_normed"}
"""How the tests are named in drift.json (Evidently's names)."""


def _score(out: dict[str, Any], test: str) -> float:
    if test in P_VALUE_TESTS:
        return float(out[test]["p_value"])
    return float(out["wasserstein_normed" if test == "wasserstein" else test])


def _evidently_test(small: bool, categorical: bool, distinct: int) -> str:
    """Evidently's default test (`_get_default_stattest`): by the reference's size and the distinct values."""
    if categorical or distinct <= 5:
        if small:
            return "chi_square" if distinct > 2 else "z"
        return "jensen_shannon"
    return "ks" if small else "wasserstein"


def _numeric_distances(reference: ColumnProfile, current: ColumnProfile, out: dict[str, Any], *, exact: bool) -> None:
    """L-infinity, KS, Wasserstein (and normed) and PSI of two numeric columns: with `exact`, SciPy's from the
    values while both sides keep them; else from 4,000 quantiles (of the values, or of the KLL sketches)."""
    from scipy import stats

    grid = np.unique(np.concatenate([_quantiles(reference, np.linspace(0, 1, 201)),
                                     _quantiles(current, np.linspace(0, 1, 201))]))
    out["linf"] = float(np.max(np.abs(_cdf(reference, grid) - _cdf(current, grid))))
    if exact and reference.exact is not None and current.exact is not None:
        ks = stats.ks_2samp(reference.exact, current.exact)
        out["ks"] = {"statistic": float(ks.statistic), "p_value": float(ks.pvalue)}
        wasserstein = float(stats.wasserstein_distance(reference.exact, current.exact))
    else:
        points = (np.arange(4000) + 0.5) / 4000
        gap = np.abs(_quantiles(reference, points) - _quantiles(current, points))
        wasserstein = float(gap.mean())
        d = out["linf"]
        effective = reference.present * current.present / (reference.present + current.present)
        # Kolmogorov's limit distribution: the exact one costs a tenth of a second per column at a million rows
        p_value = stats.kstwobign.sf(d * math.sqrt(effective)) if effective > 10_000 else stats.kstwo.sf(d, round(effective))
        out["ks"] = {"statistic": d, "p_value": float(p_value)}
    out["wasserstein"] = wasserstein
    out["wasserstein_normed"] = wasserstein / reference.std if reference.std > 0 else math.inf * (wasserstein > 0)
    ref_bins, cur_bins = _decile_shares(reference, current)
    out["psi"] = float(_psi_rows(ref_bins[None], cur_bins[None])[0])


def _decile_shares(reference: ColumnProfile, current: ColumnProfile) -> tuple[np.ndarray, np.ndarray]:
    """Both sides' shares in bins closed on the right at the reference's deciles; with few distinct values (0/1
    flags) the deciles collapse onto those values, and each value keeps a bin of its own."""
    edges = np.unique(_quantiles(reference, np.linspace(0, 1, BUCKETS + 1)))[:-1]
    return (np.diff(np.concatenate([[0.0], _cdf(reference, edges), [1.0]])),
            np.diff(np.concatenate([[0.0], _cdf(current, edges), [1.0]])))


# -- calibrated decisions ------------------------------------------------------------------------------------
NULL_DRAWS = 2000  # bootstrap draws of a distance's null distribution: p-values down to 1/2001, a gamma tail below
GRID = 100  # the reference's quantile bins (about 1% each) on which the numeric distances are tested,
TRIM = 0.005  # between its 0.5% and 99.5% quantiles: one baseline's extremes would dominate a width-weighted
# distance for every window (an untrimmed grid measured 0.018 false alarms per column at alpha 0.01)
_NULLS: dict[bytes, np.ndarray] = {}  # null draws by (test, sizes, reference shares): the same for every window
_NULLS_KEPT = 512  # the oldest go first


def _calibrated(reference: ColumnProfile, current: ColumnProfile, test: str, categorical: bool, alpha: float,
                out: dict[str, Any]) -> dict[str, Any]:
    """The column's `test` with its p-value at the reference's and the window's sizes (n, m).

    KS and chi-square are exact tests (the chi-square one of homogeneity, so the reference's own sampling
    error counts). For a distance (PSI, Jensen-Shannon, normed Wasserstein, L-infinity) the null is a
    parametric bootstrap: both samples drawn again, n and m values, from the reference's shares on the test's
    bins (categories; for numbers the reference's deciles (PSI) or GRID quantile bins of its central 99%, whose
    mass beyond still moves the CDFs), the window's from a population itself drawn again from the reference (so
    that a baseline's own sampling error, which every window shares, is counted twice: conservative), the distance
    computed on the same bins for each draw and for the data. The p-value is the share of NULL_DRAWS draws at
    least as far as the data's (plus one, over NULL_DRAWS + 1); beyond the farthest draw, the tail of a gamma
    distribution fitted to the draws. The null depends only on the reference and the two sizes, so it is
    drawn once per (column, n, m) and kept in memory."""
    from scipy import stats

    n, m = reference.present, current.present
    if test == "ks":
        d, p_value = out["ks"]["statistic"], out["ks"]["p_value"]
        effective = max(1, round(n * m / (n + m)))
        return {"statistic": d, "p_value": p_value, "null_quantile": float(stats.kstwo.isf(alpha, effective)),
                "drifted": bool(p_value < alpha)}
    ref_counts, cur_counts, widths = _binned(reference, current, test, categorical)
    if test == "chi_square":
        used = (ref_counts + cur_counts) > 0
        table = np.vstack([ref_counts[used], cur_counts[used]])
        if table.shape[1] < 2:
            return {"statistic": 0.0, "p_value": 1.0, "null_quantile": 0.0, "drifted": False}
        chi = stats.chi2_contingency(table, correction=False)
        out["chi_square_homogeneity"] = {"statistic": float(chi.statistic), "p_value": float(chi.pvalue),
                                         "dof": int(chi.dof)}
        return {"statistic": float(chi.statistic), "p_value": float(chi.pvalue),
                "null_quantile": float(stats.chi2.isf(alpha, chi.dof)), "drifted": bool(chi.pvalue < alpha)}
    shares = ref_counts / ref_counts.sum()
    statistic = _statistic(test, widths / (reference.std or 1.0) if widths is not None else None)
    observed = float(statistic(shares[None], (cur_counts / cur_counts.sum())[None])[0])
    null = _null(test, shares, n, m, statistic, widths)
    farther = int(np.count_nonzero(null >= observed * (1 - 1e-9) - 1e-15))
    p_value = (farther + 1) / (len(null) + 1)
    if farther == 0:
        p_value = _gamma_tail(null, observed, test)
    return {"statistic": observed, "p_value": float(p_value), "null_quantile": float(np.quantile(null, 1 - alpha)),
            "drifted": bool(p_value < alpha)}


def _rare_pooled(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Categories seen at most once in the baseline pooled into one bin, on both sides: the baseline's
    singletons stand for the values it never saw (Good-Turing), so an id or free-text column's new values
    are expected, while a new category of a column without singletons still stands alone."""
    rare = ref <= 1
    if np.count_nonzero(rare) < 2:
        return ref, cur
    return np.append(ref[~rare], ref[rare].sum()), np.append(cur[~rare], cur[rare].sum())


def _binned(reference: ColumnProfile, current: ColumnProfile, test: str,
            categorical: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Both sides' counts on the test's bins, and for the Wasserstein distance the bins' widths."""
    if categorical:
        _, ref, cur = _frequencies(reference, current)
        return (*_rare_pooled(ref, cur), None)
    if test in ("psi", "chi_square"):
        ref_shares, cur_shares = _decile_shares(reference, current)
        return ref_shares * reference.present, cur_shares * current.present, None
    edges = np.unique(_quantiles(reference, np.linspace(TRIM, 1 - TRIM, GRID + 1)))
    ref_shares = np.diff(np.concatenate([[0.0], _cdf(reference, edges), [1.0]]))
    cur_shares = np.diff(np.concatenate([[0.0], _cdf(current, edges), [1.0]]))
    return ref_shares * reference.present, cur_shares * current.present, np.diff(edges)


def _statistic(test: str, widths: np.ndarray | None) -> Any:
    """The distance of row pairs of shares on the test's bins."""
    if test == "psi":
        return _psi_rows
    if test == "jensen_shannon":
        return _js_rows
    if widths is None:  # categories
        return lambda ref, cur: np.max(np.abs(ref - cur), axis=1)
    if test == "linf":
        return lambda ref, cur: np.max(np.abs(np.cumsum(ref, axis=1) - np.cumsum(cur, axis=1)), axis=1)
    # Wasserstein-1: the area between the CDFs, which are steps at the bins' edges
    return lambda ref, cur: np.abs(np.cumsum(ref, axis=1) - np.cumsum(cur, axis=1))[:, :len(widths)] @ widths


def _null(test: str, shares: np.ndarray, n: int, m: int, statistic: Any, widths: np.ndarray | None) -> np.ndarray:
    import hashlib

    digest = hashlib.blake2b(f"{test}/{n}/{m}/{NULL_DRAWS}".encode() + shares.tobytes()
                             + (widths.tobytes() if widths is not None else b""), digest_size=16).digest()
    if digest in _NULLS:
        return _NULLS[digest]
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))  # seeded by the inputs: reproducible
    used = shares > 0
    probabilities = shares[used] / shares[used].sum()

    def draw(size: int, from_shares: np.ndarray) -> np.ndarray:
        counts = np.zeros((NULL_DRAWS, len(shares)))
        counts[:, used] = rng.multinomial(size, from_shares, size=None if from_shares.ndim > 1 else NULL_DRAWS)
        return counts / size

    # The window is drawn from a population drawn again from the baseline (whose own sampling error every window
    # shares, so a baseline that happens to sit off its population would raise every window's false alarms)
    population = draw(n, probabilities)[:, used]
    null = statistic(draw(n, probabilities), draw(m, population / population.sum(axis=1, keepdims=True)))
    if len(_NULLS) >= _NULLS_KEPT:
        _NULLS.pop(next(iter(_NULLS)))
    _NULLS[digest] = null
    return null


def _gamma_tail(null: np.ndarray, observed: float, test: str) -> float:
    """P(null >= observed) beyond the farthest draw, from a gamma distribution moment-fitted to the draws on a
    divergence's scale (squared distances; PSI is one already)."""
    from scipy import stats

    scale = (lambda value: value) if test == "psi" else np.square
    values, at = scale(null), float(scale(np.asarray(observed)))
    mean, variance = float(values.mean()), float(values.var())
    if variance <= 0 or mean <= 0:
        return 0.0
    return float(min(1 / (len(null) + 1), stats.gamma.sf(at, mean ** 2 / variance, scale=variance / mean)))


def holm(p_values: dict[str, float]) -> dict[str, float]:
    """Holm's step-down adjusted p-values: a column drifts when its adjusted p-value is below alpha, so that
    an undrifted window marks any column drifted with probability at most alpha."""
    order = sorted(p_values, key=p_values.get)
    adjusted, running = {}, 0.0
    for rank, name in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p_values[name]))
        adjusted[name] = running
    return adjusted


def distributions(reference: Profile, current: Profile, *, bins: int = 20, top: int = 10) -> dict[str, Any]:
    """Each shared column's baseline and current shares on the same bins (numbers: equal-width bins
    over both ranges; strings: the baseline's most frequent values and the rest), for reports."""
    shown: dict[str, Any] = {}
    for name, ref in reference.columns.items():
        cur = current.columns.get(name)
        if cur is None or not ref.present or not cur.present or ref.numeric != cur.numeric:
            continue
        if ref.numeric:
            edges = np.linspace(min(ref.minimum, cur.minimum), max(ref.maximum, cur.maximum), bins + 1)
            shares = [np.diff(np.concatenate([[0.0], _cdf(column, edges[1:-1]), [1.0]])).tolist() for column in (ref, cur)]
            shown[name] = {"type": "numerical", "edges": edges.tolist(), "baseline": shares[0], "current": shares[1]}
            continue
        values = sorted(ref.counts, key=lambda value: -ref.counts[value])[:top]
        values += [v for v in sorted(cur.counts, key=lambda value: -cur.counts[value])[:top] if v not in values][:2]
        shares = []
        for column in (ref, cur):
            counts = [column.counts.get(value, 0) / column.present for value in values]
            shares.append([*counts, max(0.0, 1 - sum(counts))])
        shown[name] = {"type": "categorical", "values": [*values, "(other)"], "baseline": shares[0], "current": shares[1]}
    return shown


def _z_test(ref: np.ndarray, cur: np.ndarray) -> float:
    """Two-proportion Z-test of the first category's share (two-sided), as Evidently's z stattest."""
    from scipy import stats

    n1, n2 = ref.sum(), cur.sum()
    p1, p2 = ref[0] / n1, cur[0] / n2
    pooled = (ref[0] + cur[0]) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if spread == 0:
        return 1.0
    return float(2 * stats.norm.sf(abs(p1 - p2) / spread))


# -- the check ---------------------------------------------------------------------------------------------
def completeness_p_value(present: int, total: int, baseline: float, *, tolerance: float) -> float:
    """One-sided binomial test that the window's completeness is at least the baseline's less `tolerance`
    (H0), against less: P(X <= present) for X ~ Binomial(total, baseline - tolerance)."""
    from scipy import stats

    floor = baseline - tolerance
    if floor <= 0 or total == 0:
        return 1.0
    return float(stats.binom.cdf(present, total, min(floor, 1.0)))


def type_mismatch(baseline_type: str, column: ColumnProfile) -> float:
    """The share of a column's values that are not of the baseline's type: text that is not a number in a
    numeric column, fractional numbers in an Integral one, and numbers where the baseline had strings."""
    if not column.present:
        return 0.0
    if baseline_type == "String":
        return 0.0 if column.kind == "String" else 1.0
    if column.kind == "String":
        def numeric(value: str) -> bool:
            try:
                float(value)
            except ValueError:
                return False
            return value != OTHER
        return sum(count for value, count in column.counts.items() if not numeric(value)) / column.present
    return column.fractional / column.present if baseline_type == "Integral" else 0.0


def feature_overrides(feature: dict[str, Any]) -> dict[str, Any]:
    """A constraints.json feature's own monitoring settings: `monitoringConfigOverrides` as SageMaker's
    documentation spells it, or `monitoring_config_overrides` as the SageMaker SDK's
    `Constraints.set_monitoring` writes it."""
    return {**(feature.get("monitoringConfigOverrides") or {}), **(feature.get("monitoring_config_overrides") or {})}


def check(baseline: Profile, constraints: dict[str, Any], current: Profile, *,
          options: DataQualityOptions | None = None) -> dict[str, Any]:
    """Violations (Model Monitor's layout) and drift of `current` against the baseline, honouring
    constraints.json's monitoring_config (and each feature's monitoringConfigOverrides) and the monitor's
    `options` (drift method, alpha, completeness tolerance, per-column tests, columns left out)."""
    options = options or DataQualityOptions()
    if current.rows == 0:
        return {"status": "NoData", "violations": [], "drift": {}}
    config = {**MONITORING_DEFAULTS, **constraints.get("monitoring_config", {})}
    evaluate = config["evaluate_constraints"] == "Enabled"
    violations: list[dict[str, str]] = []
    overrides = {f["name"]: feature_overrides(f) for f in constraints.get("features", [])}

    def violate(feature: str, kind: str, description: str) -> None:
        if evaluate and overrides.get(feature, {}).get("evaluate_constraints", "Enabled") == "Enabled":
            violations.append({"feature_name": feature, "constraint_check_type": kind, "description": description})

    def checked(name: str) -> bool:
        column = options.columns.get(name)
        return (options.include is None or name in options.include) and not (column and column.exclude)

    declared = {f["name"]: f for f in constraints.get("features", []) if checked(f["name"])}
    for name in sorted(set(declared) - set(current.columns)):
        violate(name, "missing_column_check", f"Column {name} is in the baseline but not in the current data")
    for name in sorted(set(current.columns) - set(declared) - {f["name"] for f in constraints.get("features", [])}):
        if checked(name):
            violate(name, "extra_column_check", f"Column {name} is in the current data but not in the baseline")
    drift: dict[str, Any] = {}
    comparisons: dict[str, dict[str, Any]] = {}
    for name, rule in declared.items():
        column = current.columns.get(name)
        if column is None or column.present + column.missing == 0:
            continue
        settings = {**config, **config.get("distribution_constraints", {}), **overrides[name]}
        mismatch = type_mismatch(rule["inferred_type"], column)
        type_threshold = float(settings["datatype_check_threshold"])
        if mismatch > type_threshold:
            violate(name, "data_type_check", f"Data type changed: baseline {rule['inferred_type']}, current "
                                             f"{column.kind} ({mismatch:.2%} of values are not {rule['inferred_type']}, "
                                             f"above datatype_check_threshold {type_threshold})")
            continue
        total = column.present + column.missing
        expected = float(rule.get("completeness", 0.0))
        p_value = completeness_p_value(column.present, total, expected, tolerance=options.completeness_tolerance)
        if p_value < options.alpha:
            violate(name, "completeness_check", f"Completeness {column.completeness:.4f} ({column.present} of {total}) "
                    f"is below the baseline's {expected:.4f} by more than {options.completeness_tolerance}: one-sided "
                    f"binomial test p = {p_value:.2g} < alpha {options.alpha}")
        if column.present == 0:
            continue
        if rule["inferred_type"] != "String" and not column.numeric and column.numbers is not None:
            column = column.numbers  # a number column with some text (within the type threshold): check its numbers
        if rule.get("num_constraints", {}).get("is_non_negative") and column.numeric and column.minimum < 0:
            violate(name, "negative_values_check", f"Negative values (min {column.minimum}) in a non-negative column")
        domains = rule.get("string_constraints", {}).get("domains")
        if domains is not None and not column.numeric:
            domain_threshold = float(settings["domain_content_threshold"])
            inside = sum(count for value, count in column.counts.items() if value in set(domains)) / column.present
            if inside < domain_threshold:
                new = sorted(v for v in column.counts if v not in set(domains))[:5]
                violate(name, "categorical_values_check", f"{1 - inside:.2%} of values are outside the baseline's "
                                                          f"domain (e.g. {', '.join(map(repr, new))})")
        reference = baseline.columns.get(name)
        if reference is None or reference.present == 0 or reference.numeric != column.numeric:
            continue
        own = options.columns.get(name)
        try:
            drift[name] = column_drift(reference, column, method=options.drift_method, alpha=options.alpha,
                                       test=own.test if own else None, threshold=own.threshold if own else None)
        except UserError as exc:
            raise UserError(f"column {name!r}: {exc}") from None
        comparisons[name] = settings
    corrected = {name: entry["p_value"] for name, entry in drift.items()
                 if options.drift_method == "calibrated" and not (options.columns.get(name)
                                                                   and options.columns[name].threshold is not None)}
    for name, adjusted in holm(corrected).items():
        drift[name]["p_adjusted"] = adjusted
        drift[name]["drifted"] = adjusted < options.alpha
    for name, entry in drift.items():
        settings = comparisons[name]
        if settings["perform_comparison"] != "Enabled":
            continue
        categorical = not baseline.columns[name].numeric
        threshold = float(settings.get("categorical_comparison_threshold", settings["comparison_threshold"])
                          if categorical else settings["comparison_threshold"])
        if categorical and settings["categorical_drift_method"] == "ChiSquared":
            basis, beyond = f"chi-square p-value {entry['chi_square']['p_value']:.4g}", entry["chi_square"]["p_value"] < threshold
            where = f"is below threshold {threshold}"
        else:
            basis, beyond = f"L-infinity distance {entry['linf']:.4f}", entry["linf"] > threshold
            where = f"exceeds threshold {threshold}"
        robust = settings["comparison_method"] == "Robust"
        if beyond and (entry["drifted"] or not robust):
            significance = (f"; and the column drifted: {_basis(entry, options)}" if robust else " (comparison_method Simple)")
            violate(name, "baseline_drift_check", f"Baseline drift: {basis} {where}{significance}")
    drifted = sum(1 for entry in drift.values() if entry["drifted"])
    share = drifted / len(drift) if drift else 0.0
    summary = {"columns": len(drift), "drifted_columns": drifted, "share": share, "method": options.drift_method,
               "dataset_drift": bool(drift) and (drifted >= 1 if options.drift_method == "calibrated" else share >= 0.5),
               "basis": (f"a column drifts when its Holm-adjusted p-value is below alpha {options.alpha} (so an "
                         f"undrifted window marks any column with probability at most {options.alpha}); the dataset "
                         f"drifts when any column does" if options.drift_method == "calibrated" else
                         "Evidently 0.7.23's DataDriftPreset: each column's default test at its fixed threshold; "
                         "the dataset drifts when at least half of its columns do")}
    return {"status": "CompletedWithViolations" if violations else "Completed", "violations": violations,
            "drift": {"columns": drift, "dataset": summary},
            "emit_metrics": config["emit_metrics"] == "Enabled"}


def _basis(entry: dict[str, Any], options: DataQualityOptions) -> str:
    """A column's drift decision in words."""
    if options.drift_method == "evidently":
        relation = "below" if entry["test"] in P_VALUE_TESTS else "at or above"
        return f"{entry['test']} {entry['score']:.4g} {relation} Evidently's threshold {entry['threshold']}"
    if "p_adjusted" not in entry:
        return f"{entry['test']} {entry['score']:.4g} against the column's own threshold {entry['threshold']}"
    return (f"{entry['test']} {entry['score']:.4g}, p = {entry['p_value']:.2g} (Holm-adjusted {entry['p_adjusted']:.2g}) "
            f"< alpha {options.alpha}")


def dumps(value: Any) -> str:
    """JSON with infinities written as strings (as Model Monitor's and Clarify's files do)."""
    def clean(item: Any) -> Any:
        if isinstance(item, float) and not math.isfinite(item):
            return "Infinity" if item > 0 else "-Infinity" if item < 0 else None
        if isinstance(item, dict):
            return {k: clean(v) for k, v in item.items()}
        if isinstance(item, list):
            return [clean(v) for v in item]
        if isinstance(item, (np.bool_,)):
            return bool(item)
        return item

    return json.dumps(clean(value), indent=2) + "\n"


# -- a profile on disk (the baseline's, for later checks) -------------------------------------------------
def profile_to_json(result: Profile) -> dict[str, Any]:
    return {"rows": result.rows, "columns": {name: {
        "kind": c.kind, "present": c.present, "missing": c.missing, "mean": c.mean, "m2": c.m2, "total": c.total,
        "minimum": c.minimum if c.present else None, "maximum": c.maximum if c.present else None,
        "sketch": c.sketch.serialize().hex() if c.sketch is not None else None, "counts": c.counts,
        "exact": c.exact.tolist() if c.exact is not None else None, "integer_dtype": c.integer_dtype,
        "fractional": c.fractional, "values": list(c.values.items()) if c.values is not None else None}
        for name, c in result.columns.items()}}


def profile_from_json(data: dict[str, Any]) -> Profile:
    from datasketches import kll_doubles_sketch

    columns = {}
    for name, c in data["columns"].items():
        column = ColumnProfile(c["kind"], c["present"], c["missing"], c["mean"], c["m2"], c["total"],
                               math.inf if c["minimum"] is None else c["minimum"],
                               -math.inf if c["maximum"] is None else c["maximum"])
        column.sketch = kll_doubles_sketch.deserialize(bytes.fromhex(c["sketch"])) if c["sketch"] else None
        column.counts = c["counts"]
        column.exact = np.asarray(c["exact"], dtype=float) if c.get("exact") is not None else None
        column.integer_dtype, column.fractional = bool(c.get("integer_dtype", False)), int(c.get("fractional", 0))
        column.values = {float(v): int(n) for v, n in c["values"]} if c.get("values") is not None else None
        columns[name] = column
    return Profile(data["rows"], columns)


# -- where the rows come from ------------------------------------------------------------------------------
def blocks(source: str | Path, *, part: str = "input", block_rows: int = 100_000, window: Any = None,
           stats: Any = None, preprocess: Any = None) -> Iterator[pd.DataFrame]:
    """Blocks of rows from a capture directory (each event's input or output: a JSON object is a
    row, a JSON list or CSV line its values c0, c1, ...; only the events of `window`, a
    `windows.Window`, when given), or from CSV, Parquet or JSON Lines files (a file, a folder or
    a glob)."""
    path = Path(source)
    if is_capture(path):
        yield from _capture_blocks(path, part, block_rows, window, stats, preprocess)
        return
    if preprocess is not None:
        raise UserError(f"a record preprocessor reads captured events; {source} is not a capture directory")
    if window is not None:
        raise UserError(f"--window selects captured events by their time; {source} is not a capture directory")
    import pyarrow as pa

    files = sorted(str(p) for p in path.iterdir() if p.suffix.lower() in (".csv", ".parquet", ".jsonl")) \
        if path.is_dir() else sorted(glob.glob(str(source))) or [str(source)]
    for name in files:
        if not Path(name).is_file():
            raise UserError(f"no data at {name}")
        try:
            yield from _file_blocks(name, block_rows)
        except UnicodeDecodeError as exc:
            raise DataError(name, f"not valid UTF-8 ({exc.reason} at byte {exc.start}); save the file as UTF-8") from None
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(name, f"cannot be read: {str(exc).splitlines()[0]}") from None


def _file_blocks(name: str, block_rows: int) -> Iterator[pd.DataFrame]:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    suffix = Path(name).suffix.lower()
    if suffix == ".parquet":
        for batch in pq.ParquetFile(name).iter_batches(batch_size=block_rows):
            yield batch.to_pandas()
    elif suffix == ".csv":
        import pyarrow as pa

        reader = pacsv.open_csv(name, convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
        for batch in reader:
            undecoded = [field.name for field in batch.schema if pa.types.is_binary(field.type)]
            if undecoded:  # pyarrow keeps text that is not UTF-8 as bytes
                raise DataError(name, f"column {undecoded[0]!r} is not valid UTF-8; save the file as UTF-8")
            yield batch.to_pandas()
    else:  # JSON Lines, as the dataset reader reads them: a bad line is named by its file:line
        from fmeval.datasets.readers import read_jsonlines

        rows: list[Any] = []
        for location, row in read_jsonlines(name):
            if isinstance(row, DataError):
                raise row
            if not isinstance(row, dict):
                raise DataError(location, "each line must be a JSON object")
            rows.append(row)
            if len(rows) >= block_rows:
                yield pd.DataFrame(rows)
                rows = []
        if rows:
            yield pd.DataFrame(rows)


def _capture_blocks(path: Path, part: str, block_rows: int, window: Any, stats: Any,
                    preprocess: Any = None) -> Iterator[pd.DataFrame]:
    from fmeval.monitoring.windows import event_row, window_events

    rows: list[dict[str, Any]] = []
    for event in window_events(path, window, stats):
        if preprocess is not None:
            rows.extend(preprocess(event))
        else:
            rows.append(event_row(event, part))
        if len(rows) >= block_rows:
            yield pd.DataFrame(rows)
            rows = []
    if rows:
        yield pd.DataFrame(rows)
