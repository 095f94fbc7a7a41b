"""Typed options of each monitor kind, with their defaults in one place.

A baseline keeps its kind's options in `monitor.json`; every later check (by hand or by the
scheduler) reads them back through these models, so a misspelt key is an error that names it,
never a silent default. `fmeval monitor KIND baseline`'s flags are generated from the same
models (`--comparison-threshold` from `comparison_threshold`); fields marked `cli: False` are
given another way (a file, or a flag of their own), and `pairs` fields are repeatable
`KEY=VALUE` flags.
"""
from __future__ import annotations

import difflib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError

from fmeval.errors import UserError

NOT_A_FLAG = {"cli": False}
"""Marks fields with no generated flag (set from a file, or by a flag of their own)."""

DRIFT_TESTS = ("ks", "chi_square", "psi", "jensen_shannon", "wasserstein", "linf")
"""The drift tests a column may be given: Kolmogorov-Smirnov and chi-square (p-values), and the
PSI, Jensen-Shannon, normed Wasserstein and L-infinity distances."""


LABEL = str | int | float | None
"""A label as the data holds it (a flag gives it as text)."""


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class MonitorOptions(_Options):
    """What every kind keeps."""

    ground_truth: str | None = Field(default=None, json_schema_extra=NOT_A_FLAG)
    """The ground-truth directory whose labels are merged into captured events by event id."""


class ColumnOptions(_Options):
    """One column's own drift test and threshold (`columns.NAME` in a config, or
    `--column-option NAME.KEY=VALUE`)."""

    test: Literal["ks", "chi_square", "psi", "jensen_shannon", "wasserstein", "linf"] | None = None
    """The drift test of this column (default: normed Wasserstein for numbers, Jensen-Shannon for categories)."""
    threshold: float | None = Field(default=None, gt=0, strict=True)
    """A fixed threshold instead of the calibrated one: a p-value for ks and chi_square, a distance for the others."""
    exclude: StrictBool = False
    """Leave this column out of the drift and constraint checks."""


class DataQualityOptions(MonitorOptions):
    """data-quality options"""

    part: Literal["input", "output"] = "input"
    """For a capture: the requests (input) or the responses (output)."""
    backend: Literal["local", "ray"] = "local"
    """ray: profile the files as one Ray Data job (a check may override it)."""
    drift_method: Literal["calibrated", "evidently"] = "calibrated"
    """calibrated: each column's distance is tested against its null distribution at the window's and the
    baseline's sizes, at --alpha per column, Holm-corrected across columns; evidently: Evidently 0.7.23's
    DataDriftPreset rules exactly (fixed thresholds, blind to the window's size)."""
    alpha: float = Field(default=0.01, gt=0, le=0.5, strict=True)
    """The false-alarm rate of the calibrated drift test and of the completeness test (per window)."""
    completeness_tolerance: float = Field(default=0.01, ge=0, lt=1, strict=True)
    """The smallest drop of completeness below the baseline's that is a violation (then only when significant
    at --alpha, by a one-sided binomial test)."""
    comparison_threshold: float = Field(default=0.1, gt=0, le=1, strict=True)
    """SageMaker's baseline_drift_check: the L-infinity distance (0 to 1) written into constraints.json; with
    comparison_method Robust (the default) a larger distance is a violation only when it is also significant."""
    include: list[str] | None = None
    """Comma-separated columns to check (default: all of them)."""
    preprocessor: str | None = None
    """A Python file defining preprocess_handler(inference_record), as SageMaker's record preprocessor does:
    it turns each captured event into a dict of flat features (or a list of them, or [] to drop it) before
    the check; runs only with --trust-code, in every check and in the scheduler."""
    trust_code: StrictBool = False
    """Allow running --preprocessor's code (the baseline records its SHA-256; a changed file is refused)."""
    preprocessor_sha256: str | None = Field(default=None, json_schema_extra=NOT_A_FLAG)
    """The SHA-256 of the preprocessor file the baseline trusted (written by the baseline)."""
    columns: dict[str, ColumnOptions] = Field(default_factory=dict,
                                              json_schema_extra={"flag": "--column-option", "pairs": "column",
                                                                 "metavar": "COL.KEY=VALUE"})
    """Per-column options (test, threshold, exclude), e.g. --column-option income.test=psi; repeatable."""


class ModelQualityOptions(MonitorOptions):
    """model-quality options"""

    problem_type: Literal["binary", "multiclass", "regression"] = Field(json_schema_extra={"required": True})
    """binary: accuracy, precision, recall, F1, AUC; multiclass: accuracy, weighted F1; regression: MAE, MSE, RMSE, R2."""
    label: str = "label"
    """The ground-truth column."""
    prediction: str = "prediction"
    """The predicted column."""
    probability: str | None = None
    """binary: the positive class's score column (for AUC)."""
    positive_label: LABEL = None
    """binary: the positive label (default: the larger value)."""
    tolerance: float = Field(default=0.05, ge=0, strict=True)
    """How far a metric may fall below its baseline value before it is a violation (for MAE, MSE and RMSE a
    share of the baseline's value)."""
    seed: StrictInt = 0
    """The seed of the bootstrap confidence intervals."""


