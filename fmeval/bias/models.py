"""Where `fmeval analyze` gets predictions.

A Python callable or scikit-learn estimator, a joblib or pickle file you trust, or a model
behind a runner: an HTTP endpoint (`predictor.url`), a SageMaker endpoint
(`predictor.endpoint_name`), or any fmeval model spec (`predictor.model`, e.g. a language model
whose scored output is explained). Each becomes a `Predictor`: a list of inputs (rows of
numbers, texts, or images) in, one row of outputs per input out.

Runner-backed predictors send their requests through the engine, so they are concurrent,
retried with backoff, cached, and redacted. A request that still fails leaves its input without
a prediction: `PredictionFailed` says which inputs and why, and the caller decides what that
costs (a row dropped from the bias metrics, one explanation not computed), never the whole job.
"""
from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import pandas as pd

from fmeval.errors import PredictionFailed, UserError

ERR_UNTRUSTED = (
    "{path}: loading a joblib or pickle file runs code from it, so fmeval only loads one you trust: "
    "pass --trust-model (or trust_model=True from Python) if it is yours"
)
RUNNER_KEYS = ("region", "api_key_env", "api_key_header", "max_concurrency", "timeout_s", "inference_component")
ENGINE_KEYS = ("max_retries", "retry_base_delay_s")


class Predictor(Protocol):
    def __call__(self, inputs: Sequence[Any]) -> np.ndarray:
        """One row of outputs per input (a 1-D array for a single output)."""
        ...


def from_estimator(model: Any) -> Predictor:
    """Positive-class probabilities of a classifier (`predict_proba`, all columns when multi-class),
    else `predict`; or any callable on the batch of inputs."""
    names = getattr(model, "feature_names_in_", None)  # fitted on a DataFrame: it wants its columns by name

    def named(inputs: Any) -> Any:
        array = np.asarray(inputs) if names is not None else inputs
        if names is not None and array.ndim == 2 and array.shape[1] == len(names):
            import pandas as pd

            return pd.DataFrame(array, columns=list(names))
        return inputs

    if hasattr(model, "predict_proba"):
        def predict(inputs: Sequence[Any]) -> np.ndarray:
            probabilities = np.asarray(model.predict_proba(named(inputs)), dtype=float)
            return probabilities[:, 1] if probabilities.ndim == 2 and probabilities.shape[1] == 2 else probabilities

        return predict
    if hasattr(model, "predict"):
        return lambda inputs: _outputs(model.predict(named(inputs)))
    if callable(model):
        return lambda inputs: _outputs(model(inputs))
    raise UserError(f"a model must be callable or have predict/predict_proba, got {type(model).__name__}")


def _outputs(values: Any) -> Any:
    """Numbers as an array; a ragged answer (a detector's boxes per image) or objects (a forecaster's) stay a list."""
    try:
        return np.asarray(values, dtype=float)
    except (ValueError, TypeError):
        return list(values)


def from_file(path: str | os.PathLike[str], *, trusted: bool) -> Predictor:
    if not trusted:
        raise UserError(ERR_UNTRUSTED.format(path=path))
    if not Path(path).is_file():
        raise UserError(f"model file not found: {path}")
    import joblib

    return from_estimator(joblib.load(path))


# -- models behind a runner --------------------------------------------------------------------------
def encode_input(item: Any, placeholder: str) -> str:
    """One request's text: for `$prompt`, the text itself; for `$features`, Clarify's features as
    JSON (a row of numbers or mixed values, a list with the text, a base64 PNG)."""
    if isinstance(item, str):
        return item if placeholder == "$prompt" else json.dumps([item])
    if isinstance(item, np.ndarray) and item.ndim == 3:  # an image (height, width, channels)
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(item).save(buffer, format="PNG")
        return json.dumps(base64.b64encode(buffer.getvalue()).decode("ascii"))
    return json.dumps([value.item() if isinstance(value, np.generic) else value for value in item])


def read_numbers(output: str, where: str) -> np.ndarray:
    """A numeric output (a number or a list of numbers) of one request."""
    try:
        value = np.asarray(json.loads(output), dtype=float)
    except (json.JSONDecodeError, TypeError, ValueError):
        raise ValueError(f"{where}: expected a number or a list of numbers, got {output[:100]!r}") from None
    if not np.all(np.isfinite(value)):
        raise ValueError(f"{where}: not a finite number: {output[:100]!r}")
    return value


def _rows(inputs: Any) -> list[Any]:
    """A batch as a list of items: a table's rows become lists of their values."""
    if isinstance(inputs, pd.DataFrame):
        return [list(row) for row in inputs.itertuples(index=False)]
    return list(inputs)


class _EnginePredictor:
    """A model runner behind the engine, so requests are batched or concurrent, retried, cached
    (re-running an analysis asks the model only for what is new) and redacted. An input whose
    request still fails raises `PredictionFailed` with the answers of the others."""

    def __init__(self, runner: Any, *, engine_options: Any = None):
        from fmeval.engine.cache import ResponseCache
        from fmeval.engine.engine import Engine

        load = getattr(runner, "load", None)
        if load is not None:
            load()
        store = ResponseCache() if runner.capabilities.cacheable else None
        self.engine = Engine(runner, options=engine_options, store=store)

    def _collect(self, values: list[Any], errors: dict[int, str]) -> Any:
        answered = [value for index, value in enumerate(values) if index not in errors]
        if len({np.shape(value) for value in answered}) == 1:  # else ragged, e.g. a detector's boxes per image
            answered = np.stack(answered) if isinstance(answered[0], np.ndarray) else np.asarray(answered)
        if errors:
            raise PredictionFailed(errors, len(values), answered)
        return answered

    def close(self) -> None:
        self.engine.close()


