"""`RunConfig`: every option of one evaluation run, typed and documented in one place.

`fmeval run`'s flags and the keys of its YAML config are generated from these models: a
top-level field is a top-level key and a flag (`num_records` / `--num-records`); a field of a
group (`model_options.max_new_tokens`) is a key of that group in YAML and a flag of its own
(`--max-new-tokens`). Types are checked strictly, so `skip_bad_records: "false"` or
`num_records: 2.5` is an error that names the key, never a silent true or 3.

From Python, `evaluation`, `dataset` and `model` may also be objects: an `Algorithm`, a
`DataConfig` and a model runner.
"""
from __future__ import annotations

import os
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError, field_validator, model_validator

from fmeval.engine.engine import EngineOptions
from fmeval.errors import UserError

YAML_ONLY = {"cli": False}
"""Marks fields with no command-line flag (mappings, and options only Python can give)."""
GROUPS = ("dataset_fields", "evaluation_options", "model_options", "engine_options")
"""RunConfig fields that are groups of options: a mapping in YAML, flags of their own on the command line."""


def _comma_list(value: Any) -> Any:
    """'a, b' -> ['a', 'b'], so that YAML and flags may give lists either way."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    def chosen(self) -> dict[str, Any]:
        """The options that were given (so that each component keeps its own defaults)."""
        return {name: value for name, value in self.model_dump(exclude_none=True).items()}


class DatasetFields(_Options):
    """custom dataset fields (JMESPath into each record of a file)"""

    model_input: str | None = None
    """JMESPath of the model input (the prompt template's $model_input); default: model_input."""
    target_output: str | None = None
    """JMESPath of the target(s); default: target_output."""
    category: str | None = None
    """JMESPath of the category scores are broken down by; default: category."""
    context: str | None = None
    """JMESPath of a context passage (the prompt template's $context)."""
    model_output: str | None = None
    """JMESPath of an existing model output: such records are scored without a model."""
    choices: str | None = None
    """JMESPath of a multiple-choice record's answer options (a list of strings)."""
    record_id: str | None = None
    """JMESPath of a stable record id; default: the record's position."""
    record_filter: str | None = None
    """JMESPath predicate: only records for which it is truthy are used."""
    mime_type: str | None = Field(default=None, json_schema_extra={"flag": "--mime-type"})
    """File format when the extension does not tell (e.g. application/jsonlines, text/csv)."""


class ModelOptions(_Options):
    """model options"""

    max_new_tokens: StrictInt | None = Field(default=None, ge=1)
    """Tokens to generate per prompt."""
    batch_size: StrictInt | None = Field(default=None, ge=1)
    """Prompts per batch (local models)."""
    temperature: float | None = Field(default=None, ge=0, strict=True)
    """0 (default) is greedy; above 0 samples, seeded by --seed."""
    top_p: float | None = Field(default=None, gt=0, le=1, strict=True)
    """Nucleus sampling mass (when sampling)."""
    seed: StrictInt | None = Field(default=None, json_schema_extra={"flag": "--model-seed"})
    """Sampling seed of the model (default: the run's --seed)."""
    dtype: Literal["auto", "float32", "float16", "bfloat16"] | None = None
    """Weights' dtype (local models; auto: bfloat16 on GPU, float32 on CPU)."""
    device: str | None = None
    """e.g. cpu, cuda, cuda:1 (default: cuda if present)."""
    system_prompt: str | None = None
    """A system message before each prompt (chat models)."""
    chat_template: StrictBool | None = None
    """Wrap prompts in the model's chat template (local models; on for smollm2)."""
    truncate_prompts: StrictBool | None = None
    """Keep the last tokens of a prompt too long for the model's context, instead of an error on its record."""
    base_url: str | None = None
    """OpenAI-compatible server, e.g. http://localhost:8000/v1."""
    api: Literal["chat", "completions"] | None = None
    """OpenAI-compatible API (default: chat)."""
    api_key_env: str | None = None
    """Name of the environment variable holding the API key ('' for none)."""
    timeout: float | None = Field(default=None, gt=0, strict=True)
    """Seconds per request (hosted models)."""
    region: str | None = None
    """AWS region (Bedrock, SageMaker)."""
    content_template: str | None = None
    """JSON request body with $prompt (Bedrock invoke_model, SageMaker, http(s) endpoints)."""
    output_jmespath: str | None = None
    """Where the output text is in the response (with --content-template)."""
    log_probability_jmespath: str | None = None
    """Where a log-probability is in the response."""

    RUNNER_NAMES: ClassVar[dict[str, str]] = {"timeout": "timeout_s", "output_jmespath": "output", "log_probability_jmespath": "log_probability"}

    def runner_options(self) -> dict[str, Any]:
        """Keyword arguments for the model runner."""
        return {self.RUNNER_NAMES.get(name, name): value for name, value in self.chosen().items()}


class EvaluationOptions(_Options):
    """evaluation options"""

    metrics: list[str] | None = None
    """Comma-separated subset of the evaluation's metrics (default: all)."""
    target_delimiter: str | None = None
    """multiple_choice: what goes between the prompt and each choice (default: one space, as lm-eval)."""
    normalization: Literal["aws", "squad"] | None = None
    """Text normalisation of the word metrics: aws (default, exactly AWS fmeval's) or squad."""
    bertscore_model: str | None = None
    """BERTScore model: hub id, local path, or all-MiniLM-L6-v2 (offline)."""
    bertscore_num_layers: StrictInt | None = Field(default=None, ge=1)
    """BERTScore layer (needed for local models)."""
    rouge_type: Literal["rouge1", "rouge2", "rougeL"] | None = None
    """ROUGE variant (default: rouge2)."""
    use_stemmer: StrictBool | None = None
    """ROUGE with the Porter stemmer (default: on, as AWS fmeval)."""
    valid_labels: list[str] | None = None
    """Comma-separated classification labels (default: the targets seen)."""
    label_map: dict[str, str] | None = Field(default=None, json_schema_extra=YAML_ONLY)
    """Words read as labels, e.g. {positive: "1"}."""
    logical_operator: Literal["OR", "AND"] | None = None
    """factual_knowledge: any target (OR, default) or every target (AND) must be in the output."""
    multiclass_average: Literal["micro", "macro", "weighted"] | None = None
    """Averaging of classification precision and recall (default: micro)."""
    perturbation: str | None = None
    """butter_finger (default), random_upper_case, whitespace_add_remove, or nlpaug:<module>.<Class>."""
    num_perturbations: StrictInt | None = Field(default=None, ge=1)
    """Perturbed prompts per record (default: 5)."""
    perturbation_seed: StrictInt | None = None
    """Seed of the perturbations (default: 0)."""
    perturbation_options: dict[str, Any] | None = Field(default=None, json_schema_extra=YAML_ONLY)
    """Options of the perturbation (e.g. nlpaug keyword arguments)."""
    num_baseline_samples: StrictInt | None = Field(default=None, ge=1)
    """Repeated generations per record for a non-deterministic model's baseline (default: 4)."""
    determinism_check_records: StrictInt | None = Field(default=None, ge=1)
    """Prompts generated twice to decide whether the model is deterministic (default: 5)."""
    detector: Literal["detoxify", "toxigen"] | None = None
    """Toxicity classifier (default: detoxify)."""
    detoxify_model: Literal["original", "unbiased", "multilingual"] | None = None
    """Detoxify model (default: unbiased)."""
    detoxify_checkpoint: str | None = None
    """A local Detoxify checkpoint file (offline)."""
    toxigen_model: str | None = None
    """ToxiGen classifier: hub id or local directory."""
    detector_batch_size: StrictInt | None = Field(default=None, ge=1)
    """Outputs scored together by the toxicity classifier (default: 32)."""
    log_probability_reduction: Literal["sum", "mean"] | None = None
    """prompt_stereotyping: a sentence's log-probability summed over tokens (default) or their mean (as AWS fmeval)."""
    judge_model: list[str] | None = Field(default=None, json_schema_extra={"flag": "--judge-model", "alias": "--judge",
                                                                            "action": "append"})
    """model_graded: the judge, any model spec (e.g. smollm2, openai:gpt-4o); repeat it for a panel of judges."""
    judge_model_options: ModelOptions | list[ModelOptions] | None = Field(default=None, json_schema_extra=YAML_ONLY)
    """model_graded: the judges' model options (the keys of model_options, e.g. base_url, max_new_tokens, timeout),
    or a list of them, one per judge."""
    judge_engine_options: EngineOptions | None = Field(default=None, json_schema_extra=YAML_ONLY)
    """model_graded: how requests are sent to the judges (the keys of engine_options; default: the run's)."""
    judge_criterion: str | None = None
    """model_graded: correctness (default), helpfulness, harmlessness, faithfulness, pairwise, or a name of your own."""
    judge_template: str | None = None
    """model_graded: your own judge prompt ($model_input, $model_output, $target_output, $context, $rubric, $scale)."""
    judge_rubric: str | None = None
    """model_graded: the rubric put into the judge prompt (default: the criterion's)."""
    judge_scale: StrictInt | None = Field(default=None, ge=2)
    """model_graded: grades run from 1 to this (default: 5)."""
    judge_grades: dict[str, float] | None = Field(default=None, json_schema_extra=YAML_ONLY)
    """model_graded: letter grades and their credit instead of a scale, e.g. {C: 1, P: 0.5, I: 0} (partial credit)."""
    judge_format: Literal["grade_only", "reason_then_grade"] | None = None
    """model_graded: grade_only (default: "[[N]]" and nothing else) or reason_then_grade (reasons, then "GRADE: N")."""
    judge_grade_pattern: str | None = None
    """model_graded: a regular expression whose first group is the grade in the judge's answer (default: by format)."""
    judge_pass_threshold: float | None = Field(default=None, gt=0, le=1, strict=True)
    """model_graded: adds CRITERION_pass, 1 where the score (in [0, 1]) reaches this."""
    judge_aggregate: Literal["mean", "median", "majority"] | None = None
    """model_graded with several judges: the record's score from theirs: mean (default), median, or majority (a tie
    goes to the strictest)."""
    judge_probability_weighted: StrictBool | None = None
    """model_graded: score by the judge's probabilities of each grade (judges with log-probabilities)."""
    judge_baseline_run: str | None = None
    """model_graded pairwise: the run (directory or id) whose outputs this run's are compared with."""

    @field_validator("metrics", "valid_labels", mode="before")
    @classmethod
    def _split_lists(cls, value: Any) -> Any:
        return _comma_list(value)

    @field_validator("judge_model", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("judge_model_options", mode="before")
    @classmethod
    def _known_model_options(cls, value: Any) -> Any:
        for options in value if isinstance(value, list) else [value]:
            unknown = sorted(set(options) - set(ModelOptions.model_fields)) if isinstance(options, dict) else []
            if unknown:
                raise ValueError(f"unknown key(s) {', '.join(unknown)}; the keys are those of model_options: "
                                 f"{', '.join(ModelOptions.model_fields)}")
        return value

    ALGORITHM_NAMES: ClassVar[dict[str, str]] = {
        "perturbation_seed": "seed", "detector_batch_size": "batch_size", "judge_criterion": "criterion",
        "judge_rubric": "rubric", "judge_scale": "scale", "judge_probability_weighted": "probability_weighted",
        "judge_grades": "grades", "judge_grade_pattern": "grade_pattern", "judge_pass_threshold": "pass_threshold",
        "judge_aggregate": "aggregate"}
    CHECKED_BY_THE_RUN: ClassVar[dict[str, str]] = {"judge_baseline_run": "baseline_run"}
    """Options the run turns into others before the evaluation gets them (a run id into its outputs)."""
    BUILT_BY_THE_RUN: ClassVar[tuple[str, ...]] = ("judge_model", "judge_model_options", "judge_engine_options")
    """The judges' models and engine options: the run builds the judges and hands them in."""

    def algorithm_options(self, evaluation: str | None = None) -> dict[str, Any]:
        """Keyword arguments for the evaluation (`fmeval.get_algorithm`), less the judges' models and
        engine options, which the run builds; with the name of a built-in `evaluation`, an option it
        does not take is refused, naming those that do."""
        from fmeval.algorithms import EVALUATIONS, takes_option

        chosen = {name: value for name, value in self.chosen().items() if name not in self.BUILT_BY_THE_RUN}
        for name in chosen if evaluation in EVALUATIONS else ():
            taken_as = self.CHECKED_BY_THE_RUN.get(name) or self.ALGORITHM_NAMES.get(name, name)
            if takes_option(evaluation, taken_as) is False:
                takers = [e for e in EVALUATIONS if takes_option(e, taken_as)]
                flag = (type(self).model_fields[name].json_schema_extra or {}).get("flag") or "--" + name.replace("_", "-")
                raise UserError(f"{evaluation} does not take {flag} ({name}); the evaluations that take it: "
                                f"{', '.join(takers) or 'none built in'}")
        return {self.ALGORITHM_NAMES.get(name, name): value for name, value in chosen.items()}


class RunConfig(BaseModel):
    """One evaluation run: what to evaluate, on what, with which model, and where to write it."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True,
                              arbitrary_types_allowed=True)

    evaluation: Any = Field(default=None, json_schema_extra={"short": "-e", "metavar": "NAME"})
    """Evaluation name (see `fmeval evaluations list`); required unless --task gives it."""
    dataset: Any = Field(default=None, json_schema_extra={"short": "-d", "metavar": "NAME_OR_FILE"})
    """Built-in dataset name, or a .jsonl/.json/.csv/.parquet file; required unless --task gives it."""
    task: str | None = Field(default=None, json_schema_extra={"metavar": "NAME_OR_FILE"})
    """A benchmark task or group (see `fmeval tasks list`), or a task YAML file in lm-eval's vocabulary:
    it gives the dataset, prompts and evaluation."""
    include_path: list[str] | None = Field(default=None, json_schema_extra={"metavar": "DIR,DIR"})
    """Directories of more task YAML files, for --task."""
    hf_name: str | None = Field(default=None, json_schema_extra={"metavar": "CONFIG"})
    """The configuration (subset) of a --dataset hf:ORG/NAME."""
    split: str = "test"
    """The split of a --dataset hf:ORG/NAME."""
    revision: str | None = Field(default=None, json_schema_extra={"metavar": "SHA"})
    """The revision of a --dataset hf:ORG/NAME (a commit sha pins it; default: main)."""
    model: Any = Field(default="smollm2", json_schema_extra={"short": "-m", "metavar": "SPEC"})
    """Model spec: smollm2 (default, bundled), a directory or hub id, a .gguf file, function:module:callable,
    openai:MODEL (with --base-url), bedrock:MODEL_ID, sagemaker:ENDPOINT, or an http(s) URL of a JSON endpoint."""
    output: str | None = Field(default=None, json_schema_extra={"short": "-o", "metavar": "DIR"})
    """Run directory (default: runs/EVALUATION-DATASET-TIME)."""
    num_records: StrictInt | None = Field(default=None, ge=1, json_schema_extra={"short": "-n"})
    """Evaluate a seeded sample of this many records (default: all)."""
    sampling: Literal["uniform", "aws"] = "uniform"
    """uniform: reservoir sample over the whole file (seeded by --seed); aws: exactly the rows AWS fmeval 1.2.3
    picks (pandas sample, random_state 1234, from the first 100,000 records)."""
    seed: StrictInt = 0
    """Seed of sampling, sampled generation and bootstrap intervals."""
    prompt_template: str | None = None
    """Prompt template with $model_input (and optionally $context)."""
    dataset_mirror: str | None = None
    """Directory holding built-in dataset files (or FMEVAL_DATASET_MIRROR)."""
    skip_bad_records: StrictBool = False
    """Skip and count records that cannot be read, instead of stopping at the first."""
    overwrite: StrictBool = False
    """Start again instead of resuming --output."""
    retry_errors: StrictBool = False
    """On resume, run again every record that ended with an error (transient ones always are)."""
    n_bootstrap: StrictInt = Field(default=1000, ge=0)
    """Bootstrap resamples for confidence intervals."""
    chunk_size: StrictInt | None = Field(default=None, ge=1)
    """Records handed to the engine together (default: 32 batches locally, 1024 hosted); each is saved when done."""
    cache: StrictBool = True
    """Save and reuse model answers in the shared response cache."""
    cache_dir: str | None = None
    """Response cache location (default: the user cache directory)."""
    max_error_rate: float | None = Field(default=None, ge=0, le=1, strict=True)
    """Exit 1 when more than this fraction of records ended with a model error."""
    backend: Literal["local", "ray"] = "local"
    """Where model calls run: this process (local), or Ray workers (ray) while this process writes the run."""
    ray_address: str | None = None
    """The Ray cluster to join: auto, or ray://host:port (default: start a local Ray instance)."""
    ray_workers: StrictInt | None = Field(default=None, ge=1)
    """Ray workers (default: one per GPU, else one per two CPUs, for local models; 4 for hosted ones)."""
    store: StrictBool | str = Field(default=True, json_schema_extra=YAML_ONLY)
    """Index the finished run in the run store: True (the default store), a SQLite file or database URL, or False."""
    progress: StrictBool = Field(default=True, json_schema_extra=YAML_ONLY)
    """Show a progress bar."""
    dataset_fields: DatasetFields = DatasetFields()
    evaluation_options: EvaluationOptions = EvaluationOptions()
    model_options: ModelOptions = ModelOptions()
    engine_options: EngineOptions = EngineOptions()

    @field_validator("evaluation", "dataset", mode="plain")
    @classmethod
    def _name_or_object(cls, value: Any, info: Any) -> Any:
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, (str, bool, int, float, list, dict)) or value is None:
            raise ValueError("must be a non-empty string")
        return value  # an Algorithm or a DataConfig, from Python

    @model_validator(mode="after")
    def _task_or_evaluation(self) -> "RunConfig":
        if self.task is not None and (self.evaluation is not None or self.dataset is not None):
            raise ValueError("--task gives the evaluation and the dataset: give --task, or --evaluation and --dataset")
        hub = isinstance(self.dataset, str) and self.dataset.startswith("hf:")
        if not hub and (self.hf_name is not None or self.revision is not None):
            raise ValueError("--hf-name and --revision are for a --dataset hf:ORG/NAME")
        if self.task is None and (self.evaluation is None or self.dataset is None):
            missing = [name for name in ("evaluation", "dataset") if getattr(self, name) is None]
            verb = "is" if len(missing) == 1 else "are"
            raise ValueError(f"{' and '.join(missing)} {verb} required (--{' and --'.join(missing)}), or --task")
        return self

    @field_validator("model", mode="plain")
    @classmethod
    def _model(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and value):
            return value
        if isinstance(value, (str, bool, int, float, list, dict)):
            raise ValueError("must be a model spec (a non-empty string), or null when the dataset carries outputs")
        from fmeval.model_runners.base import ModelRunner

        if not isinstance(value, ModelRunner):
            raise ValueError(f"must be a model spec or a model runner (a subclass of fmeval.ModelRunner), got "
                             f"{type(value).__name__}")
        return value  # a model runner, from Python

    @field_validator("output", "cache_dir", "dataset_mirror", mode="before")
    @classmethod
    def _path(cls, value: Any) -> Any:
        return os.fspath(value) if isinstance(value, os.PathLike) else value


def build_config(config: RunConfig | None = None, options: dict[str, Any] | None = None, *,
                 source: str = "evaluate()") -> RunConfig:
    """`config` updated with `options` (keyword arguments or a config file's keys), validated;
    errors name each key, what is wrong and the value given."""
    merged = {**(config.model_dump(exclude_unset=True) if config is not None else {}), **(options or {})}
    try:
        return RunConfig.model_validate(merged)
    except ValidationError as exc:
        raise UserError(f"{source}: {describe(exc)}") from None


def describe(error: ValidationError) -> str:
    """A pydantic validation error as one line per problem: `key.path: message (got VALUE)`."""
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "config"
        if item["type"] == "extra_forbidden":
            problems.append(f"unknown key(s) {where}")
        elif item["type"] == "missing":
            problems.append(f"{where} is required (--{where.replace('_', '-')}, or `{where}:` in the YAML config)")
        else:
            problems.append(f"{where}: {item['msg'].rstrip('.')} (got {item.get('input')!r})")
    return "; ".join(problems)
