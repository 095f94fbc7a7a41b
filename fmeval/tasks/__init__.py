"""Benchmark tasks: YAML task files in lm-evaluation-harness's vocabulary, a shipped catalogue,
and the records a run evaluates.

`find_tasks(include_paths)` indexes task and group files (the shipped catalogue first, then each
`--include-path`); `resolve(name_or_file)` gives the tasks a name means (a group: its members);
`materialize(...)` writes the records one run reads, and says which evaluation scores them.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from fmeval.errors import UserError
from fmeval.tasks.config import TaskConfig, read_yaml, task_config

CATALOGUE = Path(__file__).resolve().parent / "catalogue"
EVALUATION_OF = {"multiple_choice": "multiple_choice", "loglikelihood_rolling": "perplexity"}
MC_METRICS = ("acc", "acc_norm", "acc_bytes", "mc2")
PERPLEXITY_METRICS = ("word_perplexity", "byte_perplexity", "bits_per_byte")


@dataclass
class Catalogue:
    """Tasks and groups by name, and files that could not be read, with why."""

    tasks: dict[str, TaskConfig] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)

    def members(self, name: str, seen: frozenset[str] = frozenset()) -> list[TaskConfig]:
        """A task, or a group's (or tag's) tasks, recursively."""
        if name in self.tasks:
            return [self.tasks[name]]
        if name in seen:
            raise UserError(f"task group {name!r} contains itself")
        tagged = [task for task in self.tasks.values()
                  if name in ([task.tag] if isinstance(task.tag, str) else task.tag or [])]
        if name in self.groups:
            return [member for child in self.groups[name] for member in self.members(child, seen | {name})]
        if tagged:
            return tagged
        raise UserError(f"unknown task {name!r}; see `fmeval tasks list`")


def _yaml_files(directory: Path) -> list[Path]:
    return sorted(path for path in directory.rglob("*") if path.suffix in (".yaml", ".yml") and path.is_file())


def add_file(catalogue: Catalogue, path: Path) -> TaskConfig | None:
    try:
        raw = read_yaml(path)
    except UserError as exc:
        catalogue.unreadable[str(path)] = str(exc)
        return None
    if "group" in raw and isinstance(raw.get("task"), list):
        catalogue.groups[str(raw["group"])] = [str(m) if not isinstance(m, dict) else str(m.get("task")) for m in raw["task"]]
        return None
    if not isinstance(raw.get("task"), str):
        catalogue.unreadable[str(path)] = f"{path}: no task name (task: NAME)"
        return None
    try:
        task = task_config(raw, path)
    except UserError as exc:
        catalogue.unreadable[str(path)] = str(exc)
        return None
    catalogue.tasks[task.task] = task
    return task


def find_tasks(include_paths: Sequence[str | Path] = ()) -> Catalogue:
    """Every task and group of the shipped catalogue and of `include_paths` (later ones win)."""
    catalogue = Catalogue()
    for directory in (CATALOGUE, *map(Path, include_paths)):
        if not directory.is_dir():
            raise UserError(f"--include-path {directory}: not a directory")
        for path in _yaml_files(directory):
            add_file(catalogue, path)
    return catalogue


def resolve(name_or_file: str, include_paths: Sequence[str | Path] = ()) -> tuple[str, list[TaskConfig]]:
    """The name and runnable tasks that `name_or_file` means; a task that cannot run is refused with why."""
    catalogue = find_tasks(include_paths)
    path = Path(name_or_file)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        for sibling in _yaml_files(path.parent):  # a group file names tasks beside it
            add_file(catalogue, sibling)
        raw = read_yaml(path)
        name = str(raw.get("group") or raw.get("task"))
    else:
        name = name_or_file
    tasks = catalogue.members(name)
    for task in tasks:
        problems = task.problems()
        if problems:
            raise UserError(f"task {task.task} ({task.source}) cannot run in fmeval: {'; '.join(problems)}")
    kinds = {task.output_type for task in tasks}
    if len(kinds) > 1:
        raise UserError(f"task group {name} mixes output types ({', '.join(sorted(kinds))}); run its tasks one by one")
    return name, tasks


def _evaluation_split(task: TaskConfig) -> str:
    split = task.test_split or task.validation_split
    if split is None:
        raise UserError(f"task {task.task} ({task.source}) has neither test_split nor validation_split")
    return split


def materialize(name: str, tasks: Sequence[TaskConfig], directory: Path) -> dict[str, Any]:
    """Write the records of `tasks` (one JSONL file, named by its content hash) and return the run
    options that evaluate them: evaluation, dataset fields, prompt template and evaluation options."""
    from fmeval.tasks.documents import load_split
    from fmeval.tasks.prompts import task_records

    records: list[dict[str, Any]] = []
    for task in tasks:
        split = _evaluation_split(task)
        docs = load_split(task, split)
        fewshot_docs: list[dict[str, Any]] = []
        fewshot_split = task.fewshot_split or task.training_split or task.validation_split
        if task.num_fewshot:
            if fewshot_split is None:
                raise UserError(f"task {task.task}: num_fewshot {task.num_fewshot} needs a fewshot_split")
            fewshot_docs = docs if fewshot_split == split else load_split(task, fewshot_split)
        records.extend(task_records(task, docs, fewshot_docs, same_split=fewshot_split == split))
    body = "".join(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n" for record in records)
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()[:16]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{digest}.jsonl"
    if not path.exists():
        staging = path.with_suffix(".tmp")
        staging.write_text(body, encoding="utf-8")
        staging.replace(path)
    first = tasks[0]
    evaluation = EVALUATION_OF[first.output_type]
    known = MC_METRICS if evaluation == "multiple_choice" else PERPLEXITY_METRICS
    metrics = [m for m in dict.fromkeys(m for task in tasks for m in task.metric_names()) if m in known]
    if metrics and evaluation == "perplexity":
        metrics.append("document_bits_per_byte")  # so that compare pairs runs document by document
    options: dict[str, Any] = {"metrics": metrics} if metrics else {}
    if evaluation == "multiple_choice":
        options["target_delimiter"] = first.target_delimiter
        fields = {"model_input": "input", "choices": "choices", "target_output": "targets"}
        template = "$model_input"
    else:
        fields = {"model_input": "units", "context": "text"}
        template = "$context"
    return {"evaluation": evaluation, "dataset": str(path), "prompt_template": template,
            "dataset_fields": {**fields, "category": "category", "record_id": "id"},
            "evaluation_options": options}
