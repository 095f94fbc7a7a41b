"""Finding and reading finished runs: by run id (through the run store) or by output directory."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from fmeval.errors import UserError
from fmeval.results import EvalOutput
from fmeval.reports.store import RunStore, model_label


@dataclass
class LoadedRun:
    """A run's summary and the way to its records."""

    summary: EvalOutput
    directory: Path
    label: str

    @property
    def run_id(self) -> str:
        return self.summary.run_id or self.directory.name

    def records(self) -> Iterator[dict[str, Any]]:
        """The per-record lines of `records.jsonl`, streamed."""
        with open(self.directory / "records.jsonl", encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)

    def score_arrays(self, names: Sequence[str]) -> tuple[list[str], dict[str, np.ndarray]]:
        """Record ids and, per metric, the per-record scores (NaN where a record has none)."""
        ids: list[str] = []
        columns: dict[str, list[float]] = {name: [] for name in names}
        for line in self.records():
            ids.append(str(line["record_id"]))
            scores = line.get("scores") or {}
            for name in names:
                value = scores.get(name)
                columns[name].append(np.nan if value is None else float(value))
        return ids, {name: np.asarray(values, dtype=float) for name, values in columns.items()}


def load_run(spec: str | os.PathLike[str], *, store: str | os.PathLike[str] | None = None) -> LoadedRun:
    """A run from its output directory, or from its id in the run store."""
    directory = Path(spec)
    if not directory.is_dir():
        with RunStore(store) as run_store:
            stored = run_store.get(str(spec))
        directory = Path(stored.output_dir)
        if stored.missing:
            raise UserError(f"run {stored.run_id}: its output directory {directory} no longer holds a summary.json "
                            f"(deleted?); `fmeval runs delete {stored.run_id}` removes it from the store")
    summary_path = directory / "summary.json"
    if not summary_path.is_file():
        raise UserError(f"{directory} is not a finished run: it has no summary.json")
    try:
        summary = EvalOutput.from_json(summary_path)
    except (ValueError, TypeError, KeyError) as exc:
        raise UserError(f"{summary_path} is not an fmeval summary: {exc}") from exc
    return LoadedRun(summary=summary, directory=directory, label=model_label(summary.model))


def load_runs(specs: Sequence[str], *, store: str | os.PathLike[str] | None = None,
              labels: Sequence[str] | None = None) -> list[LoadedRun]:
    """Several runs, with labels that tell them apart (given ones, else model names), made unique
    among runs of the same evaluation and dataset, which a report shows side by side."""
    runs = [load_run(spec, store=store) for spec in specs]
    if labels:
        if len(labels) != len(runs):
            raise UserError(f"{len(labels)} labels for {len(runs)} runs")
        for run, label in zip(runs, labels):
            run.label = label
    counts: dict[tuple[str, str, str], int] = {}
    key = lambda run: (run.summary.eval_name, run.summary.dataset_name, run.label)  # noqa: E731
    for run in runs:
        counts[key(run)] = counts.get(key(run), 0) + 1
    for run in runs:
        if counts[key(run)] > 1:
            run.label = f"{run.label} [{run.run_id}]"
    return runs
