"""Bias metrics over data larger than memory: one block at a time, on this machine or on Ray Data.

Every metric but FT is a function of counts, and counts add up, so the files are read in blocks
of rows and each block is reduced to small mergeable pieces. Two passes:

1. a summary of each column the metrics read (its type, the rows with a value, the maximum, and
   its distinct values up to `DISTINCT_LIMIT`). Merged, it decides what the in-memory analysis
   decides from the whole column: whether it is continuous (smclarify's rule), how a threshold's
   interval is labelled, and which values a facet has;
2. the counts (facet group x label x prediction, per group-variable value) of each facet group.

Rows missing a label, facet, predicted label or group are dropped first, as in memory, and
counted. The result is analysis.json's bias sections, equal to the in-memory analysis of the same
rows; FT, which needs every row's features at once, is reported as not computed. Predictions come
from a predicted-label or probability column (run the model first). Parquet and CSV files (with
a header row) are read with pyarrow, the same way locally and on Ray.
"""
from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd

from fmeval.bias import metrics as bias
from fmeval.bias.analyze import _methods
from fmeval.bias.frame import described as _described
from fmeval.bias.groups import (
    _Encoded, _one_outcome, _threshold, continuous_by_rule, integral_text, select, value_class,
)
from fmeval.errors import UserError

DISTINCT_LIMIT = 1_000_000
"""Distinct values kept per column; a column with more is continuous if numeric (5% of rows is
then at least this many only beyond 20M rows: set the facet's "type" there)."""
BLOCK_ROWS = 1 << 20
FT_NOT_COMPUTED = "FT needs every row's features at once; the streaming path does not compute it"
FORMATS = {".parquet": "parquet", ".csv": "csv"}


@dataclass
class ColumnSummary:
    """What the metrics need to know about a whole column; `+` merges two blocks' summaries."""

    value_kind: str
    present: int = 0
    maximum: float | None = None
    distinct: set[Any] = field(default_factory=set)
    overflow: bool = False  # more than DISTINCT_LIMIT distinct values
    all_integral_text: bool = True

    @classmethod
    def of(cls, values: pd.Series) -> ColumnSummary:
        present = values.dropna()
        kind = value_class(values)
        distinct = pd.unique(present)
        numbers = pd.to_numeric(present, errors="coerce") if kind != "text" else pd.to_numeric(
            pd.Series(distinct), errors="coerce")
        maximum = numbers.max() if numbers.notna().any() else None
        return cls(kind, len(present), None if maximum is None else getattr(maximum, "item", lambda: maximum)(),
                   set(distinct[: DISTINCT_LIMIT + 1].tolist()), len(distinct) > DISTINCT_LIMIT,
                   kind != "text" or integral_text(distinct))

    def __add__(self, other: ColumnSummary) -> ColumnSummary:
        kinds = {self.value_kind, other.value_kind}
        kind = self.value_kind if len(kinds) == 1 else "float" if kinds == {"int", "float"} else "text"
        maxima = [m for m in (self.maximum, other.maximum) if m is not None]
        distinct = self.distinct | other.distinct
        overflow = self.overflow or other.overflow or len(distinct) > DISTINCT_LIMIT
        return ColumnSummary(kind, self.present + other.present, max(maxima) if maxima else None,
                             set() if overflow else distinct, overflow,
                             self.all_integral_text and other.all_integral_text)

    def continuous(self, chosen: Any, kind: str | None, what: str) -> bool:
        if kind is not None:
            return kind == "continuous"
        if isinstance(chosen, list) and len(chosen) > 1:
            return False
        if self.overflow and self.value_kind in ("int", "text") and self.present * 0.05 > DISTINCT_LIMIT:
            raise UserError(f"{what}: more than {DISTINCT_LIMIT:,} distinct values in {self.present:,} rows: "
                            f'set its "type" (categorical or continuous)')
        distinct = DISTINCT_LIMIT + 1 if self.overflow else len(self.distinct)
        return continuous_by_rule(self.value_kind, self.present, distinct, lambda: self.all_integral_text)

    def values(self, name: str) -> pd.Series:
        """The distinct values, typed like the column (for matching chosen values as in memory)."""
        ordered = sorted(self.distinct, key=str)
        return pd.Series(ordered, dtype="float64" if self.value_kind == "float" else None, name=name)


