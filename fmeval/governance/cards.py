"""Model cards: SageMaker's model card content, section by section and field by field (the JSON
that `create_model_card`'s `Content` takes, schema 0.1: the snake_case names of the
AWS::SageMaker::ModelCard Content reference), so cards export to it and import from it.

Every model forbids unknown fields: a misspelt field is an error that names it, never dropped. Every
field holds SageMaker's limits (text lengths, names of 1 to 63 characters, list sizes, each metric type's
value shape), and no number is NaN or Infinity: JSON has neither, and SageMaker refuses both.
`from_run` and `from_analysis` fill a card's evaluation details from fmeval's runs and analyses.
"""
from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

RiskRating = Literal["High", "Medium", "Low", "Unknown"]
MetricType = Literal["number", "string", "boolean", "linear_graph", "bar_chart", "matrix"]
NAME_LIMIT = 63  # evaluation job, metric group and axis names (SageMaker's `.{1,63}`)


def _text(limit: int, *, required: bool = False) -> Any:
    return Annotated[str, StringConstraints(min_length=1 if required else 0, max_length=limit)]


Name63, Name255, Text63, Text255 = _text(NAME_LIMIT, required=True), _text(255, required=True), _text(63), _text(255)
Text256, Text1024, Text2048, Text2096 = _text(256), _text(1024), _text(2048), _text(2096)
Uri = _text(1024)


class Section(BaseModel):
    # NaN and Infinity are not JSON: SageMaker refuses them, so a card never holds them
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class InferenceEnvironment(Section):
    container_image: list[Uri] = Field(default_factory=list, max_length=15)
    """Inference image URIs (at most 15)."""


class ModelOverview(Section):
    model_description: Text1024 | None = None
    model_id: Text1024 | None = None
    """A SageMaker model ARN or another model id."""
    model_name: Text1024 | None = None
    model_version: float | None = None
    """The model's version (a number)."""
    problem_type: str | None = None
    algorithm_type: Text1024 | None = None
    model_creator: Text1024 | None = None
    model_owner: Text1024 | None = None
    model_artifact: list[Uri] = Field(default_factory=list, max_length=15)
    """Model artifact URIs (at most 15)."""
    inference_environment: InferenceEnvironment | None = None


class IntendedUses(Section):
    purpose_of_model: Text2048 | None = None
    intended_uses: Text2048 | None = None
    factors_affecting_model_efficiency: Text2048 | None = None
    risk_rating: RiskRating | None = None
    explanations_for_risk_rating: Text2048 | None = None


class BusinessDetails(Section):
    business_problem: Text2048 | None = None
    business_stakeholders: Text2048 | None = None
    line_of_business: Text2048 | None = None


class Function(Section):
    function: Literal["Maximize", "Minimize"] | None = None
    facet: Text63 | None = None
    condition: Text63 | None = None


class ObjectiveFunction(Section):
    function: Function | None = None
    notes: Text1024 | None = None


class TrainingMetric(Section):
    name: Name255
    value: float
    notes: Text1024 | None = None


class HyperParameter(Section):
    name: Name255
    value: Text255 | None = None


class TrainingEnvironment(Section):
    container_image: list[Uri] = Field(default_factory=list, max_length=15)


class TrainingJobDetails(Section):
    training_arn: Text1024 | None = None
    training_datasets: list[Uri] = Field(default_factory=list, max_length=15)
    training_environment: TrainingEnvironment | None = None
    training_metrics: list[TrainingMetric] = Field(default_factory=list, max_length=50)
    user_provided_training_metrics: list[TrainingMetric] = Field(default_factory=list, max_length=50)
    hyper_parameters: list[HyperParameter] = Field(default_factory=list, max_length=100)
    user_provided_hyper_parameters: list[HyperParameter] = Field(default_factory=list, max_length=100)


class TrainingDetails(Section):
    objective_function: ObjectiveFunction | None = None
    training_observations: Text1024 | None = None
    training_job_details: TrainingJobDetails | None = None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _row(value: Any, length: tuple[int, int]) -> bool:
    return isinstance(value, list) and length[0] <= len(value) <= length[1] and all(map(_finite, value))


