"""Asymmetric Shapley values of a forecast (SageMaker Clarify's time-series explainability).

A forecasting model is called on a batch of records, each
`{"item_id", "target_time_series": [T numbers], "related_time_series": {name: [T numbers]},
"static_covariates": {name: value}}`, and answers one forecast per record (K numbers, or one).
A player is left out of a coalition by setting its values to the baseline: `zero`, or `mean` (the
series' mean over the item's window); a static covariate to the baseline given for its item (else 0).

Asymmetric Shapley values (Frye et al., NeurIPS 2020) average the marginal contributions over the
orderings of the players that respect time:
- `timewise`: a player per time step (the target and every related series at that step);
  `chronological` reveals the steps first to last, `anti_chronological` last to first, and
  `bidirectional` averages the two. One ordering each, so the values are exact (no sampling).
- `fine_grained` (chronological only, as in the SDK): a player per (time step, series); the steps in
  order, the series within a step in random order, averaged over `num_samples` seeded orderings.
Static covariates have no place in time: they are revealed first, and share what they add among
themselves by exact (symmetric) Shapley values, so the whole stays efficient. Every ordering
telescopes, so the attributions of a forecast always sum to the forecast minus the all-baseline
forecast (efficiency), whatever the model and the number of samples.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from fmeval.errors import UserError

DIRECTIONS = ("chronological", "anti_chronological", "bidirectional")
GRANULARITIES = ("timewise", "fine_grained")
BASELINES = ("zero", "mean")
MAX_STATIC = 12
"""Static covariates get exact Shapley values: 2^E coalitions."""


@dataclass
class SeriesExplanation:
    """One item's forecast explained."""

    item_id: Any
    forecast: np.ndarray
    """(K,) the model's forecast."""
    baseline_forecast: np.ndarray
    """(K,) the forecast with every player at its baseline."""
    series_names: list[str]
    """"target_time_series", then the related series' names."""
    time: np.ndarray
    """timewise: (K, T); fine_grained: (K, T, series), attributions per time step (and series)."""
    static: dict[str, np.ndarray]
    """Each static covariate's (K,) attribution."""

    def total(self) -> np.ndarray:
        """(K,) the sum of all attributions: forecast - baseline_forecast."""
        time = self.time.reshape(self.time.shape[0], -1).sum(axis=1)
        return time + sum(self.static.values(), np.zeros_like(time))


