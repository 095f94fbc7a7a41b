"""Task files: lm-evaluation-harness's YAML vocabulary, read into a typed `TaskConfig`.

A task file names a dataset, Jinja2 templates over each document (`doc_to_text`,
`doc_to_choice`, `doc_to_target`), delimiters, few-shot settings and metrics. `include:` merges
another file under this one (its keys lose), as in lm-eval. Keys that need Python code
(`!function`) or features fmeval does not implement make the task unrunnable, with the reason.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fmeval.errors import UserError

OUTPUT_TYPES = ("multiple_choice", "loglikelihood_rolling")
IGNORED_KEYS = ("should_decontaminate", "doc_to_decontamination_query", "metadata", "group", "group_alias")
"""lm-eval keys that do not change scores."""
ERR_FUNCTION = "{key} is Python code (!function {name}), which fmeval does not run"


class FunctionTag(str):
    """A `!function module.name` value: code that a task file points at."""


def _task_loader() -> Any:
    """PyYAML's safe loader, reading `!function NAME` as a `FunctionTag` (never importing it)."""
    import yaml

    class TaskLoader(yaml.SafeLoader):
        pass

    TaskLoader.add_constructor("!function", lambda loader, node: FunctionTag(loader.construct_scalar(node)))
    return TaskLoader


class FewshotConfig(BaseModel):
    """How few-shot examples are drawn."""

    model_config = ConfigDict(extra="ignore", use_attribute_docstrings=True)

    sampler: Literal["default", "first_n"] = "default"
    """default: a seeded random sample (seed 1234, as lm-eval); first_n: the split's first documents."""


class TaskConfig(BaseModel):
    """One task: lm-eval's keys that fmeval understands (others are refused by `problems`)."""

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True)

    task: str
    """The task's name."""
    task_alias: str | None = None
    """Its name in reports (e.g. an MMLU subject); scores of a group are broken down by it."""
    tag: str | list[str] | None = None
    """Tags that group files may name instead of listing tasks."""
    dataset: str | None = None
    """fmeval: a built-in dataset name, a local file (.jsonl, .json, .csv, .parquet), or hf:PATH."""
    dataset_path: str | None = None
    """lm-eval: a Hub dataset id, a local directory in the Hub's layout, or a builder (json, csv, parquet)."""
    dataset_name: str | None = None
    """The Hub dataset's configuration (subset)."""
    dataset_kwargs: dict[str, Any] | None = None
    """More arguments of `datasets.load_dataset` (e.g. data_files, revision)."""
    revision: str | None = None
    """The Hub dataset's revision (a commit sha pins it)."""
    training_split: str | None = None
    """The split with training documents (a few-shot source)."""
    validation_split: str | None = None
    """The validation split (evaluated when there is no test split)."""
    test_split: str | None = None
    """The split evaluated."""
    fewshot_split: str | None = None
    """Where few-shot examples come from (default: training, else validation split)."""
    output_type: str = "multiple_choice"
    """multiple_choice or loglikelihood_rolling (generate_until is not implemented yet)."""
    doc_to_text: Any = None
    """A Jinja2 template, a field name, or an index into the choices."""
    doc_to_target: Any = None
    """A Jinja2 template, a field name, or a choice index; digits render to an index."""
    doc_to_choice: Any = None
    """A list of strings, a field name, or a Jinja2 template that renders a list."""
    target_delimiter: str = " "
    """Between the text and each choice (and each few-shot example's answer)."""
    fewshot_delimiter: str = "\n\n"
    """After each few-shot example."""
    num_fewshot: int = Field(default=0, ge=0)
    """Few-shot examples before each document."""
    fewshot_config: FewshotConfig = FewshotConfig()
    """How few-shot examples are drawn."""
    description: str = ""
    """Text before the few-shot examples (a Jinja2 template)."""
    metric_list: list[dict[str, Any]] = []
    """The metrics, as `- metric: NAME` entries."""
    units_text: str | None = None
    """fmeval (perplexity): a template for the text whose words and bytes are counted, when it is not the
    scored text (lm-eval's WikiText counts the page before detokenising it)."""
    source: str = ""
    """The file the task came from."""

    def problems(self) -> list[str]:
        """Why this task cannot run in fmeval; empty when it can."""
        found = []
        for key, value in {**self.model_dump(exclude={"fewshot_config"}), **(self.model_extra or {})}.items():
            if isinstance(value, FunctionTag):
                found.append(ERR_FUNCTION.format(key=key, name=str(value)))
        if self.output_type not in OUTPUT_TYPES:
            found.append(f"output_type {self.output_type} is not implemented (only {', '.join(OUTPUT_TYPES)})")
        for key, value in (self.model_extra or {}).items():
            if key not in IGNORED_KEYS and not isinstance(value, FunctionTag):
                found.append(f"key {key!r} is not implemented")
        if self.dataset is None and self.dataset_path is None:
            found.append("no dataset (dataset or dataset_path)")
        if self.output_type == "multiple_choice" and self.doc_to_choice is None:
            found.append("a multiple_choice task needs doc_to_choice")
        if not isinstance(self.doc_to_text, (str, type(None))) and self.output_type == "multiple_choice":
            found.append("doc_to_text giving a choice index (several contexts, one continuation) is not implemented")
        return found

    def metric_names(self) -> list[str]:
        return [entry["metric"] for entry in self.metric_list if isinstance(entry.get("metric"), str)]


def read_yaml(path: Path) -> dict[str, Any]:
    """A task or group file's mapping, `include:` files merged under it (paths relative to the file)."""
    import yaml

    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_task_loader())  # noqa: S506 (a SafeLoader)
    except OSError as exc:
        raise UserError(f"cannot read task file {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise UserError(f"{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from exc
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a task file must be a mapping of keys to values")
    include = raw.pop("include", None)
    if include is not None:
        base = read_yaml(path.parent / str(include))
        base.pop("group", None)
        raw = {**base, **raw}
    return raw


def task_config(raw: dict[str, Any], source: Path) -> TaskConfig:
    try:
        return TaskConfig(**{**raw, "source": str(source)})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise UserError(f"{source}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from exc
