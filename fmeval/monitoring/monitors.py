"""The five monitor kinds, each a baseline and a check of one window against it.

Every kind writes its baseline into a directory with `monitor.json` (the kind and its options,
so that a schedule needs only the baseline and the capture), and every check returns the same
shape: a status (Completed, CompletedWithViolations or NoData), Model Monitor's violations
(`feature_name` or `metric_name`; `facet` and `facet_value` for bias drift; `label` for attribution
drift; `constraint_check_type`, `description`), flat `metrics` for
alarms, time series and CloudWatch, and the files it wrote.

- data-quality: statistics, constraints and drift per column (`data_quality`);
- model-quality: predictions merged with ground truth, metrics with bootstrap CIs (`model_quality`);
- bias-drift: `fmeval analyze`'s pre- and post-training bias metrics against ranges;
- attribution-drift: SHAP global attributions ranked against the baseline's (NDCG, as Model Monitor);
- llm-outputs: captured prompts and answers scored and compared as runs (`llm_outputs`).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd

from fmeval.errors import UserError
from fmeval.monitoring import MONITOR_KINDS
from fmeval.monitoring.data_capture import ReadStats
from fmeval.monitoring.options import DataQualityOptions, default, parse_options
from fmeval.monitoring.windows import Window, is_capture, window_frame

MONITOR_FILE = "monitor.json"
SCHEMA_VERSION = 1
NDCG_THRESHOLD = default("attribution-drift", "ndcg_threshold")  # Model Monitor's feature-attribution drift threshold
BIAS_IDEAL = {"DI": 1.0}  # Clarify's ideal value of each bias metric: 0 for all the others


@dataclass(frozen=True)
class Kind:
    name: str
    baseline: Callable[..., dict[str, Any]]
    check: Callable[..., dict[str, Any]]
    help: str


def _write(path: Path, value: Any) -> None:
    from fmeval.monitoring.data_quality import dumps

    path.write_text(dumps(value), encoding="utf-8")


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot be read ({exc}); is this a baseline made by `fmeval monitor ... baseline`?") from None


def read_monitor(baseline: str | Path) -> dict[str, Any]:
    """The baseline's kind and options (checked against the kind's options model, every default filled in).
    A folder of SageMaker's data-quality baseline (statistics.json and constraints.json, no monitor.json)
    is a data-quality baseline of requests with the default options."""
    where = Path(baseline) / MONITOR_FILE
    if not where.exists() and all((Path(baseline) / name).is_file() for name in ("statistics.json", "constraints.json")):
        description = {"schema_version": SCHEMA_VERSION, "kind": "data-quality", "options": {}}
    else:
        description = _read(where)
    if not isinstance(description, dict) or description.get("kind") not in KINDS:
        kind = description.get("kind") if isinstance(description, dict) else None
        raise UserError(f"{where}: unknown monitor kind {kind!r}")
    options = description.get("options", {})
    if not isinstance(options, dict):
        raise UserError(f"{where}: options must be a mapping of option names to values")
    typed = parse_options(description["kind"], options, source=f"{where}: options")
    return {**description, "options": typed.model_dump()}


def _result(violations: list[dict[str, Any]], metrics: dict[str, Any], files: list[str],
            **details: Any) -> dict[str, Any]:
    status = "CompletedWithViolations" if violations else "Completed"
    return {"status": status, "violations": violations, "metrics": metrics, "files": files, **details}


def violation_subject(violation: dict[str, Any]) -> str:
    """What a violation is about, in any of Model Monitor's shapes: a feature, a facet's group
    (bias drift), a label (attribution drift) or a metric."""
    if violation.get("facet") is not None:
        return f"{violation['facet']}={violation.get('facet_value')} {violation.get('metric_name', '')}".strip()
    if violation.get("label") is not None:
        return f"{violation['label']} {violation.get('metric_name', '')}".strip()
    return str(violation.get("feature_name") or violation.get("metric_name"))


def _no_data(window: Window | None, source: Any) -> dict[str, Any]:
    where = f"window {window}" if window else str(source)
    return {"status": "NoData", "violations": [], "metrics": {}, "files": [], "reason": f"no data in {where}"}


def load_frame(source: str | Path, *, window: Window | None = None, ground_truth: str | Path | None = None,
               stats: ReadStats | None = None, analysis_config: dict[str, Any] | None = None) -> pd.DataFrame:
    """Rows from a capture (the window's events, merged with ground truth) or from a CSV, Parquet
    or JSON Lines file. A Clarify `analysis_config`'s `headers` and `features` say how a captured
    request holds the model's features."""
    if is_capture(source):
        config = analysis_config or {}
        label = config.get("label") if isinstance(config.get("label"), str) else None
        return window_frame(source, window, ground_truth=ground_truth, stats=stats, headers=config.get("headers"),
                            features=config.get("features"), label=label)
    from fmeval.monitoring.data_quality import blocks

    if ground_truth is not None:
        raise UserError(f"--ground-truth merges labels by captured event id; {source} is not a capture directory "
                        f"(give the labels as a column of the file)")
    return pd.concat(list(blocks(source, window=window)) or [pd.DataFrame()], ignore_index=True)


def _request_shape(options: dict[str, Any]) -> dict[str, Any] | None:
    """The analysis config, with the monitor's own `headers` and `features` (which win)."""
    if "analysis_config" not in options:
        return None
    return {**options["analysis_config"], **{key: options[key] for key in ("headers", "features") if options.get(key)}}


def _baseline_frame(options: dict[str, Any], stats: ReadStats, needs: str) -> pd.DataFrame:
    """The baseline's rows (its data, window and ground truth); none is an error saying what is needed."""
    frame = load_frame(options["data"], window=options.get("window"), ground_truth=options.get("ground_truth"),
                       stats=stats, analysis_config=_request_shape(options))
    if frame.empty:
        raise UserError(f"no rows in {options['data']}{' with ground truth' if options.get('ground_truth') else ''}: "
                        f"a baseline needs {needs}")
    return frame


def _column(frame: pd.DataFrame, name: str, option: str) -> pd.Series:
    if name not in frame.columns:
        raise UserError(f"{option} {name!r} is not a column of the data (columns: {', '.join(map(str, frame.columns))})")
    return frame[name]


# -- data quality ----------------------------------------------------------------------------------------
def _data_quality_options(options: dict[str, Any], columns: dict[str, Any]) -> DataQualityOptions:
    """The typed options, their column options checked against the baseline's columns (name: ColumnProfile)."""
    typed = DataQualityOptions.model_validate({k: v for k, v in options.items() if k not in ("data", "window")})
    named = set(typed.columns) | set(typed.include or ())
    unknown = sorted(named - set(columns))
    if unknown:
        raise UserError(f"column option for {', '.join(map(repr, unknown))}, which the baseline does not have "
                        f"(columns: {', '.join(map(str, columns))})")
    for name, column in typed.columns.items():
        if column.test in ("ks", "wasserstein") and not columns[name].numeric:
            raise UserError(f"--column-option {name}.test={column.test}: {name} holds strings; the {column.test} "
                            f"test is for numeric columns (use jensen_shannon, psi, linf or chi_square)")
    return typed


def _preprocess(options: dict[str, Any]) -> Any:
    if not options.get("preprocessor"):
        return None
    from fmeval.monitoring.preprocessor import load_preprocessor

    return load_preprocessor(options["preprocessor"], trusted=options["trust_code"],
                             sha256=options.get("preprocessor_sha256"))


def _data_quality_baseline(options: dict[str, Any], output: Path, stats: ReadStats) -> dict[str, Any]:
    from fmeval.monitoring import data_quality as dq

    profile = dq.profile_source(options["data"], part=options["part"], window=options.get("window"),
                                stats=stats, backend=options["backend"], preprocess=_preprocess(options))
    if profile.rows == 0:
        raise UserError(f"no data in {options['data']}: a baseline needs rows")
    _data_quality_options(options, profile.columns)  # a column option naming no column fails now, not at a check
    _write(output / "statistics.json", dq.statistics_json(profile))
    _write(output / "constraints.json", dq.constraints_json(
        profile, comparison_threshold=options["comparison_threshold"]))
    (output / "profile.json").write_text(json.dumps(dq.profile_to_json(profile)), encoding="utf-8")
    return {"rows": profile.rows, "columns": len(profile.columns)}


def _data_quality_check(options: dict[str, Any], baseline: Path, data: Any, window: Window | None, output: Path,
                        ground_truth: Any, stats: ReadStats) -> dict[str, Any]:
    from fmeval.monitoring import data_quality as dq

    current = dq.profile_source(data, part=options["part"], window=window, stats=stats, backend=options["backend"],
                                preprocess=_preprocess(options))
    if current.rows == 0:
        return _no_data(window, data)
    reference = (dq.profile_from_json(_read(baseline / "profile.json")) if (baseline / "profile.json").exists()
                 else dq.profile_from_statistics(_read(baseline / "statistics.json")))  # a baseline SageMaker made
    result = dq.check(reference, _read(baseline / "constraints.json"), current,
                      options=_data_quality_options(options, reference.columns))
    _write(output / "statistics.json", dq.statistics_json(current))
    _write(output / "constraint_violations.json", dq.violations_json(result["violations"]))
    _write(output / "drift.json", result["drift"])
    _write(output / "distributions.json", dq.distributions(reference, current))
    dataset = result["drift"]["dataset"]
    metrics: dict[str, Any] = {"rows": current.rows, "drifted_columns": dataset["drifted_columns"],
                               "drift_share": dataset["share"], "violations": len(result["violations"])}
    if result["emit_metrics"]:  # constraints.json's monitoring_config.emit_metrics
        for name, column in result["drift"]["columns"].items():
            metrics[f"feature_baseline_drift_{name}"] = column["linf"]
    return _result(result["violations"], metrics,
                   ["statistics.json", "constraint_violations.json", "drift.json", "distributions.json"])


# -- model quality ---------------------------------------------------------------------------------------
def _quality_inputs(options: dict[str, Any], frame: pd.DataFrame) -> dict[str, Any]:
    inputs = {"problem_type": options["problem_type"],
              "labels": _column(frame, options["label"], "--label").to_numpy(),
              "predictions": _column(frame, options["prediction"], "--prediction").to_numpy()}
    if options.get("probability"):
        inputs["probabilities"] = _column(frame, options["probability"], "--probability").to_numpy(dtype=float)
    if options.get("positive_label") is not None:
        inputs["positive_label"] = options["positive_label"]
    return inputs


def _model_quality_baseline(options: dict[str, Any], output: Path, stats: ReadStats) -> dict[str, Any]:
    from fmeval.monitoring import model_quality

    frame = _baseline_frame(options, stats, "predictions with ground truth")
    statistics = model_quality.quality_statistics(**_quality_inputs(options, frame), seed=options["seed"])
    _write(output / "statistics.json", statistics)
    _write(output / "constraints.json", model_quality.suggest_constraints(
        statistics, tolerance=options["tolerance"]))
    return {"rows": len(frame)}


def _model_quality_check(options: dict[str, Any], baseline: Path, data: Any, window: Window | None, output: Path,
                         ground_truth: Any, stats: ReadStats) -> dict[str, Any]:
    from fmeval.monitoring import model_quality

    frame = load_frame(data, window=window, ground_truth=ground_truth or options.get("ground_truth"), stats=stats)
    if frame.empty:
        return _no_data(window, data)
    inputs = {key: value for key, value in _quality_inputs(options, frame).items() if key != "problem_type"}
    result = model_quality.check_quality(_read(baseline / "statistics.json"), _read(baseline / "constraints.json"),
                                         **inputs, seed=options["seed"])  # the problem: the baseline's
    _write(output / "statistics.json", result["statistics"])
    _write(output / "constraint_violations.json", {"violations": result["violations"]})
    return _result(result["violations"], {"rows": len(frame), **result["metrics"]},
                   ["statistics.json", "constraint_violations.json"], decisions=result.get("decisions", {}))


# -- bias drift ------------------------------------------------------------------------------------------
def _bias_metrics(analysis: dict[str, Any]) -> dict[str, float]:
    """`stage/facet=group/METRIC` -> value, from analysis.json."""
    values = {}
    for stage in ("pre_training_bias_metrics", "post_training_bias_metrics"):
        for facet, groups in (analysis.get(stage) or {}).get("facets", {}).items():
            for group in groups:
                for metric in group["metrics"]:
                    if isinstance(metric.get("value"), (int, float)):
                        values[f"{stage.split('_')[0]}/{facet}={group['value_or_threshold']}/{metric['name']}"] = \
                            float(metric["value"])
    return values


def _analysis(options: dict[str, Any], frame: pd.DataFrame, output: Path, methods: dict[str, Any]) -> dict[str, Any]:
    from fmeval.bias.analyze import analyze

    config = {key: value for key, value in options["analysis_config"].items()
              if key not in ("thresholds", "methods", "headers", "features")}  # the frame's columns are named already
    predicted = {config.get(key) for key in ("predicted_label_name_or_index", "probability_name_or_index")}
    response = [name for name in frame.attrs.get("response_columns", []) if name not in predicted]
    if response:  # a captured response's prediction and score are the model's outputs, never its features
        config["excluded_columns"] = [*config.get("excluded_columns", []), *response]
    return analyze({**config, "methods": methods}, frame.reset_index(drop=True), output,
                   trust_model=bool(options.get("trust_model")))


def _bias_methods(options: dict[str, Any]) -> dict[str, Any]:
    methods = options["analysis_config"].get("methods") or {}
    chosen = {key: methods[key] for key in ("pre_training_bias", "post_training_bias") if key in methods}
    if not chosen:
        raise UserError("bias drift needs methods.pre_training_bias or methods.post_training_bias in the analysis config")
    return chosen


def _bias_baseline(options: dict[str, Any], output: Path, stats: ReadStats) -> dict[str, Any]:
    frame = _baseline_frame(options, stats, "data")
    values = _bias_metrics(_analysis(options, frame, output, _bias_methods(options)))
    ranges = options["analysis_config"].get("thresholds") or {}
    tolerance = options["tolerance"]
    constraints = {}
    for key, value in values.items():
        metric = key.rsplit("/", 1)[1]
        low, high = ranges.get(metric, (value - tolerance, value + tolerance))
        constraints[key] = {"baseline": value, "lower_bound": float(low), "upper_bound": float(high),
                            "ideal": BIAS_IDEAL.get(metric, 0.0),
                            "from": "config" if metric in ranges else f"baseline ± {tolerance:g}"}
    _write(output / "constraints.json", {"version": 0.0, "bias_constraints": constraints})
    return {"rows": len(frame), "metrics": len(values)}


def bias_violation(key: str, value: float, bounds: dict[str, Any],
                   interval: tuple[float, float] | None = None) -> dict[str, Any] | None:
    """SageMaker's bias-drift violation of `stage/facet=value/METRIC` when the value is worse than
    allowed: outside the config's range, or (for a range made from the baseline) outside baseline ±
    tolerance and further from the metric's ideal than the baseline was; a move towards the ideal is
    an improvement, never a violation (as in SageMaker's bias drift check). With the window's 95%
    `interval`, the move must also be more than noise: the interval lies wholly past the bound
    crossed (the config's range) or past the baseline's value (a range from the baseline)."""
    low, high, baseline = bounds["lower_bound"], bounds["upper_bound"], bounds["baseline"]
    ideal = float(bounds.get("ideal", BIAS_IDEAL.get(key.rsplit("/", 1)[1], 0.0)))
    if low <= value <= high:
        return None
    from_config = bounds.get("from") == "config"
    further = abs(value - ideal) > abs(baseline - ideal)
    if not from_config and not further:
        return None
    above = value > high
    mark = (high if above else low) if from_config else baseline
    if interval is not None and not (interval[0] > mark if above else interval[1] < mark):
        return None
    stage, group, metric = key.split("/")
    facet, _, facet_value = group.partition("=")
    description = (f"{stage}-training {metric} of {facet}={facet_value} {'rose' if value > baseline else 'fell'} to "
                   f"{value:.4f} from the baseline's {baseline:.4f}: {'above' if above else 'below'} "
                   f"{high if above else low:.4f}, the bound of {'the config' if from_config else bounds['from']}")
    if further:
        description += f", and further from its ideal {ideal:g} than the baseline"
    if interval is not None:
        description += (f"; its 95% CI [{interval[0]:.4f}, {interval[1]:.4f}] lies wholly "
                        f"{'above' if above else 'below'} {mark:.4f}")
    return {"facet": facet, "facet_value": facet_value, "metric_name": metric, "constraint_check_type": "bias_drift_check",
            "description": description}


def _bias_intervals(options: dict[str, Any], frame: pd.DataFrame, methods: dict[str, Any],
                    keys: Iterable[str]) -> tuple[dict[str, tuple[float, float]], dict[str, int]]:
    """Each bias metric's 95% percentile-bootstrap interval over `n_bootstrap` seeded resamples of
    the window's rows. None with a predictor (every resample would call it again), or below two
    rows. A metric of `keys` undefined in more than a tenth of the resamples (a group of a few rows)
    gets none, and is returned apart with the number of resamples that defined it: its noise is
    unknown, so it is no verdict."""
    import tempfile

    import numpy as np

    resamples = options["n_bootstrap"]
    if not resamples or options["analysis_config"].get("predictor") or len(frame) < 2:
        return {}, {}
    rng = np.random.default_rng(options["seed"])
    samples: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(resamples):
            rows = frame.iloc[rng.integers(0, len(frame), len(frame))]
            try:
                values = _bias_metrics(_analysis(options, rows, Path(scratch), methods))
            except UserError:  # e.g. a resample with a single outcome: no metric at all
                continue
            for key, value in values.items():
                samples.setdefault(key, []).append(value)
    intervals = {key: (float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5)))
                 for key, values in samples.items() if len(values) >= 0.9 * resamples}
    return intervals, {key: len(samples.get(key, [])) for key in keys if key not in intervals}


