"""`fmeval analyze`: SageMaker Clarify's analysis configuration, run on your own machine.

Reads the data (CSV, JSON Lines or Parquet), computes the pre- and post-training bias metrics
per facet (through `BiasFrame`), KernelSHAP attributions, asymmetric Shapley values of forecasts
(`fmeval.explain.time_series`) and partial dependence, and writes `analysis.json` with Clarify's
keys, the local SHAP values (`explanations_shap/out.csv`, with a join id), and a self-contained
`report.html`.

Facets and labels follow smclarify 0.5 (`fmeval.bias.groups`). A column is continuous when it is float-typed, or
numeric (or numeric text) with at least 5% distinct values, unless a facet's `"type"` or the
config's `"label_type"` (`categorical` or `continuous`) says otherwise. On a continuous column a
single number, or a one-element list, is a threshold: the group is the values above it, reported
as the interval `(threshold, max]`. Otherwise the values listed select the group; a facet without
a value is reported one-vs-all for each of its values. Labels are binarised (the positive values
against the rest) before any metric. Rows with a missing label, facet, predicted label or group
are dropped and reported (`"missing_values": "fail"` refuses them instead).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from fmeval.bias import metrics as bias
from fmeval.bias.frame import BiasFrame, _chosen, binarised_predictions, described
from fmeval.bias.groups import _facet_groups
from fmeval.bias.models import RunnerPredictor, close, from_config, label_headers
from fmeval.errors import DataError, PredictionFailed, UserError

DATASET_TYPES = ("text/csv", "application/jsonlines", "application/x-parquet", "application/x-image")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
BIAS_METHODS = ("pre_training_bias", "post_training_bias", "detection_bias")
BACKENDS = ("local", "ray")
MISSING_REPORTED = 20
CONFIG_KEYS = {
    "dataset_type", "headers", "label", "label_values_or_threshold", "probability_threshold", "features",
    "excluded_columns", "facet", "group_variable", "joinsource_name_or_index", "predicted_label_name_or_index",
    "probability_name_or_index", "methods", "predictor", "version", "dataset_uri", "missing_values", "label_type",
    "time_series_data_config",
    "thresholds",  # fmeval's: each bias metric's allowed [low, high], for bias-drift monitoring
}
ERR_TRUST_IN_CONFIG = (
    "predictor.trusted: whether to load (and so run) a pickled model is not read from a config file, which anyone "
    "may have written; pass --trust-model (or trust_model=True from Python) for a file you trust"
)


def load_config(config: Mapping[str, Any] | str | os.PathLike[str]) -> dict[str, Any]:
    """The analysis configuration, checked: unknown keys, the dataset type, the label and facets."""
    source = "the analysis config"
    if not isinstance(config, Mapping):
        source = str(config)
        try:
            config = json.loads(Path(config).read_text(encoding="utf-8-sig"))
        except OSError as exc:
            raise UserError(f"cannot read the analysis config: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise UserError(f"{config}: the analysis config is not UTF-8 ({exc.reason})") from exc
        except json.JSONDecodeError as exc:
            raise UserError(f"{config}:{exc.lineno}: the analysis config is not JSON: {exc.msg}") from exc
    if not isinstance(config, Mapping):
        raise UserError(f"{source}: the analysis config must be a JSON object")
    unknown = sorted(set(config) - CONFIG_KEYS)
    if unknown:
        raise UserError(f"{source}: unknown analysis config key(s): {', '.join(unknown)}")
    if config.get("dataset_type", "text/csv") not in DATASET_TYPES:
        raise UserError(f"{source}: dataset_type must be one of {', '.join(DATASET_TYPES)}, "
                        f"got {config.get('dataset_type')!r}")
    facets = config.get("facet", [])
    if not isinstance(facets, list) or not all(isinstance(f, Mapping) and "name_or_index" in f for f in facets):
        raise UserError(f"{source}: facet must be a list of objects like "
                        f'[{{"name_or_index": "sex", "value_or_threshold": ["F"]}}], got {facets!r}')
    for facet in facets:
        if facet.get("type") not in (None, "categorical", "continuous"):
            raise UserError(f"{source}: facet {facet['name_or_index']!r}: type must be categorical or continuous")
    if config.get("label_type") not in (None, "categorical", "continuous"):
        raise UserError(f"{source}: label_type must be categorical or continuous")
    if "trusted" in (config.get("predictor") or {}):
        raise UserError(f"{source}: {ERR_TRUST_IN_CONFIG}")
    if config.get("missing_values", "drop") not in ("drop", "fail"):
        raise UserError(f"{source}: missing_values must be 'drop' or 'fail'")
    return dict(config)


def load_data(config: dict[str, Any], data: str | os.PathLike[str] | pd.DataFrame) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data.reset_index(drop=True)
    path, kind, headers = Path(data), config.get("dataset_type", "text/csv"), config.get("headers")
    if kind == "application/x-image" and path.is_dir():
        images = sorted(str(p.resolve()) for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise UserError(f"{path}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this directory")
        return pd.DataFrame({"source-ref": images})
    if path.is_dir():
        raise UserError(f"{path} is a directory: give one data file, or pass --stream (stream=True) to compute the "
                        f"bias metrics over a folder of Parquet or CSV files")
    if not path.is_file():
        raise UserError(f"data file not found: {path}")
    try:
        if kind == "application/x-parquet":
            frame = pd.read_parquet(path)
        elif kind == "application/jsonlines":
            frame = _read_jsonlines(path, config)
        elif kind == "application/x-image":
            frame = _read_manifest(path)
        else:
            frame = _read_csv(path, headers)
    except UnicodeDecodeError as exc:
        raise DataError(str(path), f"not valid UTF-8 ({exc.reason} at byte {exc.start}); save the file as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise DataError(str(path), "the file is empty") from None
    except (pd.errors.ParserError, ValueError, OSError) as exc:
        raise DataError(str(path), f"cannot be read as {kind}: {str(exc).splitlines()[0]}") from None
    if frame.empty:
        raise DataError(str(path), "the file has no data rows")
    return frame


def _read_csv(path: Path, headers: list[str] | None) -> pd.DataFrame:
    frame = pd.read_csv(path, header=None if headers else 0, encoding="utf-8-sig")
    if headers:
        if len(headers) != frame.shape[1]:
            raise UserError(f"{path}: {frame.shape[1]} columns but {len(headers)} headers in the config")
        if [str(v) for v in frame.iloc[0]] == [str(h) for h in headers]:
            frame = pd.read_csv(path, header=0, encoding="utf-8-sig")  # the file has the header row too
        frame.columns = headers
    return frame


def _read_manifest(path: Path) -> pd.DataFrame:
    """A JSON Lines manifest of images, as SageMaker writes them: `source-ref` (a path, relative
    to the manifest's folder or absolute) and any metadata, e.g. a facet column."""
    frame = _read_jsonlines(path, {})
    if "source-ref" not in frame.columns:
        raise DataError(str(path), "an image manifest needs a `source-ref` (the image's path) on every line")
    for number, ref in enumerate(frame["source-ref"], start=1):
        if not isinstance(ref, str) or ref.startswith("s3://"):
            raise DataError(f"{path}:{number}", f"source-ref must be a local path (copy S3 images first), got {ref!r}")
    frame["source-ref"] = [str((path.parent / ref).resolve()) for ref in frame["source-ref"]]
    return frame


def load_images(paths: pd.Series) -> list[np.ndarray]:
    """Each image as (height, width, 3) uint8 RGB."""
    from PIL import Image, UnidentifiedImageError

    images = []
    for row, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                images.append(np.asarray(image.convert("RGB")))
        except (OSError, UnidentifiedImageError) as exc:
            raise DataError(f"{path}", f"image of row {row} cannot be read: {exc}") from None
    return images


def _read_jsonlines(path: Path, config: dict[str, Any]) -> pd.DataFrame:
    import jmespath

    features = jmespath.compile(config["features"]) if config.get("features") else None
    rows = []
    with open(path, encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}", f"invalid JSON: {exc.msg}") from exc
            if features is not None:
                values = features.search(record)
                if not isinstance(values, list):
                    raise DataError(f"{path}:{number}", f"features ({config['features']!r}) is not a list")
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


def _missing_rows(frame: pd.DataFrame, columns: list[str], action: str) -> np.ndarray:
    """Rows with no value in one of `columns`: refused, or to be dropped (and reported)."""
    missing = frame[columns].isna().any(axis=1).to_numpy()
    if missing.any() and action == "fail":
        rows = np.flatnonzero(missing)[:MISSING_REPORTED].tolist()
        raise UserError(f"{int(missing.sum())} row(s) have no value in {', '.join(map(str, columns))} (rows "
                        f"{', '.join(map(str, rows))}); set missing_values to drop to leave them out")
    return missing


def analyze(
    config: Mapping[str, Any] | str | os.PathLike[str],
    data: str | os.PathLike[str] | pd.DataFrame,
    output: str | os.PathLike[str],
    *,
    model: Any = None,
    trust_model: bool = False,
    n_jobs: int | None = None,
    stream: bool = False,
    backend: str = "local",
) -> dict[str, Any]:
    """Run the analysis configuration on `data`; write and return `analysis.json`'s content.

    `model` (a callable or estimator) replaces the config's `predictor` section. A predictor's
    joblib or pickle file is loaded (which runs its code) only with `trust_model=True`.
    `stream=True` computes the bias metrics block by block, for data larger than memory (`data`
    may then be a folder or a glob of Parquet or CSV files; see `fmeval.bias.scale`).
    `backend="ray"` does the same on Ray Data, and spreads KernelSHAP's rows over Ray workers.
    """
    config = load_config(config)
    if backend not in BACKENDS:
        raise UserError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    output = _output_directory(output)
    methods = config.get("methods") or {}
    if stream or backend == "ray":
        from fmeval.bias.scale import streamed_bias

        streamed = {key: methods[key] for key in ("pre_training_bias", "post_training_bias") if key in methods}
        result: dict[str, Any] = {"version": "1.0"}
        if streamed:
            result.update(streamed_bias({**config, "methods": streamed}, data, backend=backend))
        others = {key: value for key, value in methods.items() if key not in streamed}
        if others:  # explanations (and detection bias) need the rows in memory
            result.update(_in_memory({**config, "methods": others}, data, output, model=model, trust_model=trust_model,
                                     n_jobs=n_jobs, backend=backend))
    else:
        result = _in_memory(config, data, output, model=model, trust_model=trust_model, n_jobs=n_jobs, backend=backend)
    (output / "analysis.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    from fmeval.bias.report import render_analysis

    (output / "report.html").write_text(render_analysis(result), encoding="utf-8")
    return result


def _output_directory(output: str | os.PathLike[str]) -> Path:
    """The output directory, made before any work, so that a bad --output fails at once."""
    path = Path(output)
    if path.exists() and not path.is_dir():
        raise UserError(f"--output {path}: exists and is not a directory; give a directory for analysis.json and "
                        f"report.html")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--output {path}: cannot make the directory: {exc.strerror or exc}") from None
    return path


def _in_memory(config: dict[str, Any], data: Any, output: Path, *, model: Any, trust_model: bool,
               n_jobs: int | None, backend: str) -> dict[str, Any]:
    """The analysis with every row in memory: bias metrics (FT included) and explanations."""
    frame = load_data(config, data)
    label_column = _column(frame, config["label"], "label") if config.get("label") is not None else None
    facets = [(facet, _column(frame, facet["name_or_index"], "facet")) for facet in config.get("facet") or []]
    optional = [_column(frame, config[key], key) for key in ("predicted_label_name_or_index", "group_variable")
                if config.get(key) is not None]
    result: dict[str, Any] = {"version": "1.0"}
    required = [c for c in (label_column, *(c for _, c in facets), *optional) if c is not None]
    missing = _missing_rows(frame, required, config.get("missing_values", "drop"))
    if missing.any():
        result["rows_with_missing_values"] = {"count": int(missing.sum()), "action": "dropped",
                                              "rows": np.flatnonzero(missing)[:MISSING_REPORTED].tolist()}
        frame = frame[~missing].reset_index(drop=True)

    skip = {label_column, "source-ref"}
    for key in ("predicted_label_name_or_index", "probability_name_or_index", "joinsource_name_or_index"):
        if config.get(key) is not None:
            skip.add(_column(frame, config[key], key))
    for name in config.get("excluded_columns") or []:
        skip.add(_column(frame, name, "excluded_columns"))
    feature_names = [c for c in frame.columns if c not in skip]
    predictor_section = config.get("predictor") or {}
    predict = from_config(predictor_section, model=model, trusted=trust_model)
    if isinstance(predict, RunnerPredictor):
        n_jobs = 1  # the engine already sends the requests concurrently
    try:
        result.update(_analyses(config, frame, result, label_column, facets, feature_names, predict,
                                label_headers(predictor_section), output, n_jobs, backend))
    finally:
        close(predict)
    return result


def _analyses(config: dict[str, Any], frame: pd.DataFrame, result: dict[str, Any], label_column: str,
              facets: list[tuple[Any, str]], feature_names: list[str], predict: Any, headers: Any, output: Path,
              n_jobs: int | None, backend: str) -> dict[str, Any]:
    """The bias sections and the explanations; rows the model gave no prediction for are left out
    of the post-training metrics and reported (`rows_with_failed_predictions`)."""
    methods = config.get("methods") or {}
    if label_column is None and any(methods.get(m) is not None for m in BIAS_METHODS):
        raise UserError("bias metrics need a `label` (column name or index) in the analysis config")
    shap_section = methods.get("shap")
    images = config.get("dataset_type") == "application/x-image"
    text = shap_section is not None and "text_config" in shap_section
    needs_features = predict is not None and (shap_section is not None or methods.get("pdp") is not None
                                              or methods.get("post_training_bias") is not None
                                              or methods.get("detection_bias") is not None)
    features = None
    if needs_features:
        if images:
            features = load_images(frame["source-ref"])
        else:
            features = _text_inputs(frame[feature_names]) if text else _numeric_features(frame, feature_names)
    if methods.get("detection_bias") is not None:
        result["detection_bias_metrics"] = _detection_bias(methods["detection_bias"], frame, label_column, facets,
                                                           predict, features, result)
    predicted, answered = None, None
    if methods.get("post_training_bias") is not None:
        predicted, answered = _predictions(config, frame, predict, features, headers, label_column, result)
    sections = _bias_report(config, frame, label_column, facets, predicted, feature_names, answered)
    output.mkdir(parents=True, exist_ok=True)
    explanations: dict[str, Any] = {}
    global_importance: dict[str, dict[str, float]] = {}
    if images and shap_section is not None:
        explanations["kernel_shap"] = _image_shap(shap_section, frame, config, predict, features, headers, output,
                                                  result)
    elif text:
        explanations["kernel_shap"] = _text_shap(shap_section, frame, config, predict, feature_names, headers, output,
                                                 result)
    elif shap_section is not None:
        explanations["kernel_shap"], global_importance = _shap(shap_section, frame, config, predict, features,
                                                               feature_names, headers, output, n_jobs, result,
                                                               backend)
    if methods.get("asymmetric_shapley_value") is not None:
        explanations["asymmetric_shapley_value"] = _time_series(config, frame, methods["asymmetric_shapley_value"],
                                                                predict)
    if methods.get("pdp") is not None:
        if text or images:
            raise UserError("pdp needs numeric features; it does not apply to text or images")
        explanations["pdp"] = _pdp(methods["pdp"], predict, features, feature_names, headers, global_importance)
    return {**sections, **({"explanations": explanations} if explanations else {})}


def _bias_report(config: dict[str, Any], frame: pd.DataFrame, label_column: str, facets: list[tuple[Any, str]],
                 predicted: np.ndarray | None, feature_names: list[str],
                 answered: np.ndarray | None = None) -> dict[str, Any]:
    """analysis.json's pre- and post-training sections: each facet group's metrics, from a BiasFrame
    of all rows (pre-training) and of the rows the model answered (post-training)."""
    methods = config.get("methods") or {}
    stages = [(stage, methods[section]) for stage, section in (("pre", "pre_training_bias"),
                                                               ("post", "post_training_bias"))
              if methods.get(section) is not None]
    if not stages:
        return {}
    if not facets:
        raise UserError("bias metrics need at least one `facet` in the analysis config")
    group = None
    if config.get("group_variable") is not None:
        group = frame[_column(frame, config["group_variable"], "group_variable")]
    report: dict[str, Any] = {}
    for stage, section in stages:
        rows = np.ones(len(frame), dtype=bool)
        if stage == "post":
            if predicted is None:
                raise UserError("post-training bias needs predictions: a predictor, predicted_label_name_or_index, "
                                "or probability_name_or_index")
            rows = answered if answered is not None else rows
        kept = frame[rows].reset_index(drop=True)
        bias_frame = BiasFrame(
            y_true=kept[label_column], sensitive_features=kept[[column for _, column in facets]],
            predicted_positive=predicted if stage == "post" else None,
            label_values=config.get("label_values_or_threshold", [1]), label_type=config.get("label_type"),
            facet_values={str(column): facet.get("value_or_threshold") for facet, column in facets},
            facet_type={str(column): facet.get("type") for facet, column in facets},
            group_variable=None if group is None else group[rows], features=kept[feature_names])
        available = bias.PRE_TRAINING if stage == "pre" else bias.POST_TRAINING
        report[f"{stage}_training_bias_metrics"] = bias_frame.analysis_section(
            stage, _methods(section, available), label_name=label_column)
    return report


def _methods(section: Any, available: dict[str, str]) -> list[str]:
    """The metrics a config's section asks for, in Clarify's (alphabetical) order."""
    return _chosen((section or {}).get("methods", "all"), available)


def _numeric_features(frame: pd.DataFrame, names: list[str]) -> np.ndarray:
    for name in names:
        if not pd.api.types.is_numeric_dtype(frame[name]) or pd.api.types.is_bool_dtype(frame[name]):
            raise UserError(f"feature column {name!r} is not numeric ({frame[name].dtype}); KernelSHAP and the "
                            f"model need numbers: encode it, or list it in excluded_columns")
        missing = frame[name].isna().to_numpy()
        if missing.any():
            rows = np.flatnonzero(missing)[:MISSING_REPORTED].tolist()
            raise UserError(f"feature column {name!r} has {int(missing.sum())} missing value(s) (rows "
                            f"{', '.join(map(str, rows))}); the model needs a number in every feature: fill them in, "
                            f"or list the column in excluded_columns")
    return frame[names].to_numpy(dtype=float)


def _predictions(config: dict[str, Any], frame: pd.DataFrame, predict: Any, features: np.ndarray | None,
                 headers: Any, label_column: str, result: dict[str, Any]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Predicted positives, from a predicted-label column, a probability column, or the model; and
    which rows the model answered (None: all of them). Unanswered rows are reported in `result`."""
    threshold = float(config.get("probability_threshold", 0.5))
    label_spec = config.get("label_values_or_threshold", [1])
    if config.get("predicted_label_name_or_index") is not None:
        column = _column(frame, config["predicted_label_name_or_index"], "predicted_label_name_or_index")
        return binarised_predictions(frame[label_column], frame[column], label_spec, config.get("label_type")), None
    if config.get("probability_name_or_index") is not None:
        column = _column(frame, config["probability_name_or_index"], "probability_name_or_index")
        return frame[column].to_numpy(dtype=float) > threshold, None
    if predict is None or features is None:
        return None, None
    answered = None
    try:
        outputs = np.asarray(predict(features), dtype=float)
    except PredictionFailed as failed:
        answered = np.ones(len(features), dtype=bool)
        answered[list(failed.errors)] = False
        if not answered.any():
            raise
        result["rows_with_failed_predictions"] = {
            "count": len(failed.errors), "action": "left out of the post-training metrics",
            "rows": sorted(failed.errors)[:MISSING_REPORTED], "first_error": next(iter(failed.errors.values()))}
        outputs = np.asarray(failed.answered, dtype=float)
    if outputs.ndim == 2 and outputs.shape[1] > 1:  # class probabilities: the most likely class's label
        names = list(headers) if headers else [str(i) for i in range(outputs.shape[1])]
        chosen = pd.Series([names[i] for i in outputs.argmax(axis=1)])
        labels = label_spec if isinstance(label_spec, list) else [label_spec]
        return chosen.isin({str(v) for v in labels}).to_numpy(), answered
    return outputs.reshape(-1) > threshold, answered


def _shap(section: dict[str, Any], frame: pd.DataFrame, config: dict[str, Any], predict: Any, features: Any,
          feature_names: list[str], headers: Any, output: Path, n_jobs: int | None, report: dict[str, Any],
          backend: str):
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
        feature_names=feature_names, label_headers=headers, n_jobs=n_jobs, backend=backend,
    )
    importance = result.global_importance(section.get("agg_method", "mean_abs"))
    if section.get("save_local_shap_values", True):
        local = pd.DataFrame({"join_id": _join_ids(frame, config).to_numpy()})
        for i, label in enumerate(result.labels):
            for j, name in enumerate(result.feature_names):
                local[f"{label}_{name}" if len(result.labels) > 1 else name] = result.local[:, i, j]
        (output / "explanations_shap").mkdir(exist_ok=True)
        local.to_csv(output / "explanations_shap" / "out.csv", index=False)
    if result.errors:
        report["rows_without_explanation"] = {"count": len(result.errors), "action": "SHAP values left empty",
                                              "rows": sorted(result.errors)[:MISSING_REPORTED],
                                              "first_error": next(iter(result.errors.values()))}
    explained = {label: {"global_shap_values": importance[label], "expected_value": float(result.expected_value[i])}
                 for i, label in enumerate(result.labels)}
    return explained, importance


def _detection_bias(section: Any, frame: pd.DataFrame, label_column: str, facets: list[tuple[Any, str]],
                    predict: Any, images: Any, report: dict[str, Any]) -> dict[str, Any]:
    """Per facet group: the detector's precision, recall and mAP@0.5, against the other images;
    and the Recall Difference. The label column holds each image's annotated objects."""
    from fmeval.bias.detection import boxes, detection_bias
    from fmeval.explain.image import detections

    if predict is None or images is None:
        raise UserError("detection_bias needs a detector: a predictor section, or a model passed from Python")
    if not facets:
        raise UserError("detection_bias needs at least one `facet` in the analysis config")
    section = section or {}
    truth = [boxes(value, f"row {row}: {label_column}", 5) for row, value in enumerate(frame[label_column])]
    answered = np.ones(len(images), dtype=bool)
    try:
        answers = list(predict(images))
    except PredictionFailed as failed:  # images without an answer are left out, and reported
        answered[list(failed.errors)] = False
        answers = list(failed.answered)
        report["rows_with_failed_predictions"] = {
            "count": len(failed.errors), "action": "left out of the detection metrics",
            "rows": sorted(failed.errors)[:MISSING_REPORTED], "first_error": next(iter(failed.errors.values()))}
    rows = np.flatnonzero(answered)
    found = [detections(answer, f"the detector's answer for row {row}") for row, answer in zip(rows, answers)]
    truth = [truth[row] for row in rows]
    options = {"iou_threshold": float(section.get("iou_threshold", 0.5)),
               "score_threshold": float(section.get("score_threshold", 0.5))}
    facets_out = {}
    for facet, column in facets:
        facets_out[str(column)] = []
        for selection in _facet_groups(frame[column], facet, str(column)):
            table = detection_bias(found, truth, selection.mask[rows], **options)
            recall_difference = table.pop("RD")
            facets_out[str(column)].append({"value_or_threshold": selection.description, **table, "metrics": described(
                {"RD": recall_difference}, bias.POST_TRAINING)})
    return {"label": str(label_column), **options, "facets": facets_out}


def _image_shap(section: dict[str, Any], frame: pd.DataFrame, config: dict[str, Any], predict: Any,
                images: list[np.ndarray], headers: Any, output: Path, report: dict[str, Any]) -> dict[str, Any]:
    """Clarify's CV explainability: KernelSHAP over SLIC superpixels. Writes per-segment values
    (`explanations_shap/out.jsonl`) and one PNG overlay per image and explained output."""
    from PIL import Image

    from fmeval.explain import image as explain_image

    if predict is None:
        raise UserError("SHAP needs a model: a predictor section, or a model passed from Python")
    settings = explain_image.image_config(section.get("image_config", {}))
    baseline = section.get("baseline", "mean")
    detector = settings["model_type"] == "OBJECT_DETECTION"
    join_ids = _join_ids(frame, config)
    folder = output / "explanations_shap"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    errors: dict[int, str] = {}
    expected: list[np.ndarray] = []
    with open(folder / "out.jsonl", "w", encoding="utf-8") as handle:
        for index, image in enumerate(images):
            try:
                explained = explain_image.explain_image(
                    predict, image, settings=settings, baseline=baseline, num_samples=section.get("num_samples", "auto"),
                    seed=int(section.get("seed", 0)), item=index)
            except PredictionFailed as failed:
                errors[index] = str(failed)
                continue
            values = explained.shap.values
            labels = _output_names(values.shape[0], headers, explained.objects)
            stem = f"{index:05d}_{Path(str(frame['source-ref'].iloc[index])).stem}"
            for o, label in enumerate(labels):
                explain_image.overlay_png(image, explained, o, folder / "images" / f"{stem}_{_safe(label)}.png")
            Image.fromarray(explained.segments.astype(np.uint16)).save(folder / "images" / f"{stem}_segments.png")
            record = {"join_source_value": _plain(join_ids.iloc[index]), "source-ref": frame["source-ref"].iloc[index],
                      "segments_png": f"images/{stem}_segments.png", "labels": labels,
                      "expected_value": explained.shap.masked_output.tolist(),
                      "attributions": values.tolist()}
            if detector:
                record["objects"] = explained.objects.tolist()
            else:
                expected.append(explained.shap.masked_output)
            handle.write(json.dumps(record) + "\n")
    if errors:
        report["rows_without_explanation"] = {"count": len(errors), "action": "not explained",
                                              "rows": sorted(errors)[:MISSING_REPORTED],
                                              "first_error": next(iter(errors.values()))}
    explained_count = len(images) - len(errors)
    if not detector and expected:
        labels = _output_names(len(expected[0]), headers, None)
        return {label: {"expected_value": float(np.mean([e[i] for e in expected])), "images_explained": explained_count}
                for i, label in enumerate(labels)}
    return {"objects": {"images_explained": explained_count}}


def _output_names(count: int, headers: Any, objects: np.ndarray | None) -> list[str]:
    if objects is not None:  # a detector's explained boxes: class and rank
        names = list(headers) if headers else None
        return [f"object{i}_{names[int(o[0])] if names and 0 <= int(o[0]) < len(names) else int(o[0])}"
                for i, o in enumerate(objects)]
    labels = list(headers) if headers else [f"label{i}" for i in range(count)]
    if len(labels) != count:
        raise UserError(f"{len(labels)} label_headers for a model with {count} outputs")
    return labels


def _safe(name: str) -> str:
    """A label as part of a file name."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60]


def _text_inputs(rows: pd.DataFrame) -> Any:
    """What a text model is called with: the texts when there is one feature, else the table."""
    return rows.iloc[:, 0].astype(str).tolist() if rows.shape[1] == 1 else rows.reset_index(drop=True)


def _join_ids(frame: pd.DataFrame, config: dict[str, Any]) -> pd.Series:
    join = config.get("joinsource_name_or_index")
    return frame[_column(frame, join, "joinsource_name_or_index")] if join is not None else pd.Series(range(len(frame)))


def _text_shap(section: dict[str, Any], frame: pd.DataFrame, config: dict[str, Any], predict: Any,
               feature_names: list[str], headers: Any, output: Path, report: dict[str, Any]) -> dict[str, Any]:
    """Clarify's NLP explainability: KernelSHAP over the units of each text feature (any other
    feature is one unit). Writes `explanations_shap/out.jsonl` and `text_heatmap.html`."""
    from fmeval.explain import text as explain_text

    if predict is None:
        raise UserError("SHAP needs a model: a predictor section, or a model passed from Python")
    settings = explain_text.text_config(section["text_config"])
    rows = frame[feature_names]
    is_text = [not pd.api.types.is_numeric_dtype(rows[name]) or pd.api.types.is_bool_dtype(rows[name])
               for name in feature_names]
    if not any(is_text):
        raise UserError(f"text_config: none of the features ({', '.join(map(str, feature_names))}) holds text")
    baseline = _text_baseline(section.get("baseline"), rows, is_text)

    def score_rows(masked: list[list[Any]]) -> np.ndarray:
        outputs = np.asarray(predict(_text_inputs(pd.DataFrame(masked, columns=feature_names))), dtype=float)
        return outputs.reshape(len(masked), -1)

    explained, ids, errors = [], [], {}
    join_ids = _join_ids(frame, config)
    for index, row in enumerate(rows.itertuples(index=False)):
        try:
            explained.append(explain_text.explain_row(
                score_rows, list(row), is_text=is_text, baseline=baseline, granularity=settings["granularity"],
                language=settings["language"], num_samples=section.get("num_samples", "auto"),
                seed=int(section.get("seed", 0)), item=index))
            ids.append(join_ids.iloc[index])
        except PredictionFailed as failed:
            errors[index] = str(failed)
    if errors:
        report["rows_without_explanation"] = {"count": len(errors), "action": "not explained",
                                              "rows": sorted(errors)[:MISSING_REPORTED],
                                              "first_error": next(iter(errors.values()))}
    if not explained:
        raise UserError(f"no row could be explained; row {next(iter(errors))}: {next(iter(errors.values()))}")
    outputs = explained[0].shap.values.shape[0]
    labels = list(headers) if headers else [f"label{i}" for i in range(outputs)]
    if len(labels) != outputs:
        raise UserError(f"{len(labels)} label_headers for a model with {outputs} outputs")
    if section.get("save_local_shap_values", True):
        (output / "explanations_shap").mkdir(exist_ok=True)
        with open(output / "explanations_shap" / "out.jsonl", "w", encoding="utf-8") as handle:
            for row_id, explanation in zip(ids, explained):
                record = explain_text.local_record(explanation, [str(n) for n in feature_names], is_text,
                                                   _plain(row_id))
                handle.write(json.dumps(record) + "\n")
        (output / "text_heatmap.html").write_text(explain_text.heatmap_html(
            explained, [str(n) for n in feature_names], is_text, labels, ids), encoding="utf-8")
    return {label: _text_global(explained, feature_names, is_text, i, section.get("agg_method", "mean_abs"),
                                settings["max_top_tokens"]) for i, label in enumerate(labels)}


def _text_global(explained: list[Any], feature_names: list[str], is_text: list[bool], label: int, agg_method: str,
                 max_top_tokens: int) -> dict[str, Any]:
    """A label's global values: per feature, its units' summed values aggregated over rows; and
    per text feature, the units that matter most."""
    from fmeval.explain import text as explain_text
    from fmeval.explain.kernel_shap import ShapResult

    per_feature = np.array([[values[label].sum() for _, values in e.per_feature()] for e in explained])
    summary = ShapResult(labels=["label"], feature_names=[str(n) for n in feature_names],
                         local=per_feature[:, None, :], expected_value=np.zeros(1), errors={})
    return {"global_shap_values": summary.global_importance(agg_method)["label"],
            "expected_value": float(np.mean([e.shap.masked_output[label] for e in explained])),
            "global_top_shap_text": {str(name): explain_text.top_units(explained, f, label, max_top_tokens)
                                     for f, name in enumerate(feature_names) if is_text[f]}}


def _text_baseline(baseline: Any, rows: pd.DataFrame, is_text: list[bool]) -> list[Any]:
    """Clarify's `baseline` for text: one row, e.g. [["<UNK>"]] (the token a masked unit becomes).
    Without one, a masked unit is removed, and a masked number becomes the column's mean."""
    if baseline is None:
        return ["" if text else float(rows[name].mean()) for name, text in zip(rows.columns, is_text)]
    if (not isinstance(baseline, list) or len(baseline) != 1 or not isinstance(baseline[0], list)
            or len(baseline[0]) != len(is_text)):
        raise UserError(f"shap.baseline for text must be one row with a value per feature ({len(is_text)}), "
                        f'like [["<UNK>"]], got {baseline!r}')
    return list(baseline[0])


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _time_series(config: dict[str, Any], frame: pd.DataFrame, section: dict[str, Any], predict: Any) -> dict[str, Any]:
    """Clarify's time-series explainability: asymmetric Shapley values of each item's forecast."""
    from fmeval.explain.time_series import explain_items

    if predict is None:
        raise UserError("asymmetric_shapley_value needs a forecasting model: a predictor section, or a model passed "
                        "from Python")
    data = config.get("time_series_data_config")
    if not isinstance(data, Mapping) or not all(key in data for key in ("target_time_series", "item_id", "timestamp")):
        raise UserError("asymmetric_shapley_value needs time_series_data_config with target_time_series, item_id and "
                        "timestamp (and optionally related_time_series, static_covariates)")
    if data.get("dataset_format", "columns") != "columns":
        raise UserError(f"time_series_data_config.dataset_format {data['dataset_format']!r}: only the long table "
                        f"(columns: a row per item and time step) is read")
    column = lambda key, value: _column(frame, value, f"time_series_data_config.{key}")  # noqa: E731
    forecast = ((config.get("predictor") or {}).get("time_series_predictor_config") or {}).get("forecast")
    return explain_items(predict, frame, item_id=column("item_id", data["item_id"]),
                         timestamp=column("timestamp", data["timestamp"]),
                         target=column("target_time_series", data["target_time_series"]),
                         related=[column("related_time_series", c) for c in data.get("related_time_series") or []],
                         static=[column("static_covariates", c) for c in data.get("static_covariates") or []],
                         section=section, forecast=forecast)


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