class RunnerPredictor(_EnginePredictor):
    """Each input one request; each answer read into a row of outputs by `read` (e.g. the numbers
    at the configured JMESPath)."""

    def __init__(self, runner: Any, *, read: Callable[[str, str], Any], placeholder: str = "$features",
                 engine_options: Any = None):
        super().__init__(runner, engine_options=engine_options)
        self.read = read
        self.placeholder = placeholder

    def __call__(self, inputs: Any) -> Any:
        outputs = self.engine.generate([encode_input(item, self.placeholder) for item in _rows(inputs)])
        values: list[Any] = []
        errors: dict[int, str] = {}
        for index, answer in enumerate(outputs):
            try:
                if answer.error is not None:
                    raise ValueError(answer.error)
                values.append(self.read(answer.output or "", f"the answer for input {index}"))
            except ValueError as exc:
                errors[index] = str(exc)
                values.append(None)
        return self._collect(values, errors)


SCORES = ("log_probability", "classification_accuracy")


class LanguageModelScore(_EnginePredictor):
    """A language model's score for each text, put into `prompt_template` at `$feature`: the
    log-probability of `target` after the prompt (log p(prompt + target) - log p(prompt)), or
    classification_accuracy: 1 when the label read from its answer (as the classification_accuracy
    evaluation reads it, among `valid_labels`) is `target`, else 0."""

    def __init__(self, runner: Any, *, prompt_template: str, score: str, target: str,
                 valid_labels: Sequence[str] | None = None, engine_options: Any = None):
        if "$feature" not in prompt_template:
            raise UserError(f"predictor.prompt_template must contain $feature, got {prompt_template!r}")
        if score not in SCORES:
            raise UserError(f"predictor.score must be one of {', '.join(SCORES)}, got {score!r}")
        if score == "classification_accuracy" and not valid_labels:
            raise UserError("predictor.score classification_accuracy needs valid_labels (the labels to look for)")
        if score == "log_probability" and not runner.capabilities.log_probability:
            raise UserError("predictor.score log_probability needs a model that gives log-probabilities")
        super().__init__(runner, engine_options=engine_options)
        self.prompt_template, self.score, self.target = prompt_template, score, target
        self.valid_labels = list(valid_labels or [])

    def __call__(self, inputs: Any) -> np.ndarray:
        texts = [str(row[0]) if isinstance(row, list) else str(row) for row in _rows(inputs)]
        prompts = [self.prompt_template.replace("$feature", text) for text in texts]
        errors: dict[int, str] = {}
        if self.score == "log_probability":
            answers = self.engine.log_probability(prompts + [prompt + self.target for prompt in prompts])
            values: list[Any] = []
            for index, (prompt, completed) in enumerate(zip(answers[: len(prompts)], answers[len(prompts):])):
                error = prompt.error or completed.error
                if error is not None:
                    errors[index] = error
                values.append(None if error else completed.log_probability - prompt.log_probability)
            return self._collect(values, errors)
        from fmeval.algorithms.classification_accuracy import make_label_converter

        convert = make_label_converter()
        values = []
        for index, answer in enumerate(self.engine.generate(prompts)):
            if answer.error is not None:
                errors[index] = answer.error
            values.append(None if answer.error else float(convert(answer.output or "", self.valid_labels) == self.target))
        return self._collect(values, errors)


def from_config(predictor: dict[str, Any], *, model: Any = None, trusted: bool = False) -> Predictor | None:
    """A model from Python (`model`), or from the analysis configuration's `predictor` section.
    A model file is loaded only when `trusted` (the caller's word, never the config's)."""
    if model is not None:
        return from_estimator(model)
    if not predictor:
        return None
    if predictor.get("model_path"):
        return from_file(predictor["model_path"], trusted=trusted)
    from fmeval.model_runners import load_runner

    if predictor.get("model"):
        if "target" not in predictor:
            raise UserError("a language-model predictor needs `target`: the text whose log-probability is "
                            "explained, or the label classification_accuracy looks for")
        runner = load_runner(predictor["model"], **predictor.get("model_options", {}))
        return LanguageModelScore(runner, prompt_template=predictor.get("prompt_template", "$feature"),
                                  score=predictor.get("score", "log_probability"), target=str(predictor["target"]),
                                  valid_labels=predictor.get("valid_labels"), engine_options=engine_options(predictor))
    spec = predictor.get("url") or (f"sagemaker:{predictor['endpoint_name']}" if predictor.get("endpoint_name") else None)
    if spec is None:
        raise UserError("the predictor section needs model_path (with --trust-model), url, endpoint_name, or model")
    output = predictor.get("probability") or predictor.get("label")
    if not output:
        raise UserError("an endpoint predictor needs a `probability` or `label` JMESPath for its answers")
    template = predictor.get("content_template", '{"features": $features}')
    options = {key: predictor[key] for key in RUNNER_KEYS if key in predictor}
    runner = load_runner(spec, **{**options, "content_template": template, "output": output})
    return RunnerPredictor(runner, read=read_numbers, placeholder=runner.template.placeholder,
                           engine_options=engine_options(predictor))


def engine_options(predictor: dict[str, Any]) -> Any:
    """How a runner-backed predictor's requests are retried (`max_retries`, `retry_base_delay_s`)."""
    from fmeval.engine.engine import EngineOptions

    try:
        return EngineOptions(**{key: predictor[key] for key in ENGINE_KEYS if key in predictor})
    except ValueError as exc:
        raise UserError(f"predictor: {exc}") from None


def close(predict: Any) -> None:
    """Release a predictor's connections (runner-backed ones hold an engine)."""
    closer = getattr(predict, "close", None)
    if closer is not None:
        closer()


def label_headers(predictor: dict[str, Any]) -> Sequence[str] | None:
    return predictor.get("label_headers") if predictor else None