def _bias_check(options: dict[str, Any], baseline: Path, data: Any, window: Window | None, output: Path,
                ground_truth: Any, stats: ReadStats) -> dict[str, Any]:
    frame = load_frame(data, window=window, ground_truth=ground_truth or options.get("ground_truth"), stats=stats,
                       analysis_config=_request_shape(options))
    if frame.empty:
        return _no_data(window, data)
    methods = _bias_methods(options)
    values = _bias_metrics(_analysis(options, frame, output, methods))
    intervals, unsure = _bias_intervals(options, frame, methods, values)
    constraints = _read(baseline / "constraints.json")["bias_constraints"]
    violations, undecided = [], {}
    for key, bounds in constraints.items():
        violation = bias_violation(key, values[key], bounds, intervals.get(key)) if key in values else None
        if violation and key in unsure:  # past its bound, but the group is too small to tell it from noise
            undecided[key] = (f"{violation['description']}; but the metric is defined in only {unsure[key]} of "
                              f"{options['n_bootstrap']} resamples of the window's {len(frame)} rows (a group of "
                              f"a few rows), so its noise is unknown: no verdict")
        elif violation:
            violations.append(violation)
    _write(output / "constraint_violations.json", {"version": "1.0", "violations": violations})
    return _result(violations, {"rows": len(frame), **values}, ["analysis.json", "constraint_violations.json"],
                   confidence_intervals={key: list(interval) for key, interval in intervals.items()},
                   undecided=undecided)