# what each metric type's value and axis names are (SageMaker's simple, linear graph, bar chart and matrix metrics)
_SHAPES: dict[str, tuple[str, Any, type, type]] = {
    "number": ("a finite number", _finite, str, str),
    "string": (f"text of at most {NAME_LIMIT} characters", lambda v: isinstance(v, str) and len(v) <= NAME_LIMIT, str, str),
    "boolean": ("true or false", lambda v: isinstance(v, bool), str, str),
    "linear_graph": ("a non-empty list of [x, y] number pairs",
                     lambda v: isinstance(v, list) and v != [] and all(_row(p, (2, 2)) for p in v), str, str),
    "bar_chart": ("a non-empty list of numbers", lambda v: _row(v, (1, float("inf"))), list, str),
    "matrix": ("1 to 20 rows of 1 to 20 numbers",
               lambda v: isinstance(v, list) and 1 <= len(v) <= 20 and all(_row(r, (1, 20)) for r in v), list, list),
}


class Metric(Section):
    name: Name255
    type: MetricType
    value: Any = Field(...)
    """Its shape follows `type`: a number, text, true/false, [x, y] pairs, a list of numbers, or rows of numbers."""
    notes: Text1024 | None = None
    x_axis_name: Union[Text63, list[Text63], None] = None
    """Text for number, string, boolean and linear_graph metrics; a list for bar_chart and matrix metrics."""
    y_axis_name: Union[Text63, list[Text63], None] = None
    """Text, except for a matrix: a list."""

    @model_validator(mode="after")
    def _shaped(self) -> "Metric":
        what, fits, x_axis, y_axis = _SHAPES[self.type]
        if not fits(self.value):
            raise ValueError(f"value: a {self.type} metric's value is {what}, got {self.value!r:.80}")
        for field, kind in (("x_axis_name", x_axis), ("y_axis_name", y_axis)):
            if getattr(self, field) is not None and not isinstance(getattr(self, field), kind):
                raise ValueError(f"{field}: a {self.type} metric's {field} is {'a list of names' if kind is list else 'a name'}")
        return self


class MetricGroup(Section):
    name: Name63
    metric_data: list[Metric]


class EvaluationJob(Section):
    name: Name63
    """At most 63 characters (SageMaker's limit); fmeval's run id and full names are in `metadata`."""
    evaluation_observation: Text2096 | None = None
    evaluation_job_arn: Text256 | None = None
    datasets: list[Uri] = Field(default_factory=list, max_length=10)
    metadata: dict[str, Text1024] = Field(default_factory=dict)
    metric_groups: list[MetricGroup] = Field(default_factory=list)


class AdditionalInformation(Section):
    ethical_considerations: Text2048 | None = None
    caveats_and_recommendations: Text2048 | None = None
    custom_details: dict[str, Text1024] = Field(default_factory=dict)


class ModelPackageCreator(Section):
    user_profile_name: Text63 | None = None


class SourceAlgorithm(Section):
    algorithm_name: _text(170, required=True)
    model_data_url: Uri | None = None


class InferenceContainer(Section):
    image: Name255
    model_data_url: Uri | None = None
    nearest_model_name: str | None = None


class InferenceSpecification(Section):
    containers: list[InferenceContainer] = Field(min_length=1, max_length=15)


class ModelPackageDetails(Section):
    """The model package a card describes, as SageMaker's model registry fills it (a card imported from a
    model package version carries it)."""

    model_package_description: Text1024 | None = None
    model_package_arn: _text(2048) | None = None
    created_by: ModelPackageCreator | None = None
    model_package_status: Literal["Pending", "InProgress", "Completed", "Failed", "Deleting"] | None = None
    model_approval_status: Literal["Approved", "Rejected", "PendingManualApproval"] | None = None
    approval_description: Text1024 | None = None
    model_package_group_name: Text63 | None = None
    model_package_name: Text63 | None = None
    model_package_version: int | None = Field(None, ge=1)
    domain: str | None = None
    task: str | None = None
    source_algorithms: list[SourceAlgorithm] = Field(default_factory=list, max_length=15)
    inference_specification: InferenceSpecification | None = None


