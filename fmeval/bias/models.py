"""Where predictions come from: a Python callable or scikit-learn estimator, a trusted joblib or
pickle file, an HTTP endpoint, or a SageMaker endpoint. Each becomes `rows -> outputs`."""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from fmeval.errors import UserError

Predict = Callable[[np.ndarray], np.ndarray]
ERR_UNTRUSTED = (
    "{path}: loading a joblib or pickle file runs code from it, so fmeval only loads one you trust: "
    "pass --trust-model (or trust_model=True from Python) if it is yours"
)


def from_estimator(model: Any) -> Predict:
    """Positive-class probabilities of a classifier (`predict_proba`, all columns when multi-class),
    else `predict`; or any callable on a 2-D array."""
    if hasattr(model, "predict_proba"):
        def predict(rows: np.ndarray) -> np.ndarray:
            probabilities = np.asarray(model.predict_proba(rows), dtype=float)
            return probabilities[:, 1] if probabilities.shape[1] == 2 else probabilities

        return predict
    if hasattr(model, "predict"):
        return lambda rows: np.asarray(model.predict(rows), dtype=float)
    if callable(model):
        return lambda rows: np.asarray(model(rows), dtype=float)
    raise UserError(f"a model must be callable or have predict/predict_proba, got {type(model).__name__}")


def from_file(path: str | os.PathLike[str], *, trusted: bool) -> Predict:
    if not trusted:
        raise UserError(ERR_UNTRUSTED.format(path=path))
    if not Path(path).is_file():
        raise UserError(f"model file not found: {path}")
    import joblib

    return from_estimator(joblib.load(path))


class _JsonEndpoint:
    """One JSON request per row built from `content_template` ($features is the row as a JSON
    array), and JMESPath locations of the label or probability in each response."""

    def __init__(self, *, content_template: str, probability: str | None, label: str | None):
        import jmespath

        if "$features" not in content_template:
            raise UserError(f"content_template must contain $features, got {content_template!r}")
        if probability is None and label is None:
            raise UserError("an endpoint needs a `probability` or `label` JMESPath for its responses")
        self.content_template = content_template
        self.path = probability or label
        self._compiled = jmespath.compile(self.path)

    def body(self, row: np.ndarray) -> str:
        return self.content_template.replace("$features", json.dumps([float(v) for v in row]))

    def read(self, raw: bytes, index: int) -> Any:
        try:
            value = self._compiled.search(json.loads(raw))
            if value is None:  # np.asarray(None, dtype=float) would quietly be NaN
                raise ValueError("nothing found")
            number = np.asarray(value, dtype=float)
            if not np.all(np.isfinite(number)):
                raise ValueError("not a finite number")
            return number
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError):
            raise UserError(
                f"the endpoint's answer for record {index} has no number at {self.path!r}: {raw[:200]!r}"
            ) from None


def from_http_endpoint(url: str, *, content_template: str = '{"features": $features}', probability: str | None = None,
                       label: str | None = None, max_concurrency: int = 8, timeout_s: float = 60.0) -> Predict:
    import httpx

    endpoint = _JsonEndpoint(content_template=content_template, probability=probability, label=label)
    client = httpx.Client(timeout=timeout_s, limits=httpx.Limits(max_connections=max_concurrency))

    def one(item: tuple[int, np.ndarray]) -> Any:
        index, row = item
        try:
            response = client.post(url, content=endpoint.body(row), headers={"Content-Type": "application/json"})
        except httpx.HTTPError as exc:
            raise UserError(f"the endpoint {url} failed for record {index}: {exc}") from exc
        if response.status_code >= 400:
            raise UserError(f"the endpoint {url} answered HTTP {response.status_code} for record {index}: "
                            f"{response.text[:200]!r}")
        return endpoint.read(response.content, index)

    return _parallel_rows(one, max_concurrency)


def from_sagemaker_endpoint(endpoint_name: str, *, content_template: str = '{"features": $features}',
                            probability: str | None = None, label: str | None = None, region: str | None = None,
                            max_concurrency: int = 8, client: Any = None) -> Predict:
    endpoint = _JsonEndpoint(content_template=content_template, probability=probability, label=label)
    if client is None:
        import boto3

        client = boto3.session.Session().client("sagemaker-runtime", region_name=region)

    def one(item: tuple[int, np.ndarray]) -> Any:
        index, row = item
        response = client.invoke_endpoint(EndpointName=endpoint_name, Body=endpoint.body(row),
                                           ContentType="application/json", Accept="application/json")
        return endpoint.read(response["Body"].read(), index)

    return _parallel_rows(one, max_concurrency)


def _parallel_rows(one: Callable[[tuple[int, np.ndarray]], Any], workers: int) -> Predict:
    def predict(rows: np.ndarray) -> np.ndarray:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return np.stack(list(pool.map(one, enumerate(rows))))

    return predict


def from_config(predictor: dict[str, Any], *, model: Any = None, trusted: bool = False) -> Predict | None:
    """A model from Python (`model`), or from the analysis configuration's `predictor` section.
    A model file is loaded only when `trusted` (the caller's word, never the config's)."""
    if model is not None:
        return from_estimator(model)
    if not predictor:
        return None
    options = {k: predictor.get(k) for k in ("content_template", "probability", "label") if predictor.get(k)}
    if predictor.get("model_path"):
        return from_file(predictor["model_path"], trusted=trusted)
    if predictor.get("url"):
        return from_http_endpoint(predictor["url"], **options)
    if predictor.get("endpoint_name"):
        return from_sagemaker_endpoint(predictor["endpoint_name"], region=predictor.get("region"), **options)
    raise UserError("the predictor section needs model_path (with --trust-model), url, or endpoint_name")


def label_headers(predictor: dict[str, Any]) -> Sequence[str] | None:
    return predictor.get("label_headers") if predictor else None