# -- feature-attribution drift -----------------------------------------------------------------------------
def ndcg(baseline: dict[str, float], current: dict[str, float]) -> float:
    """Model Monitor's attribution drift score: the current ranking's DCG of the baseline's
    attributions over the ideal DCG (the baseline's own ranking). 1.0 when the order is unchanged."""
    names = [name for name in baseline if name in current]
    relevance = {name: abs(baseline[name]) for name in names}

    def dcg(order: list[str]) -> float:
        return sum(relevance[name] / math.log2(rank + 2) for rank, name in enumerate(order))

    ideal = dcg(sorted(names, key=lambda name: -relevance[name]))
    return dcg(sorted(names, key=lambda name: -abs(current[name]))) / ideal if ideal > 0 else 1.0


def _attributions(options: dict[str, Any], frame: pd.DataFrame, output: Path) -> dict[str, dict[str, float]]:
    methods = options["analysis_config"].get("methods") or {}
    if "shap" not in methods:
        raise UserError("attribution drift needs methods.shap in the analysis config")
    result = _analysis(options, frame, output, {"shap": methods["shap"]})
    explained = result["explanations"]["kernel_shap"]
    return {label: entry["global_shap_values"] for label, entry in explained.items()}


def _attribution_baseline(options: dict[str, Any], output: Path, stats: ReadStats) -> dict[str, Any]:
    frame = _baseline_frame(options, stats, "data")
    attributions = _attributions(options, frame, output)
    _write(output / "constraints.json", {"version": 0.0, "attribution_constraints": {
        "ndcg_threshold": float(options.get("ndcg_threshold", NDCG_THRESHOLD)), "global_shap_values": attributions}})
    return {"rows": len(frame), "labels": len(attributions)}