class ModelCard(Section):
    """A model card's content; `ModelCard.model_validate(json)` imports SageMaker's, and
    `card.to_sagemaker()` exports it."""

    model_overview: ModelOverview = Field(default_factory=ModelOverview)
    intended_uses: IntendedUses = Field(default_factory=IntendedUses)
    business_details: BusinessDetails = Field(default_factory=BusinessDetails)
    training_details: TrainingDetails = Field(default_factory=TrainingDetails)
    evaluation_details: list[EvaluationJob] = Field(default_factory=list)
    additional_information: AdditionalInformation = Field(default_factory=AdditionalInformation)
    model_package_details: ModelPackageDetails | None = None

    @classmethod
    def from_stored(cls, content: dict[str, Any]) -> "ModelCard":
        """A card as the store holds it. One saved by an fmeval that checked less (names over 63
        characters, NaN or Infinity scores, a group without metric_data) opens with its names cut and
        such scores as string metrics, as `from_run` now writes them; its next save is valid."""
        from pydantic import ValidationError

        try:
            return cls.model_validate(content)
        except ValidationError:
            return cls.model_validate(_fitted_to_limits(content))

    def to_sagemaker(self) -> dict[str, Any]:
        """The content as SageMaker takes it: empty fields left out."""
        return self.model_dump(mode="json", exclude_none=True, exclude_defaults=True)

    def add_evaluation(self, job: EvaluationJob) -> None:
        """Add an evaluation job, replacing one of the same name (a run added twice counts once)."""
        self.evaluation_details = [j for j in self.evaluation_details if j.name != job.name] + [job]


def validation_errors(exc: Any) -> list[str]:
    """A pydantic ValidationError as one line per field: `section.field: what is wrong`."""
    lines = []
    for error in exc.errors():
        where, message = [str(part) for part in error["loc"]], error["msg"].removeprefix("Value error, ")
        field, separator, rest = message.partition(": ")
        if error["type"] == "value_error" and separator and field.isidentifier():  # a check that names its field
            where, message = [*where, field], rest
        lines.append(f"{'.'.join(where) or '(card)'}: {message}")
    return lines


def _fitted_to_limits(content: dict[str, Any]) -> dict[str, Any]:
    jobs = [{**job, "name": fitted(str(job.get("name") or "evaluation")), "metric_groups": [
        {**group, "name": fitted(str(group.get("name") or "metrics")), "metric_data": [
            _metric(m["name"], float(m["value"]), m.get("notes")).model_dump(exclude_none=True)
            if m.get("type") == "number" and _numeric(m.get("value")) and not math.isfinite(m["value"]) else m
            for m in group.get("metric_data") or []]}
        for group in job.get("metric_groups") or []]} for job in content.get("evaluation_details") or []]
    return {**content, "evaluation_details": jobs}


# -- filled from fmeval's own results ----------------------------------------------------------------------
def _numeric(value: Any) -> bool:
    """A number, NaN and the infinities included."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def fitted(text: str, limit: int = NAME_LIMIT) -> str:
    """`text` cut to `limit` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _metric(name: str, value: float, notes: str | None) -> Metric:
    """A score as a number metric; NaN or an infinity (JSON has neither) as a string metric that says so."""
    if math.isfinite(value):
        return Metric(name=fitted(name, 255), type="number", value=float(value), notes=notes)
    text = "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    return Metric(name=fitted(name, 255), type="string", value=text,
                  notes=fitted(f"not a finite number (JSON has no {text}); {notes}" if notes else "not a finite number",
                               1024))