# -- reading ------------------------------------------------------------------------------------------
def data_files(data: str | Path) -> list[str]:
    """A file, a folder of Parquet or CSV files, or a glob."""
    path = Path(data)
    if path.is_dir():
        files = sorted(str(p) for p in path.iterdir() if p.suffix.lower() in FORMATS)
    else:
        files = sorted(glob.glob(str(data))) if any(c in str(data) for c in "*?[") else [str(data)]
    if not files or not all(Path(f).is_file() for f in files):
        raise UserError(f"no Parquet or CSV files at {data}")
    for name in files:  # unreadable files fail here, in one line, not inside a reader (or a Ray worker)
        try:
            open(name, "rb").close()
        except OSError as exc:
            raise UserError(f"{name}: cannot be read: {exc.strerror or exc}") from None
    formats = {FORMATS.get(Path(f).suffix.lower()) for f in files}
    if None in formats or len(formats) != 1:
        raise UserError(f"the streaming path reads .parquet or .csv files, one format at a time; got {data}")
    return files


def blocks(files: list[str], columns: list[str], block_rows: int = BLOCK_ROWS) -> Iterator[pd.DataFrame]:
    """The files' rows, `block_rows` at a time, with only `columns`."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    for path in files:
        if path.lower().endswith(".parquet"):
            for batch in pq.ParquetFile(path).iter_batches(batch_size=block_rows, columns=columns):
                yield batch.to_pandas()
        else:
            reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 24),
                                    convert_options=csv_options(columns))
            try:
                for batch in reader:
                    yield batch.to_pandas()
            except pa.ArrowInvalid as exc:
                raise UserError(f"{path}: {exc} (column types are inferred from the first rows: convert the file "
                                f"to Parquet, or keep each column's values of one type)") from None


def csv_options(columns: list[str]) -> Any:
    """pyarrow's CSV conversion, reading empty fields as missing, as pandas does."""
    import pyarrow.csv as pacsv

    return pacsv.ConvertOptions(include_columns=columns, strings_can_be_null=True)


# -- the two passes -------------------------------------------------------------------------------------
def _summaries(frame: pd.DataFrame, required: list[str]) -> tuple[int, dict[str, ColumnSummary]]:
    missing = frame[required].isna().any(axis=1).to_numpy()
    kept = frame[~missing]
    return int(missing.sum()), {column: ColumnSummary.of(kept[column]) for column in frame.columns}


def _merge_summaries(parts: Any) -> tuple[int, dict[str, ColumnSummary]]:
    missing, merged = 0, {}
    for dropped, summaries in parts:
        missing += dropped
        for column, summary in summaries.items():
            merged[column] = merged[column] + summary if column in merged else summary
    return missing, merged


@dataclass
class Chooser:
    """How a block's rows are selected, fixed for the whole data: the chosen values or threshold,
    whether the column is continuous, and the top of a threshold's interval."""

    column: str
    chosen: Any
    kind: str
    upper: float | None = None

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        return select(frame[self.column], self.chosen, self.column, kind=self.kind, required=False,
                      upper=self.upper).mask


@dataclass
class Plan:
    """What pass 2 computes on each block: the label, the prediction, and each facet group."""

    required: list[str]
    label: Chooser
    predicted: Chooser | None
    probability: tuple[str, float] | None
    group: str | None
    facets: dict[str, list[tuple[str, Chooser]]]

    def counts(self, frame: pd.DataFrame) -> dict[tuple[str, int], bias.Counts]:
        frame = frame[~frame[self.required].isna().any(axis=1)]
        positive = self.label.mask(frame)
        predicted = None
        if self.predicted is not None:
            predicted = self.predicted.mask(frame)
        elif self.probability is not None:
            predicted = frame[self.probability[0]].to_numpy(dtype=float) > self.probability[1]
        group = frame[self.group] if self.group is not None else None
        return {(column, index): bias.Counts.of(chooser.mask(frame), positive, predicted, group=group)
                for column, groups in self.facets.items() for index, (_, chooser) in enumerate(groups)}