def _attribution_check(options: dict[str, Any], baseline: Path, data: Any, window: Window | None, output: Path,
                       ground_truth: Any, stats: ReadStats) -> dict[str, Any]:
    frame = load_frame(data, window=window, ground_truth=ground_truth or options.get("ground_truth"), stats=stats,
                       analysis_config=_request_shape(options))
    if frame.empty:
        return _no_data(window, data)
    constraints = _read(baseline / "constraints.json")["attribution_constraints"]
    current = _attributions(options, frame, output)
    threshold = float(constraints["ndcg_threshold"])
    violations, metrics = [], {"rows": len(frame)}
    for label, reference in constraints["global_shap_values"].items():
        if label not in current:
            continue
        score = ndcg(reference, current[label])
        metrics[f"ndcg/{label}" if len(constraints["global_shap_values"]) > 1 else "ndcg"] = score
        if score < threshold:
            top = sorted(current[label], key=lambda name: -abs(current[label][name]))[:3]
            violations.append({"label": label, "metric_name": "shap",
                               "constraint_check_type": "feature_attribution_drift_check",
                               "description": f"NDCG {score:.4f} of the current attribution ranking against the "
                                             f"baseline's is below {threshold} (top features now: {', '.join(top)})"})
    _write(output / "constraint_violations.json", {"version": "1.0", "violations": violations})
    return _result(violations, metrics, ["analysis.json", "constraint_violations.json"], attributions=current)