def check_settings(direction: str, granularity: str, num_samples: int | None, baseline: Any) -> None:
    """The SDK's rules: fine_grained needs num_samples and chronological; timewise takes no num_samples."""
    if direction not in DIRECTIONS:
        raise UserError(f"asymmetric_shapley_value.direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    if granularity not in GRANULARITIES:
        raise UserError(f"asymmetric_shapley_value.granularity must be one of {', '.join(GRANULARITIES)}, "
                        f"got {granularity!r}")
    if granularity == "fine_grained":
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise UserError("asymmetric_shapley_value: fine_grained needs num_samples, an integer >= 1")
        if direction != "chronological":
            raise UserError(f"asymmetric_shapley_value: {direction} and fine_grained are not supported together "
                            f"(the SDK's rule); use chronological")
    elif num_samples is not None:
        raise UserError("asymmetric_shapley_value: num_samples is only used for fine_grained explanations")
    for key in ("target_time_series", "related_time_series"):
        chosen = baseline.get(key, "zero") if isinstance(baseline, Mapping) else "zero"
        if chosen not in BASELINES:
            raise UserError(f"asymmetric_shapley_value.baseline.{key} must be zero or mean, got {chosen!r}")


def explain_series(
    predict: Callable[[list[dict[str, Any]]], Any],
    target: Sequence[float],
    *,
    related: Mapping[str, Sequence[float]] | None = None,
    static: Mapping[str, float] | None = None,
    item_id: Any = None,
    direction: str = "chronological",
    granularity: str = "timewise",
    num_samples: int | None = None,
    baseline: Mapping[str, Any] | None = None,
    seed: int = 0,
    read: Callable[[Any], np.ndarray] | None = None,
) -> SeriesExplanation:
    """Explain the forecast of one item (see the module's docstring). `baseline` is the SDK's block:
    `{"target_time_series": "zero"|"mean", "related_time_series": ..., "static_covariates": {item: [..]}}`.
    `read` turns the model's answer for the batch into a (records, K) array (default: as numbers)."""
    baseline = dict(baseline or {})
    check_settings(direction, granularity, num_samples, baseline)
    related = dict(related or {})
    static = dict(static or {})
    if len(static) > MAX_STATIC:
        raise UserError(f"at most {MAX_STATIC} static covariates (their Shapley values are exact), got {len(static)}")
    values = np.vstack([np.asarray(target, dtype=float)] + [np.asarray(v, dtype=float) for v in related.values()])
    if values.shape[1] == 0:
        raise UserError(f"item {item_id!r}: the target time series is empty")
    if not np.isfinite(values).all():
        raise UserError(f"item {item_id!r}: the time series have missing or non-finite values; fill them first")
    names = ["target_time_series", *related]
    base = np.vstack([_baseline_row(values[0], baseline.get("target_time_series", "zero"))]
                     + [_baseline_row(row, baseline.get("related_time_series", "zero")) for row in values[1:]])
    static_names = list(static)
    static_values = np.asarray([float(static[n]) for n in static_names])
    given = (baseline.get("static_covariates") or {}).get(str(item_id))
    if given is not None and len(given) != len(static_names):
        raise UserError(f"baseline.static_covariates[{item_id!r}] has {len(given)} values for {len(static_names)} "
                        f"static covariates")
    static_base = np.asarray(given, dtype=float) if given is not None else np.zeros(len(static_names))
    series, steps = values.shape
    read = read or (lambda outputs: np.asarray(outputs, dtype=float))

    def record(shown: np.ndarray, static_shown: np.ndarray) -> dict[str, Any]:
        """The input with the players outside the coalition at their baseline."""
        mixed = np.where(shown, values, base)
        statics = np.where(static_shown, static_values, static_base)
        return {"item_id": item_id, "target_time_series": mixed[0].tolist(),
                "related_time_series": {n: mixed[i + 1].tolist() for i, n in enumerate(related)},
                "static_covariates": dict(zip(static_names, statics.tolist()))}

    # every coalition to ask about, collected first: the model gets them as one batch
    coalitions: list[tuple[np.ndarray, np.ndarray]] = []
    none = np.zeros((series, steps), bool)
    static_subsets = [np.array(mask, bool) for mask in itertools.product([False, True], repeat=len(static_names))]
    for subset in static_subsets:  # statics among themselves, the time series at baseline
        coalitions.append((none, subset))
    all_static = np.ones(len(static_names), bool)
    orders = _orders(direction, granularity, series, steps, num_samples, seed)
    for order in orders:
        shown = none.copy()
        for player in order:
            shown = shown.copy()
            shown[player] = True
            coalitions.append((shown, all_static))
    outputs = read(predict([record(shown, statics) for shown, statics in coalitions]))
    outputs = outputs.reshape(len(coalitions), -1)
    by_subset = {tuple(subset): outputs[i] for i, subset in enumerate(static_subsets)}
    static_attributions = _exact_shapley(by_subset, len(static_names))
    start = by_subset[tuple(all_static)]
    horizon = outputs.shape[1]
    time = np.zeros((horizon, steps, series))
    position = len(static_subsets)
    for order in orders:
        previous = start
        for player in order:
            current = outputs[position]
            position += 1
            which, step = player
            time[:, step, 0 if granularity == "timewise" else which] += current - previous
            previous = current
    time /= len(orders)
    return SeriesExplanation(
        item_id=item_id, forecast=outputs[len(static_subsets) + len(orders[0]) - 1],  # every player shown
        baseline_forecast=by_subset[tuple(np.zeros(len(static_names), bool))],
        series_names=names, time=time[:, :, 0] if granularity == "timewise" else time,
        static={name: static_attributions[:, i] for i, name in enumerate(static_names)})


def _baseline_row(row: np.ndarray, kind: str) -> np.ndarray:
    return np.full_like(row, row.mean() if kind == "mean" else 0.0)


def _orders(direction: str, granularity: str, series: int, steps: int, num_samples: int | None,
            seed: int) -> list[list[tuple[Any, int]]]:
    """The orderings of the players: (slice(None), step) for a whole step, or (series, step)."""
    if granularity == "timewise":
        forward = [(slice(None), t) for t in range(steps)]
        chosen = {"chronological": [forward], "anti_chronological": [forward[::-1]],
                  "bidirectional": [forward, forward[::-1]]}
        return chosen[direction]
    rng = np.random.default_rng(seed)
    return [[(int(s), t) for t in range(steps) for s in rng.permutation(series)] for _ in range(num_samples)]


def _exact_shapley(by_subset: dict[tuple[bool, ...], np.ndarray], players: int) -> np.ndarray:
    """(K, players) exact Shapley values of the static covariates (the time series at baseline)."""
    horizon = len(next(iter(by_subset.values())))
    values = np.zeros((horizon, players))
    for i in range(players):
        for subset, output in by_subset.items():
            if subset[i]:
                continue
            size = sum(subset)
            weight = math.factorial(size) * math.factorial(players - size - 1) / math.factorial(players)
            with_i = tuple(True if j == i else flag for j, flag in enumerate(subset))
            values[:, i] += weight * (by_subset[with_i] - output)
    return values


def explain_items(
    predict: Callable[[list[dict[str, Any]]], Any],
    frame: Any,
    *,
    item_id: str,
    timestamp: str,
    target: str,
    related: Sequence[str] = (),
    static: Sequence[str] = (),
    section: Mapping[str, Any],
    forecast: str | None = None,
) -> dict[str, Any]:
    """analysis.json's `explanations.asymmetric_shapley_value` for a long table (a row per item and
    time step, static covariates repeated on each of an item's rows), every item explained.
    `forecast` is the predictor's JMESPath to the forecast in each answer (the SDK's
    `time_series_predictor_config.forecast`), for models that answer objects."""
    direction = section.get("direction", "chronological")
    granularity = section.get("granularity", "timewise")
    num_samples = section.get("num_samples")
    baseline = section.get("baseline") or {}
    if isinstance(baseline, str):
        raise UserError("asymmetric_shapley_value.baseline: give the baseline block itself (a file or S3 URI is "
                        "not read)")
    check_settings(direction, granularity, num_samples, baseline)
    read = _reader(forecast)
    items = []
    for item, rows in frame.groupby(item_id, sort=True):
        rows = rows.sort_values(timestamp)
        for name in static:
            if rows[name].nunique(dropna=False) > 1:
                raise UserError(f"item {item!r}: static covariate {name!r} changes over time; it must be the same "
                                f"on every row of an item")
        explained = explain_series(
            predict, rows[target].to_numpy(dtype=float), related={n: rows[n].to_numpy(dtype=float) for n in related},
            static={n: float(rows[n].iloc[0]) for n in static}, item_id=_plain(item), direction=direction,
            granularity=granularity, num_samples=num_samples, baseline=baseline, seed=int(section.get("seed", 0)),
            read=read)
        timestamps = [str(t) for t in rows[timestamp]]
        if granularity == "timewise":
            attributions = {"timewise": [dict(zip(timestamps, horizon.tolist())) for horizon in explained.time]}
        else:
            attributions = {name: [dict(zip(timestamps, horizon[:, s].tolist())) for horizon in explained.time]
                            for s, name in enumerate(explained.series_names)}
        items.append({"item_id": _plain(item), "timestamps": timestamps, "forecast": explained.forecast.tolist(),
                      "baseline_forecast": explained.baseline_forecast.tolist(),
                      "attributions": {**attributions,
                                       "static_covariates": {n: v.tolist() for n, v in explained.static.items()}}})
    if not items:
        raise UserError("the time series data have no rows")
    return {"direction": direction, "granularity": granularity, "num_samples": num_samples,
            "baseline": {"target_time_series": baseline.get("target_time_series", "zero"),
                         "related_time_series": baseline.get("related_time_series", "zero")},
            "items": items}


def _reader(forecast: str | None) -> Callable[[Any], np.ndarray]:
    """The model's answers as a (records, K) array; with a JMESPath, read from each answer first."""
    if forecast is None:
        return lambda outputs: np.asarray(outputs, dtype=float)
    import jmespath

    path = jmespath.compile(forecast)

    def read(outputs: Any) -> np.ndarray:
        found = [path.search(answer) for answer in outputs]
        if any(value is None for value in found):
            raise UserError(f"time_series_predictor_config.forecast {forecast!r} finds nothing in the model's answer")
        return np.asarray(found, dtype=float)

    return read


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
