"""Finished runs read back: by run id (through the run store) or by output directory."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from fmeval.errors import UserError
from fmeval.runs.directory import RunDirectory
from fmeval.runs.store import RunStore, model_label
from fmeval.runs.summary import EvalOutput
from fmeval.scores import MetricSpec


@dataclass
class LoadedRun:
    """A finished run: its summary, its records, and a label that tells it apart in reports."""

    summary: EvalOutput
    directory: RunDirectory
    label: str

    @property
    def run_id(self) -> str:
        return self.summary.run_id or self.directory.path.name

    def spec(self, metric: str) -> MetricSpec:
        return self.summary.spec(metric)

    def records(self) -> Iterator[dict[str, Any]]:
        """The per-record lines, streamed."""
        return self.directory.records()

    def score_arrays(self, names: Sequence[str]) -> tuple[list[str], dict[str, np.ndarray]]:
        """Record ids and, per metric, the per-record scores (NaN where a record has none)."""
        ids: list[str] = []
        columns: dict[str, list[float]] = {name: [] for name in names}
        for line in self.records():
            ids.append(str(line["record_id"]))
            for name in names:
                value = line["scores"].get(name)
                columns[name].append(np.nan if value is None else float(value))
        return ids, {name: np.asarray(values, dtype=float) for name, values in columns.items()}


def load_run(spec: str | os.PathLike[str], *, store: str | os.PathLike[str] | None = None) -> LoadedRun:
    """A run from its output directory, or from its id in the run store."""
    directory = RunDirectory(spec)
    if not directory.path.is_dir():
        with RunStore(store) as run_store:
            stored = run_store.get(str(spec))
        status = stored.status
        if status != "ok":
            raise UserError(f"run {stored.run_id} is {status}: its output directory {stored.output_dir} no longer "
                            f"holds it; `fmeval runs delete {stored.run_id}` removes it from the store")
        directory = RunDirectory(stored.output_dir)
    summary = directory.summary()
    if not directory.records_path.is_file():
        raise UserError(f"{directory.records_path} is missing: the run's records were deleted or moved")
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