# -- LLM outputs --------------------------------------------------------------------------------------------
def _pairs(source: Any, window: Window | None, ground_truth: Any, stats: ReadStats) -> list[dict[str, Any]]:
    from fmeval.monitoring.windows import load_labels, prompt_response, window_events

    if not is_capture(source):
        frame = load_frame(source)
        missing = {"prompt", "response"} - set(frame.columns)
        if missing:
            raise UserError(f"--data {source}: LLM pairs need the columns prompt and response (missing: {', '.join(sorted(missing))})")
        return [{key: value for key, value in row.items() if not (isinstance(value, float) and math.isnan(value))}
                for row in frame.to_dict("records")]
    labels = load_labels(ground_truth)
    pairs = []
    for event in window_events(source, window, stats):
        pair = prompt_response(event)
        if pair["event_id"] in labels:
            pair["reference"] = str(labels[pair["event_id"]])
        pairs.append(pair)
    return pairs


def _detector(options: dict[str, Any]) -> Any:
    if not options.get("detector"):
        return None
    from fmeval.algorithms.toxicity import Detector

    return Detector(kind=options["detector"], model=options.get("detector_model"),
                    checkpoint=options.get("detector_checkpoint"), batch_size=options["batch_size"])


def _llm_baseline(options: dict[str, Any], output: Path, stats: ReadStats) -> dict[str, Any]:
    from fmeval.monitoring.llm_outputs import score_window

    pairs = _pairs(options["data"], options.get("window"), options.get("ground_truth"), stats)
    if not pairs:
        raise UserError(f"no prompts and answers in {options['data']}: a baseline needs traffic")
    score_window(pairs, output / "run", label="baseline", detector=_detector(options), seed=options["seed"])
    return {"rows": len(pairs)}


