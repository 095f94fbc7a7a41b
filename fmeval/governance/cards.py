"""Model cards: SageMaker's model card content, section by section and field by field (the JSON
that `create_model_card`'s `Content` takes, schema 0.1: the snake_case names of the
AWS::SageMaker::ModelCard Content reference), so cards export to it and import from it.

Every model forbids unknown fields: a misspelt field is an error that names it, never dropped.
`from_run` and `from_analysis` fill a card's evaluation details from fmeval's runs and analyses.
"""
from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

RiskRating = Literal["High", "Medium", "Low", "Unknown"]
MetricType = Literal["number", "string", "boolean", "linear_graph", "bar_chart", "matrix"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class InferenceEnvironment(Section):
    container_image: list[str] = Field(default_factory=list, max_length=15)


class ModelOverview(Section):
    model_description: str | None = Field(None, max_length=1024)
    model_id: str | None = None
    model_name: str | None = None
    model_version: float | None = None
    problem_type: str | None = None
    algorithm_type: str | None = None
    model_creator: str | None = None
    model_owner: str | None = None
    model_artifact: list[str] = Field(default_factory=list, max_length=15)
    inference_environment: InferenceEnvironment | None = None


class IntendedUses(Section):
    purpose_of_model: str | None = Field(None, max_length=2048)
    intended_uses: str | None = Field(None, max_length=2048)
    factors_affecting_model_efficiency: str | None = Field(None, max_length=2048)
    risk_rating: RiskRating | None = None
    explanations_for_risk_rating: str | None = Field(None, max_length=2048)


class BusinessDetails(Section):
    business_problem: str | None = Field(None, max_length=2048)
    business_stakeholders: str | None = Field(None, max_length=2048)
    line_of_business: str | None = Field(None, max_length=2048)


class Function(Section):
    function: Literal["Maximize", "Minimize"] | None = None
    facet: str | None = None
    condition: str | None = None


class ObjectiveFunction(Section):
    function: Function | None = None
    notes: str | None = Field(None, max_length=1024)


class TrainingMetric(Section):
    name: str
    value: float
    notes: str | None = Field(None, max_length=1024)


class HyperParameter(Section):
    name: str
    value: str


class TrainingEnvironment(Section):
    container_image: list[str] = Field(default_factory=list, max_length=15)


class TrainingJobDetails(Section):
    training_arn: str | None = None
    training_datasets: list[str] = Field(default_factory=list, max_length=15)
    training_environment: TrainingEnvironment | None = None
    training_metrics: list[TrainingMetric] = Field(default_factory=list, max_length=50)
    user_provided_training_metrics: list[TrainingMetric] = Field(default_factory=list, max_length=50)
    hyper_parameters: list[HyperParameter] = Field(default_factory=list, max_length=100)
    user_provided_hyper_parameters: list[HyperParameter] = Field(default_factory=list, max_length=100)


class TrainingDetails(Section):
    objective_function: ObjectiveFunction | None = None
    training_observations: str | None = Field(None, max_length=1024)
    training_job_details: TrainingJobDetails | None = None


class Metric(Section):
    name: str
    type: MetricType
    value: Union[float, bool, str, list[Any]]
    notes: str | None = Field(None, max_length=1024)
    x_axis_name: Union[str, list[str], None] = None
    y_axis_name: Union[str, list[str], None] = None


class MetricGroup(Section):
    name: str
    metric_data: list[Metric] = Field(default_factory=list)


class EvaluationJob(Section):
    name: str
    evaluation_observation: str | None = Field(None, max_length=2096)
    evaluation_job_arn: str | None = None
    datasets: list[str] = Field(default_factory=list, max_length=10)
    metadata: dict[str, str] = Field(default_factory=dict)
    metric_groups: list[MetricGroup] = Field(default_factory=list)


class AdditionalInformation(Section):
    ethical_considerations: str | None = Field(None, max_length=2048)
    caveats_and_recommendations: str | None = Field(None, max_length=2048)
    custom_details: dict[str, str] = Field(default_factory=dict)


class ModelCard(Section):
    """A model card's content; `ModelCard.model_validate(json)` imports SageMaker's, and
    `card.to_sagemaker()` exports it."""

    model_overview: ModelOverview = Field(default_factory=ModelOverview)
    intended_uses: IntendedUses = Field(default_factory=IntendedUses)
    business_details: BusinessDetails = Field(default_factory=BusinessDetails)
    training_details: TrainingDetails = Field(default_factory=TrainingDetails)
    evaluation_details: list[EvaluationJob] = Field(default_factory=list)
    additional_information: AdditionalInformation = Field(default_factory=AdditionalInformation)

    def to_sagemaker(self) -> dict[str, Any]:
        """The content as SageMaker takes it: empty fields left out."""
        return self.model_dump(mode="json", exclude_none=True, exclude_defaults=True)

    def add_evaluation(self, job: EvaluationJob) -> None:
        """Add an evaluation job, replacing one of the same name (a run added twice counts once)."""
        self.evaluation_details = [j for j in self.evaluation_details if j.name != job.name] + [job]


def validation_errors(exc: Any) -> list[str]:
    """A pydantic ValidationError as one line per field: `section.field: what is wrong`."""
    return [f"{'.'.join(str(part) for part in error['loc']) or '(card)'}: {error['msg']}" for error in exc.errors()]


# -- filled from fmeval's own results ----------------------------------------------------------------------
def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def from_run(run: Any) -> tuple[dict[str, Any], EvaluationJob]:
    """The model overview fields and the evaluation job a finished run (`runs.LoadedRun`) gives."""
    summary = run.summary
    model = summary.model or {}
    overview = {"model_name": run.label, "model_id": str(model.get("model") or model.get("path") or run.label),
                "inference_environment": {"container_image": [f"fmeval runner: {model.get('type', 'unknown')}"]}}
    shas = summary.dataset.get("sha256") or []
    datasets = [f"{summary.dataset_name} (sha256 {', '.join(shas) if isinstance(shas, list) else shas})"
                if shas else summary.dataset_name]

    def metric(score: Any) -> Metric:
        notes = f"95% CI [{score.ci_lower:.4f}, {score.ci_upper:.4f}]" if _number(score.ci_lower) else "no CI"
        return Metric(name=score.name, type="number", value=float(score.value),
                      notes=f"{notes}; n={score.count}" if score.count is not None else notes)

    groups = [MetricGroup(name="dataset", metric_data=[metric(s) for s in summary.dataset_scores if _number(s.value)])]
    groups += [MetricGroup(name=f"category: {category.name}",
                           metric_data=[metric(s) for s in category.scores if _number(s.value)])
               for category in summary.category_scores]
    job = EvaluationJob(
        name=f"{summary.eval_name} on {summary.dataset_name} (run {run.run_id})",
        evaluation_observation=f"{summary.num_records} records, {summary.num_errors} errors; fmeval "
                               f"{summary.fmeval_version}, seed {summary.seed}",
        datasets=datasets,
        metadata={"fmeval_run_id": run.run_id, "evaluation": summary.eval_name, "created_at": str(summary.created_at),
                  "output_path": str(run.directory.path)},
        metric_groups=groups)
    return overview, job


def from_analysis(analysis: dict[str, Any], *, name: str) -> EvaluationJob:
    """The evaluation job of an `fmeval analyze` result (analysis.json): bias metrics per facet
    group, and global SHAP values per label."""
    groups = []
    for stage in ("pre_training_bias_metrics", "post_training_bias_metrics"):
        for facet, facet_groups in (analysis.get(stage) or {}).get("facets", {}).items():
            for group in facet_groups:
                data = [Metric(name=m["name"], type="number", value=float(m["value"]), notes=m.get("description"))
                        for m in group["metrics"] if _number(m.get("value"))]
                groups.append(MetricGroup(name=f"{stage.split('_')[0]}-training bias: {facet}={group['value_or_threshold']}",
                                          metric_data=data))
    for label, entry in ((analysis.get("explanations") or {}).get("kernel_shap") or {}).items():
        values = entry.get("global_shap_values") or {}
        groups.append(MetricGroup(name=f"global SHAP values: {label}", metric_data=[
            Metric(name="global_shap_values", type="bar_chart", value=[float(v) for v in values.values()],
                   x_axis_name=list(values), y_axis_name="mean |SHAP|")]))
    return EvaluationJob(name=name, evaluation_observation="fmeval analyze (SageMaker Clarify's configuration)",
                         metric_groups=groups)