def _merge_counts(parts: Any) -> dict[tuple[str, int], bias.Counts]:
    merged: dict[tuple[str, int], bias.Counts] = {}
    for counts in parts:
        for key, value in counts.items():
            merged[key] = merged[key] + value if key in merged else value
    return merged


def _plan(config: dict[str, Any], summaries: dict[str, ColumnSummary], label: str, facets: list[tuple[Any, str]],
          predicted: str | None, probability: str | None, group: str | None, required: list[str]) -> Plan:
    label_spec = config.get("label_values_or_threshold", [1])
    label_continuous = summaries[label].continuous(label_spec, config.get("label_type"), "label")
    label_kind = "continuous" if label_continuous else "categorical"
    if label_continuous and _threshold(label_spec) is None:
        raise UserError(f"label_values_or_threshold: a continuous column needs a threshold (a number), got {label_spec!r}")
    if not label_continuous:  # "never occur" is a whole-data check
        _Encoded(summaries[label].values(label)).of_values(label_spec if isinstance(label_spec, list) else [label_spec],
                                                     "label_values_or_threshold")
    label_upper = summaries[label].maximum
    predicted_chooser = None
    if predicted is not None:
        upper = max(m for m in (label_upper, summaries[predicted].maximum) if m is not None) if label_continuous else None
        predicted_chooser = Chooser(predicted, label_spec, label_kind, upper)
    facet_groups = {}
    for facet, column in facets:
        summary, chosen = summaries[column], facet.get("value_or_threshold")
        continuous = summary.continuous(chosen, facet.get("type"), f"facet {column!r}")
        if chosen is None:
            if continuous:
                raise UserError(f"facet {column!r} is continuous: give a threshold (value_or_threshold: [number]), or "
                                f'"type": "categorical" to report each of its values')
            facet_groups[column] = [(str(value), Chooser(column, [value], "categorical"))
                                    for value in summary.values(column)]
            continue
        if continuous and _threshold(chosen) is not None:
            top = max(summary.maximum, _threshold(chosen))
            description = str(pd.Interval(_threshold(chosen), top, closed="right"))
            facet_groups[column] = [(description, Chooser(column, chosen, "continuous", summary.maximum))]
            continue
        wanted = chosen if isinstance(chosen, list) else [chosen]
        _Encoded(summary.values(column)).of_values(wanted, f"facet {column!r}")
        facet_groups[column] = [(",".join(map(str, wanted)), Chooser(column, chosen, "categorical"))]
    threshold = float(config.get("probability_threshold", 0.5))
    return Plan(required, Chooser(label, label_spec, label_kind, label_upper), predicted_chooser,
                (probability, threshold) if probability is not None and predicted is None else None, group,
                facet_groups)


def _label_description(config: dict[str, Any], plan: Plan) -> str:
    label_spec = config.get("label_values_or_threshold", [1])
    if plan.label.kind == "continuous":
        threshold = _threshold(label_spec)
        return str(pd.Interval(threshold, max(plan.label.upper, threshold), closed="right"))
    return ",".join(map(str, label_spec if isinstance(label_spec, list) else [label_spec]))