def _llm_check(options: dict[str, Any], baseline: Path, data: Any, window: Window | None, output: Path,
               ground_truth: Any, stats: ReadStats) -> dict[str, Any]:
    from fmeval.monitoring.llm_outputs import check_llm_outputs, score_window
    from fmeval.runs.loaded import load_run

    pairs = _pairs(data, window, ground_truth or options.get("ground_truth"), stats)
    if not pairs:
        return _no_data(window, data)
    current = score_window(pairs, output / "run", label=str(window or "window"), detector=_detector(options),
                           seed=options["seed"], overwrite=True)  # a rerun replaces the window's run
    result = check_llm_outputs(load_run(baseline / "run"), current, max_change=options.get("max_change"),
                               seed=options["seed"])
    _write(output / "constraint_violations.json", {"violations": result["violations"]})
    _write(output / "comparison.json", {"comparison": result.get("comparison"), "languages": result.get("languages")})
    return _result(result["violations"], {"rows": len(pairs), **result["metrics"]},
                   ["run", "constraint_violations.json", "comparison.json"])


KINDS: dict[str, Kind] = {name: Kind(name, baseline, check, MONITOR_KINDS[name]) for name, baseline, check in (
    ("data-quality", _data_quality_baseline, _data_quality_check),
    ("model-quality", _model_quality_baseline, _model_quality_check),
    ("bias-drift", _bias_baseline, _bias_check),
    ("attribution-drift", _attribution_baseline, _attribution_check),
    ("llm-outputs", _llm_baseline, _llm_check),
)}