class _AnalysisOptions(MonitorOptions):
    analysis_config: dict[str, Any] = Field(json_schema_extra=NOT_A_FLAG)
    """The Clarify analysis config (from --config)."""
    trust_model: StrictBool = False
    """Allow loading a pickled/joblib predictor."""
    headers: list[str] | None = None
    """Comma-separated names of a captured request's values (a CSV line or JSON list), in order; the model's
    features come from the request only (default: the analysis config's headers)."""
    features: str | None = None
    """A JMESPath to the features in a captured JSON request, e.g. instances[0].features (default: the
    analysis config's features)."""


class BiasDriftOptions(_AnalysisOptions):
    """bias-drift options"""

    tolerance: float = Field(default=0.1, gt=0, strict=True)
    """How far a bias metric without a range in the config's `thresholds` may move from its baseline value."""
    n_bootstrap: StrictInt = Field(default=200, ge=0)
    """Resamples of a window's rows for each bias metric's 95% confidence interval; a move is a violation only
    when the interval lies wholly past the baseline's value (or the config's bound). 0: no intervals, the
    value alone decides. Not with a predictor, which every resample would call again."""
    seed: StrictInt = 0
    """The seed of the bootstrap confidence intervals."""


class AttributionDriftOptions(_AnalysisOptions):
    """attribution-drift options"""

    ndcg_threshold: float = Field(default=0.9, gt=0, le=1, strict=True)
    """Drift when the NDCG of the current attribution ranking against the baseline's falls below this
    (Model Monitor's default 0.9)."""


class LLMOutputsOptions(MonitorOptions):
    """llm-outputs options"""

    detector: Literal["detoxify", "toxigen"] | None = None
    """Score toxicity with this detector."""
    detector_model: str | None = None
    """The detector's model (name or local path)."""
    detector_checkpoint: str | None = None
    """A local Detoxify checkpoint."""
    batch_size: StrictInt = Field(default=32, ge=1)
    """Outputs scored together by the detector."""
    max_change: dict[str, float] | None = Field(default=None, json_schema_extra={"pairs": "metric",
                                                                               "metavar": "METRIC=VALUE"})
    """The largest significant change of a metric that is not a violation; repeatable (defaults: refusal=0.05,
    toxicity=0.05, f1=0.05, exact_match=0.05, and 0.25 of the baseline for response_words, response_chars
    and prompt_words)."""
    seed: StrictInt = 0
    """The seed of the bootstrap confidence intervals."""


OPTIONS: dict[str, type[MonitorOptions]] = {
    "data-quality": DataQualityOptions,
    "model-quality": ModelQualityOptions,
    "bias-drift": BiasDriftOptions,
    "attribution-drift": AttributionDriftOptions,
    "llm-outputs": LLMOutputsOptions,
}


def default(kind: str, name: str) -> Any:
    """A field's default (for code that runs without a baseline's options)."""
    return OPTIONS[kind].model_fields[name].default


def parse_options(kind: str, options: dict[str, Any], *, source: str) -> MonitorOptions:
    """`options` checked against the kind's model; an unknown key or a bad value is an error that
    names it (and `source`, e.g. the monitor.json it came from)."""
    model = OPTIONS[kind]
    try:
        return model.model_validate(options)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = ".".join(str(part) for part in error["loc"])
            if error["type"] == "extra_forbidden":
                known = _known_keys(model, error["loc"])
                close = difflib.get_close_matches(str(error["loc"][-1]), known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
                problems.append(f"unknown {kind} option {key!r}{hint}")
            else:
                problems.append(f"{key}: {error['msg']}")
        raise UserError(f"{source}: " + "; ".join(problems)) from None


def _known_keys(model: type[BaseModel], location: tuple[Any, ...]) -> list[str]:
    """The keys allowed where an unknown one was found (the kind's, or a column's)."""
    if len(location) > 1 and location[0] == "columns":
        return list(ColumnOptions.model_fields)
    return list(model.model_fields)


def scalar(text: str) -> Any:
    """A flag's VALUE as YAML reads a scalar: 0.2 a number, true a boolean, psi a string."""
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (int, float, bool, str)) else text


def column_pairs(items: list[str]) -> dict[str, dict[str, Any]]:
    """`COL.KEY=VALUE` flags -> {COL: {KEY: VALUE}} (the last dot before `=` ends the column name)."""
    columns: dict[str, dict[str, Any]] = {}
    for item in items:
        target, separator, value = item.partition("=")
        column, dot, key = target.rpartition(".")
        if not separator or not dot or not column or not key:
            raise UserError(f"--column-option {item!r}: expected COLUMN.KEY=VALUE, e.g. income.test=psi "
                            f"(keys: {', '.join(ColumnOptions.model_fields)})")
        columns.setdefault(column, {})[key] = scalar(value)
    return columns


def metric_pairs(items: list[str]) -> dict[str, float]:
    """`METRIC=NUMBER` flags -> {METRIC: NUMBER}."""
    pairs = {}
    for item in items:
        metric, separator, value = item.partition("=")
        try:
            pairs[metric.strip()] = float(value)
        except ValueError:
            separator = ""
        if not separator or not metric.strip():
            raise UserError(f"--max-change {item!r}: expected METRIC=NUMBER, e.g. refusal=0.05")
    return pairs


PAIRS = {"column": column_pairs, "metric": metric_pairs}
"""How each `pairs` field's repeated flags are read."""