def streamed_bias(config: dict[str, Any], data: str | Path, *, backend: str = "local",
                  block_rows: int = BLOCK_ROWS, on_block: Callable[[], None] | None = None) -> dict[str, Any]:
    """analysis.json's bias sections for `data` (files), computed block by block; `backend`
    "ray" maps the blocks over Ray Data."""
    files = data_files(data)
    methods = config.get("methods") or {}
    stages = [(stage, methods[section]) for stage, section in (("pre_training_bias_metrics", "pre_training_bias"),
                                                               ("post_training_bias_metrics", "post_training_bias"))
              if methods.get(section) is not None]
    for key in ("label", "facet"):
        if not config.get(key):
            raise UserError(f"bias metrics need {'a `label`' if key == 'label' else 'at least one `facet`'} in the config")
    names = {key: config.get(key) for key in ("predicted_label_name_or_index", "probability_name_or_index",
                                               "group_variable")}
    for key, value in [("label", config["label"]), *names.items(), *(("facet", f["name_or_index"]) for f in config["facet"])]:
        if value is not None and not isinstance(value, str):
            raise UserError(f"{key}: the streaming path names columns (got index {value!r})")
    label, facets = config["label"], [(facet, facet["name_or_index"]) for facet in config["facet"]]
    predicted, probability, group = names.values()
    if any(stage == "post_training_bias_metrics" for stage, _ in stages) and predicted is None and probability is None:
        raise UserError("post-training bias on the streaming path needs predicted_label_name_or_index or "
                        "probability_name_or_index: run the model on the data first")
    required = [c for c in (label, *(c for _, c in facets), predicted, group) if c is not None]
    columns = list(dict.fromkeys([*required, *([probability] if probability else [])]))
    if config.get("missing_values", "drop") == "fail":
        raise UserError('missing_values "fail" needs the in-memory path (it lists the rows); use "drop" here')
    mapped = _ray_map if backend == "ray" else _local_map
    missing, summaries = _merge_summaries(mapped(files, columns, block_rows, lambda f: _summaries(f, required), on_block))
    if not summaries:
        raise UserError(f"{data}: no rows")
    plan = _plan(config, summaries, label, facets, predicted, probability, group, required)
    counts = _merge_counts(mapped(files, columns, block_rows, plan.counts, on_block))
    first = next(iter(counts.values()))
    positives = int(first.table[:, 1, :].sum())
    if positives in (0, int(first.table.sum())):
        raise UserError(_one_outcome(summaries[label].values(label), config.get("label_values_or_threshold", [1]),
                                     config.get("label_type"), positives > 0))
    report: dict[str, Any] = {}
    if missing:
        report["rows_with_missing_values"] = {"count": missing, "action": "dropped", "rows": []}
    for stage, section in stages:
        report[stage] = {"label": label, "label_value_or_threshold": _label_description(config, plan), "facets": {
            column: [{"value_or_threshold": description,
                      "metrics": _stage_metrics(stage, section, counts[(column, index)])}
                     for index, (description, _) in enumerate(plan.facets[column])]
            for _, column in facets}}
    return report


def _stage_metrics(stage: str, section: Any, counts: bias.Counts) -> list[dict[str, Any]]:
    if stage == "pre_training_bias_metrics":
        return _described(bias.evaluate(bias.pre_training(counts), _methods(section, bias.PRE_TRAINING)),
                          bias.PRE_TRAINING)
    computed = bias.post_training(counts)

    def not_computed() -> float:
        raise bias.MetricUndefined(FT_NOT_COMPUTED)

    computed["FT"] = not_computed
    return _described(bias.evaluate(computed, _methods(section, bias.POST_TRAINING)), bias.POST_TRAINING)


# -- where the blocks are reduced -----------------------------------------------------------------------
def map_blocks(files: list[str], columns: list[str], reduce: Callable[[pd.DataFrame], Any], *, backend: str = "local",
               block_rows: int = BLOCK_ROWS) -> Iterator[Any]:
    """`reduce` of each block of the files' rows (only `columns`), here or on Ray Data."""
    return (_ray_map if backend == "ray" else _local_map)(files, columns, block_rows, reduce, None)


def _local_map(files: list[str], columns: list[str], block_rows: int, reduce: Callable[[pd.DataFrame], Any],
               on_block: Callable[[], None] | None) -> Iterator[Any]:
    for frame in blocks(files, columns, block_rows):
        yield reduce(frame)
        if on_block is not None:
            on_block()


def _ray_map(files: list[str], columns: list[str], block_rows: int, reduce: Callable[[pd.DataFrame], Any],
             on_block: Callable[[], None] | None) -> Iterator[Any]:
    """The same reduction on Ray Data's blocks: each becomes one pickled row, merged here as it arrives."""
    import pickle

    import ray

    if not ray.is_initialized():
        ray.init(ignore_reinit_error=True, log_to_driver=False)
    if files[0].lower().endswith(".parquet"):
        dataset = ray.data.read_parquet(files).select_columns(columns)
    else:
        dataset = ray.data.read_csv(files, convert_options=csv_options(columns))

    def reduce_batch(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"piece": [pickle.dumps(reduce(frame))]})

    pieces = dataset.map_batches(reduce_batch, batch_format="pandas", batch_size=block_rows)
    for row in pieces.iter_rows():
        yield pickle.loads(row["piece"])
        if on_block is not None:
            on_block()