def metric_names(baseline: str | Path) -> set[str]:
    """The metrics an execution of this baseline's monitor reports (what an alarm may watch)."""
    directory = Path(baseline)
    kind = read_monitor(directory)["kind"]
    names = {"rows", "violations"}
    if kind == "data-quality":
        columns = ([feature["name"] for feature in _read(directory / "statistics.json")["features"]]
                   if not (directory / "profile.json").exists() else _read(directory / "profile.json")["columns"])
        names |= {"drifted_columns", "drift_share"} | {f"feature_baseline_drift_{name}" for name in columns}
    elif kind == "model-quality":
        from fmeval.monitoring.model_quality import METRICS

        names |= {metric for metrics in METRICS.values() for metric in metrics}
    elif kind == "bias-drift":
        names |= set(_read(directory / "constraints.json")["bias_constraints"])
    elif kind == "attribution-drift":
        labels = _read(directory / "constraints.json")["attribution_constraints"]["global_shap_values"]
        names |= {"ndcg"} if len(labels) == 1 else {f"ndcg/{label}" for label in labels}
    else:
        from fmeval.runs.loaded import load_run

        scores = {score.name for score in load_run(directory / "run").summary.dataset_scores} | {"exact_match", "f1"}
        names |= scores | {f"{name}_delta" for name in scores}
    return names


def make_baseline(kind: str, options: dict[str, Any], output: str | Path) -> dict[str, Any]:
    """Write the baseline of `options["data"]` (a capture, optionally a `window` of it, or files)
    into `output`, with monitor.json describing it."""
    if kind not in KINDS:
        raise UserError(f"unknown monitor kind {kind!r}; one of: {', '.join(KINDS)}")
    given = {key: (str(value) if isinstance(value, Path) else value) for key, value in options.items()
             if key not in ("data", "window")}
    kept = parse_options(kind, given, source=f"{kind} options").model_dump()
    if kept.get("preprocessor"):  # later checks, the scheduler's too, run exactly the code trusted now
        from fmeval.monitoring.preprocessor import digest

        kept["preprocessor"] = str(Path(kept["preprocessor"]).resolve())
        kept["preprocessor_sha256"] = digest(kept["preprocessor"])
    directory = Path(output)
    directory.mkdir(parents=True, exist_ok=True)
    stats = ReadStats()
    summary = {**KINDS[kind].baseline({**kept, "data": options["data"], "window": options.get("window")}, directory,
                                      stats), "skipped_lines": stats.skipped}
    _write(directory / MONITOR_FILE, {"schema_version": SCHEMA_VERSION, "kind": kind, "options": kept,
                                      "baseline_data": str(options["data"]), "summary": summary})
    return summary


def check_window(baseline: str | Path, data: str | Path, window: Window | None, output: str | Path, *,
                 ground_truth: str | Path | None = None, backend: str | None = None) -> dict[str, Any]:
    """Check `data` (a capture's window, or files) against the baseline; write the outputs into
    `output` and return the result (status, violations, metrics, files). `backend` ("local" or
    "ray", for data quality) overrides the baseline's."""
    description = read_monitor(baseline)
    directory = Path(output)
    directory.mkdir(parents=True, exist_ok=True)
    options = {**description["options"], **({"backend": backend} if backend else {})}
    stats = ReadStats()
    result = KINDS[description["kind"]].check(options, Path(baseline), data, window, directory, ground_truth, stats)
    result["skipped_lines"] = stats.skipped  # corrupt or torn capture lines, with their file:line
    if result["status"] != "NoData":
        result["metrics"]["violations"] = len(result["violations"])  # every kind's: for alarms such as 'violations >= 1'
    result = {"kind": description["kind"], "window": str(window) if window else None, **result}
    _write(directory / "result.json", result)
    return result