def from_run(run: Any) -> tuple[dict[str, Any], EvaluationJob]:
    """The model overview fields and the evaluation job a finished run (`runs.LoadedRun`) gives.

    The job's name is the evaluation and dataset cut to fit SageMaker's 63 characters, then the run id
    (so a run added twice counts once); the full names are in its metadata."""
    summary = run.summary
    model = summary.model or {}
    overview = {"model_name": fitted(run.label, 1024),
                "model_id": fitted(str(model.get("model") or model.get("path") or run.label), 1024),
                "inference_environment": {"container_image": [f"fmeval runner: {model.get('type', 'unknown')}"]}}
    shas = summary.dataset.get("sha256") or []
    datasets = [f"{summary.dataset_name} (sha256 {', '.join(shas) if isinstance(shas, list) else shas})"
                if shas else summary.dataset_name]

    def metric(score: Any) -> Metric:
        notes = f"95% CI [{score.ci_lower:.4f}, {score.ci_upper:.4f}]" if _finite(score.ci_lower) else "no CI"
        return _metric(score.name, float(score.value), f"{notes}; n={score.count}" if score.count is not None else notes)

    groups = [MetricGroup(name="dataset", metric_data=[metric(s) for s in summary.dataset_scores if _numeric(s.value)])]
    groups += [MetricGroup(name=fitted(f"category: {category.name}"),
                           metric_data=[metric(s) for s in category.scores if _numeric(s.value)])
               for category in summary.category_scores]
    suffix = f" (run {run.run_id})"
    job = EvaluationJob(
        name=fitted(f"{summary.eval_name} on {summary.dataset_name}", NAME_LIMIT - len(suffix)) + suffix,
        evaluation_observation=f"{summary.num_records} records, {summary.num_errors} errors; fmeval "
                               f"{summary.fmeval_version}, seed {summary.seed}",
        datasets=[fitted(d, 1024) for d in datasets],
        metadata={"fmeval_run_id": run.run_id, "evaluation": fitted(summary.eval_name, 1024),
                  "dataset": fitted(summary.dataset_name, 1024), "created_at": str(summary.created_at),
                  "output_path": fitted(str(run.directory.path), 1024)},
        metric_groups=groups)
    return overview, job


def from_analysis(analysis: dict[str, Any], *, name: str) -> EvaluationJob:
    """The evaluation job of an `fmeval analyze` result (analysis.json): bias metrics per facet
    group, and global SHAP values per label (a label's values that are not finite are left out of its chart)."""
    groups = []
    for stage in ("pre_training_bias_metrics", "post_training_bias_metrics"):
        for facet, facet_groups in (analysis.get(stage) or {}).get("facets", {}).items():
            for group in facet_groups:
                data = [_metric(m["name"], float(m["value"]), m.get("description") and fitted(m["description"], 1024))
                        for m in group["metrics"] if _numeric(m.get("value"))]
                groups.append(MetricGroup(name=fitted(f"{stage.split('_')[0]}-training bias: {facet}="
                                                      f"{group['value_or_threshold']}"), metric_data=data))
    for label, entry in ((analysis.get("explanations") or {}).get("kernel_shap") or {}).items():
        values = {fitted(str(k)): float(v) for k, v in (entry.get("global_shap_values") or {}).items()
                  if _finite(v)}
        if values:
            groups.append(MetricGroup(name=fitted(f"global SHAP values: {label}"), metric_data=[
                Metric(name="global_shap_values", type="bar_chart", value=list(values.values()),
                       x_axis_name=list(values), y_axis_name="mean |SHAP|")]))
    observation = "fmeval analyze (SageMaker Clarify's configuration)"
    if analysis.get("mitigation"):  # `fmeval mitigate`: the unmitigated and the chosen model, on the test rows
        mitigation = analysis["mitigation"]
        settings = mitigation["settings"]
        observation = fitted(f"fmeval mitigate: {settings['method']} under {settings['constraint']}; chosen "
                             f"{mitigation['chosen']['name']} ({mitigation['rule']})", 2096)
        for which in ("baseline", "chosen"):
            entry = mitigation[which]
            data = [_metric("accuracy", float(entry["accuracy"]), "test rows")]
            data += [_metric(metric, float(value), f"95% CI {entry['ci'][metric]}") for metric, value in
                     entry["metrics"].items() if _numeric(value)]
            groups.append(MetricGroup(name=fitted(f"bias mitigation, {which}: {entry['name']}"), metric_data=data))
    return EvaluationJob(name=fitted(name), evaluation_observation=observation, metric_groups=groups)
