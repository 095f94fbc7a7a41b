"""`fmeval analyze`: SageMaker Clarify's analysis configuration, run on your own machine.

Reads the data (CSV, JSON Lines or Parquet), computes the pre- and post-training bias metrics
per facet, KernelSHAP attributions and partial dependence, and writes `analysis.json` with
Clarify's keys, the local SHAP values (`explanations_shap/out.csv`, with a join id), and a
self-contained `report.html`.

Facet and label values: a list selects values; a single number on a continuous column is a
threshold (above it is the sensitive group / the positive label). A column is continuous
when it is float-typed, or numeric with more than 10 distinct values; set a facet's
`"type": "categorical"` or `"continuous"` to override. A facet without a value is reported
one-vs-all for each of its values.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from fmeval.bias import metrics as bias
from fmeval.bias.models import from_config, label_headers
from fmeval.errors import UserError

DATASET_TYPES = ("text/csv", "application/jsonlines", "application/x-parquet")
CONTINUOUS_DISTINCT = 10
CONFIG_KEYS = {
    "dataset_type", "headers", "label", "label_values_or_threshold", "probability_threshold", "features",
    "excluded_columns", "facet", "group_variable", "joinsource_name_or_index", "predicted_label_name_or_index",
    "probability_name_or_index", "methods", "predictor", "version", "dataset_uri",
}


def load_config(config: Mapping[str, Any] | str | os.PathLike[str]) -> dict[str, Any]:
    if not isinstance(config, Mapping):
        try:
            config = json.loads(Path(config).read_text(encoding="utf-8"))
        except OSError as exc:
            raise UserError(f"cannot read the analysis config: {exc}") from exc
        except json.JSONDecodeError as exc:
            raise UserError(f"{config}:{exc.lineno}: the analysis config is not JSON: {exc.msg}") from exc
    unknown = sorted(set(config) - CONFIG_KEYS)
    if unknown:
        raise UserError(f"unknown analysis config key(s): {', '.join(unknown)}")
    if config.get("dataset_type", "text/csv") not in DATASET_TYPES:
        raise UserError(f"dataset_type must be one of {', '.join(DATASET_TYPES)}, got {config.get('dataset_type')!r}")
    if "label" not in config:
        raise UserError("the analysis config needs a `label` (column name or index)")
    return dict(config)


def load_data(config: dict[str, Any], data: str | os.PathLike[str] | pd.DataFrame) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data.reset_index(drop=True)
    path, kind, headers = Path(data), config.get("dataset_type", "text/csv"), config.get("headers")
    if not path.is_file():
        raise UserError(f"data file not found: {path}")
    if kind == "application/x-parquet":
        frame = pd.read_parquet(path)
    elif kind == "application/jsonlines":
        frame = _read_jsonlines(path, config)
    else:
        frame = pd.read_csv(path, header=None if headers else 0)
        if headers:
            if len(headers) != frame.shape[1]:
                raise UserError(f"{path}: {frame.shape[1]} columns but {len(headers)} headers in the config")
            if [str(v) for v in frame.iloc[0]] == [str(h) for h in headers]:
                frame = pd.read_csv(path, header=0)  # the file has the header row too: read its types again
            frame.columns = headers
    return frame


def _read_jsonlines(path: Path, config: dict[str, Any]) -> pd.DataFrame:
    import jmespath

    features = jmespath.compile(config["features"]) if config.get("features") else None
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{number}: invalid JSON: {exc.msg}") from exc
            if features is not None:
                values = features.search(record)
                if not isinstance(values, list):
                    raise UserError(f"{path}:{number}: features ({config['features']!r}) is not a list")
                names = config.get("headers") or [f"feature_{i}" for i in range(len(values))]
                record = {**{k: v for k, v in record.items() if not isinstance(v, (list, dict))}, **dict(zip(names, values))}
            rows.append(record)
    return pd.DataFrame(rows)


def _column(frame: pd.DataFrame, name_or_index: Any, what: str) -> str:
    if isinstance(name_or_index, int) and not isinstance(name_or_index, bool):
        if not 0 <= name_or_index < frame.shape[1]:
            raise UserError(f"{what}: column index {name_or_index} is out of range (the data has {frame.shape[1]})")
        return frame.columns[name_or_index]
    if name_or_index not in frame.columns:
        raise UserError(f"{what}: no column {name_or_index!r} in the data; columns: {', '.join(map(str, frame.columns))}")
    return name_or_index


def is_continuous(values: pd.Series) -> bool:
    """Float-typed, or numeric with more than CONTINUOUS_DISTINCT distinct values."""
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return False
    return pd.api.types.is_float_dtype(values) or values.nunique() > CONTINUOUS_DISTINCT


def _select(values: pd.Series, chosen: Any, what: str, kind: str | None = None) -> np.ndarray:
    """Rows selected by a list of values, or above a threshold on a continuous column."""
    threshold = not isinstance(chosen, list) and isinstance(chosen, (int, float)) and not isinstance(chosen, bool)
    if kind == "categorical" or (kind is None and threshold and not is_continuous(values)):
        threshold = False
    if threshold:
        if not pd.api.types.is_numeric_dtype(values):
            raise UserError(f"{what}: threshold {chosen} on a non-numeric column")
        mask = values.to_numpy(dtype=float) > float(chosen)
    else:
        wanted = {str(v) for v in (chosen if isinstance(chosen, list) else [chosen])}
        mask = values.astype(str).isin(wanted).to_numpy()
        missing = wanted - set(values.astype(str))
        if missing:
            raise UserError(f"{what}: value(s) {', '.join(sorted(missing))} never occur in column {values.name!r}")
    return mask


def _metrics_list(values: dict[str, float], descriptions: dict[str, str]) -> list[dict[str, Any]]:
    return [{"name": name, "description": descriptions[name], "value": value} for name, value in values.items()]


def _methods(section: Any, available: dict[str, str]) -> list[str] | None:
    chosen = (section or {}).get("methods", "all")
    if chosen == "all":
        return None
    unknown = [m for m in chosen if m not in available]
    if unknown:
        raise UserError(f"unknown bias metric(s) {', '.join(unknown)}; known: {', '.join(available)}")
    return list(chosen)


def analyze(
    config: Mapping[str, Any] | str | os.PathLike[str],
    data: str | os.PathLike[str] | pd.DataFrame,
    output: str | os.PathLike[str],
    *,
    model: Any = None,
    n_jobs: int | None = None,
) -> dict[str, Any]:
    """Run the analysis configuration on `data`; write and return `analysis.json`'s content.
    `model` (a callable or estimator) replaces the config's `predictor` section."""
    config = load_config(config)
    frame = load_data(config, data)
    methods = config.get("methods") or {}
    label_column = _column(frame, config["label"], "label")
    label_values = frame[label_column]
    positive = _select(label_values, config.get("label_values_or_threshold", [1]), "label_values_or_threshold")
    if positive.all() or not positive.any():
        raise UserError(f"label: every row has the same outcome ({'positive' if positive.all() else 'negative'}) "
                        f"under label_values_or_threshold {config.get('label_values_or_threshold')!r}")
    group = None
    if config.get("group_variable") is not None:
        group = frame[_column(frame, config["group_variable"], "group_variable")].astype(str).to_numpy()

    skip = {label_column}
    for key in ("predicted_label_name_or_index", "probability_name_or_index", "joinsource_name_or_index"):
        if config.get(key) is not None:
            skip.add(_column(frame, config[key], key))
    for name in config.get("excluded_columns") or []:
        skip.add(_column(frame, name, "excluded_columns"))
    feature_names = [c for c in frame.columns if c not in skip]
    predictor_section = config.get("predictor") or {}
    predict = from_config(predictor_section, model=model)
    headers = label_headers(predictor_section)
    needs_features = predict is not None and (methods.get("shap") is not None or methods.get("pdp") is not None
                                              or methods.get("post_training_bias") is not None)
    features = _numeric_features(frame, feature_names) if needs_features else None
    predicted = _predictions(config, frame, predict, features, headers, label_values)

    facets = config.get("facet") or []
    if not facets and (methods.get("pre_training_bias") is not None or methods.get("post_training_bias") is not None):
        raise UserError("bias metrics need at least one `facet` in the analysis config")
    result: dict[str, Any] = {"version": "1.0"}
    label_description = {"label": str(label_column),
                         "label_value_or_threshold": _describe(config.get("label_values_or_threshold", [1]))}
    for stage, section_name in (("pre_training_bias_metrics", "pre_training_bias"),
                                ("post_training_bias_metrics", "post_training_bias")):
        if methods.get(section_name) is None:
            continue
        if stage == "post_training_bias_metrics" and predicted is None:
            raise UserError("post-training bias needs predictions: a predictor, predicted_label_name_or_index, "
                            "or probability_name_or_index")
        facet_results: dict[str, list[dict[str, Any]]] = {}
        for facet in facets:
            column = _column(frame, facet.get("name_or_index"), "facet")
            values = frame[column]
            chosen = facet.get("value_or_threshold")
            selections = ([(chosen, _select(values, chosen, f"facet {column!r}", facet.get("type")))] if chosen is not None
                          else [(v, (values.astype(str) == str(v)).to_numpy()) for v in sorted(values.astype(str).unique())])
            entries = []
            for value, d in selections:
                if stage == "pre_training_bias_metrics":
                    computed = bias.pre_training_metrics(d, label_values.to_numpy(), positive, group=group,
                                                         methods=_methods(methods[section_name], bias.PRE_TRAINING))
                    described = _metrics_list(computed, bias.PRE_TRAINING)
                else:
                    computed = bias.post_training_metrics(
                        d, positive, predicted, group=group,
                        features=features if features is not None else _maybe_numeric(frame, feature_names),
                        methods=_methods(methods[section_name], bias.POST_TRAINING),
                    )
                    described = _metrics_list(computed, bias.POST_TRAINING)
                entries.append({"value_or_threshold": _describe(value), "metrics": described})
            facet_results[str(column)] = entries
        result[stage] = {**label_description, "facets": facet_results}

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    explanations: dict[str, Any] = {}
    global_importance: dict[str, dict[str, float]] = {}
    if methods.get("shap") is not None:
        explanations["kernel_shap"], global_importance = _shap(methods["shap"], frame, config, predict, features,
                                                               feature_names, headers, output, n_jobs)
    if methods.get("pdp") is not None:
        explanations["pdp"] = _pdp(methods["pdp"], predict, features, feature_names, headers, global_importance)
    if explanations:
        result["explanations"] = explanations
    (output / "analysis.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    from fmeval.bias.report import render_analysis

    (output / "report.html").write_text(render_analysis(result), encoding="utf-8")
    return result


def _describe(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def _numeric_features(frame: pd.DataFrame, names: list[str]) -> np.ndarray:
    for name in names:
        if not pd.api.types.is_numeric_dtype(frame[name]) or pd.api.types.is_bool_dtype(frame[name]):
            raise UserError(f"feature column {name!r} is not numeric ({frame[name].dtype}); KernelSHAP and the "
                            f"model need numbers: encode it, or list it in excluded_columns")
    return frame[names].to_numpy(dtype=float)


def _maybe_numeric(frame: pd.DataFrame, names: list[str]) -> np.ndarray | None:
    """Features for the flip test when no model needs them: only if they are all numeric."""
    if all(pd.api.types.is_numeric_dtype(frame[n]) and not pd.api.types.is_bool_dtype(frame[n]) for n in names):
        return frame[names].to_numpy(dtype=float)
    return None


def _predictions(config: dict[str, Any], frame: pd.DataFrame, predict: Any, features: np.ndarray | None,
                 headers: Any, label_values: pd.Series) -> np.ndarray | None:
    """Predicted positives: from a predicted-label column, a probability column, or the model."""
    threshold = float(config.get("probability_threshold", 0.5))
    label_spec = config.get("label_values_or_threshold", [1])
    if config.get("predicted_label_name_or_index") is not None:
        column = _column(frame, config["predicted_label_name_or_index"], "predicted_label_name_or_index")
        return _select(frame[column], label_spec, "predicted labels") if isinstance(label_spec, list) else \
            frame[column].to_numpy(dtype=float) > float(label_spec)
    if config.get("probability_name_or_index") is not None:
        column = _column(frame, config["probability_name_or_index"], "probability_name_or_index")
        return frame[column].to_numpy(dtype=float) > threshold
    if predict is None or features is None:
        return None
    outputs = np.asarray(predict(features), dtype=float)
    if outputs.ndim == 2 and outputs.shape[1] > 1:  # class probabilities: the most likely class's label
        names = list(headers) if headers else [str(i) for i in range(outputs.shape[1])]
        chosen = pd.Series([names[i] for i in outputs.argmax(axis=1)])
        return chosen.isin({str(v) for v in (label_spec if isinstance(label_spec, list) else [label_spec])}).to_numpy()
    return outputs.reshape(-1) > threshold


def _shap(section: dict[str, Any], frame: pd.DataFrame, config: dict[str, Any], predict: Any, features: Any,
          feature_names: list[str], headers: Any, output: Path, n_jobs: int | None):
    from fmeval.explain.kernel_shap import kernel_shap

    if predict is None:
        raise UserError("SHAP needs a model: a predictor section, or a model passed from Python")
    baseline = section.get("baseline")
    if isinstance(baseline, str):
        baseline = load_data({"dataset_type": "text/csv", "headers": feature_names}, baseline).to_numpy(dtype=float)
    result = kernel_shap(
        predict, features, background=None if baseline is None else np.asarray(baseline, dtype=float),
        num_clusters=section.get("num_clusters", 10), num_samples=section.get("num_samples", "auto"),
        use_logit=bool(section.get("use_logit", False)), seed=int(section.get("seed", 0)),
        feature_names=feature_names, label_headers=headers, n_jobs=n_jobs,
    )
    importance = result.global_importance(section.get("agg_method", "mean_abs"))
    if section.get("save_local_shap_values", True):
        join = config.get("joinsource_name_or_index")
        ids = frame[_column(frame, join, "joinsource_name_or_index")] if join is not None else pd.Series(range(len(frame)))
        local = pd.DataFrame({"join_id": ids.to_numpy()})
        for i, label in enumerate(result.labels):
            for j, name in enumerate(result.feature_names):
                local[f"{label}_{name}" if len(result.labels) > 1 else name] = result.local[:, i, j]
        (output / "explanations_shap").mkdir(exist_ok=True)
        local.to_csv(output / "explanations_shap" / "out.csv", index=False)
    explained = {label: {"global_shap_values": importance[label], "expected_value": float(result.expected_value[i])}
                 for i, label in enumerate(result.labels)}
    return explained, importance


def _pdp(section: dict[str, Any], predict: Any, features: Any, feature_names: list[str], headers: Any,
         importance: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    from fmeval.explain.pdp import partial_dependence

    if predict is None:
        raise UserError("partial dependence needs a model: a predictor section, or a model passed from Python")
    names = section.get("features")
    if not names:
        if not importance:
            raise UserError("pdp: give `features`, or `top_k_features` together with the shap method")
        first = next(iter(importance.values()))
        names = sorted(first, key=first.get, reverse=True)[: int(section.get("top_k_features", 10))]
    out = []
    for name in names:
        if name not in feature_names:
            raise UserError(f"pdp: {name!r} is not a feature; features: {', '.join(feature_names)}")
        curve = partial_dependence(predict, features, feature_names.index(name),
                                   grid_resolution=int(section.get("grid_resolution", 15)), label_headers=headers)
        out.append({"feature_name": name, "data_type": "numerical", "feature_values": curve["grid"],
                    "label_headers": list(curve["values"]), "model_predictions": list(curve["values"].values())})
    return out
