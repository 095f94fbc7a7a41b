"""Run one evaluation end to end: dataset -> prompts -> engine -> scores -> run directory.

A run directory holds `records.jsonl` (one line per record: input, prompt, output, target,
category, scores, error), written as records complete, and `summary.json` (an `EvalOutput`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import itertools
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from fmeval.algorithms import get_algorithm
from fmeval.algorithms.base import GenerationAlgorithm, RecordResult, aggregate, aggregate_by_category
from fmeval.datasets.config import DataConfig
from fmeval.datasets.loader import LoadStats, Record, iter_records, sample
from fmeval.datasets.registry import DATASETS
from fmeval.datasets.sources import sha256_of
from fmeval.engine import Engine
from fmeval.errors import UserError
from fmeval.model_runners import ModelRunner, load_runner
from fmeval.prompt import PromptTemplate
from fmeval.results import EvalOutput
from fmeval.version import __version__

RECORDS_FILE = "records.jsonl"
SUMMARY_FILE = "summary.json"
DEFAULT_TEMPLATE = "$model_input"
DEFAULT_FIELDS = {"model_input": "model_input", "target_output": "target_output", "category": "category"}


def evaluate(
    *,
    evaluation: str | GenerationAlgorithm,
    dataset: str | os.PathLike[str] | DataConfig,
    model: str | ModelRunner | None = "smollm2",
    output: str | os.PathLike[str] | None = None,
    num_records: int | None = None,
    seed: int = 0,
    prompt_template: str | None = None,
    dataset_fields: Mapping[str, str] | None = None,
    dataset_mirror: str | os.PathLike[str] | None = None,
    skip_bad_records: bool = False,
    evaluation_options: Mapping[str, Any] | None = None,
    model_options: Mapping[str, Any] | None = None,
    n_bootstrap: int = 1000,
    chunk_size: int = 1024,
    overwrite: bool = False,
    progress: bool = True,
) -> EvalOutput:
    """Evaluate `model` on `dataset` with `evaluation` and write the run directory.

    `dataset` is a built-in name (`fmeval datasets list`), a DataConfig, or a file path whose
    field locations come from `dataset_fields` (JMESPath; defaults: fields named model_input,
    target_output, category). `num_records` draws a seeded uniform sample over the whole
    file; None evaluates every record. `model` is a spec for `load_runner`, a runner, or None
    when the dataset carries model outputs. Returns what `summary.json` holds.
    """
    started = time.perf_counter()
    if n_bootstrap < 0 or chunk_size < 1:
        raise UserError("n_bootstrap must be >= 0 and chunk_size >= 1")
    algorithm = (
        evaluation
        if isinstance(evaluation, GenerationAlgorithm)
        else get_algorithm(str(evaluation), **dict(evaluation_options or {}))
    )
    config, default_template = _data_config(dataset, dataset_fields, dataset_mirror)
    template = PromptTemplate(prompt_template or default_template or DEFAULT_TEMPLATE)
    if "context" in template.placeholders and config.context is None:
        raise UserError(f"the prompt template uses $context but dataset {config.dataset_name!r} has no context field")
    needs_model = config.model_output is None
    required = [f for f in algorithm.required_fields if needs_model or f != "model_input"]

    # Pass 1 reads the whole dataset before any model work: bad input fails fast, and it
    # yields the sample (or the record count, for the progress bar).
    stats = LoadStats()
    records = iter_records(config, required=required, skip_bad_records=skip_bad_records, stats=stats)
    sampled: list[Record] | None = None
    if num_records is not None:
        sampled = sample(records, num_records, seed)
    else:
        for _ in records:
            pass
    if stats.records == 0:
        raise UserError(f"dataset {config.dataset_name!r} has no usable records" + _skipped_note(stats))

    def stream() -> Iterable[Record]:
        if sampled is not None:
            return sampled
        return iter_records(config, required=required, skip_bad_records=skip_bad_records, stats=LoadStats())

    algorithm.prepare(stream())
    load_seconds = time.perf_counter() - started

    runner: ModelRunner | None = None
    if isinstance(model, str):
        runner = load_runner(model, **dict(model_options or {})) if needs_model else None
    else:
        runner = model
    if needs_model and runner is None:
        raise UserError("this dataset has no model_output field, so a model is needed")

    run_dir = _run_directory(output, algorithm.name, config.dataset_name, overwrite)
    total = len(sampled) if sampled is not None else stats.records
    kept: list[RecordResult] = []
    with _progress_bar(progress, total, f"{algorithm.name} on {config.dataset_name}") as advance:
        engine = Engine(runner, on_progress=advance)
        with open(run_dir / RECORDS_FILE, "w", encoding="utf-8") as sink:
            for chunk in _chunks(stream(), chunk_size):
                for record in chunk:
                    if record.model_input is not None:
                        record.prompt = template.render(
                            model_input=record.model_input, context=record.context, location=record.location
                        )
                results = algorithm.evaluate_batch(chunk, engine)
                advance(sum(1 for record in chunk if record.model_output is not None))
                sink.writelines(_record_line(result) + "\n" for result in results)
                sink.flush()
                kept.extend(_slim(result) for result in results)
    scoring_started = time.perf_counter()
    corpus = algorithm.corpus_metrics()
    dataset_scores = aggregate(kept, algorithm.score_names, corpus, n_bootstrap=n_bootstrap, seed=seed)
    category_scores = aggregate_by_category(kept, algorithm.score_names, corpus, n_bootstrap=n_bootstrap, seed=seed)
    summary = EvalOutput(
        eval_name=algorithm.name,
        dataset_name=config.dataset_name,
        dataset_scores=dataset_scores,
        category_scores=category_scores,
        prompt_template=template.template,
        output_path=str(run_dir),
        num_records=len(kept),
        num_errors=sum(1 for result in kept if result.error is not None),
        num_skipped_records=stats.skipped,
        model=runner.identity() if runner is not None else {"type": "dataset model_output"},
        dataset=_dataset_provenance(config, stats),
        config={
            "evaluation": algorithm.config(),
            "num_records": num_records,
            "skip_bad_records": skip_bad_records,
            "n_bootstrap": n_bootstrap,
        },
        seed=seed,
        fmeval_version=__version__,
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        timings={
            "load_dataset_s": round(load_seconds, 3),
            "model_s": round(engine.model_seconds, 3),
            "aggregate_s": round(time.perf_counter() - scoring_started, 3),
            "total_s": round(time.perf_counter() - started, 3),
        },
    )
    summary.to_json(run_dir / SUMMARY_FILE)
    return summary


def _data_config(
    dataset: str | os.PathLike[str] | DataConfig,
    fields: Mapping[str, str] | None,
    mirror: str | os.PathLike[str] | None,
) -> tuple[DataConfig, str | None]:
    if isinstance(dataset, DataConfig):
        return dataset, None
    name = str(dataset)
    if name in DATASETS and not fields:
        builtin = DATASETS[name]
        return builtin.data_config(mirror=mirror), builtin.prompt_template
    if not Path(name).is_file():
        raise UserError(
            f"dataset {name!r} is neither a built-in dataset ({', '.join(sorted(DATASETS))}) nor a file"
        )
    locations = dict(DEFAULT_FIELDS)
    locations.update(fields or {})
    mime_type = locations.pop("dataset_mime_type", None)
    record_filter = locations.pop("record_filter", None)
    return (
        DataConfig(
            dataset_name=Path(name).stem, dataset_uri=name, dataset_mime_type=mime_type,
            record_filter=record_filter, **locations,
        ),
        None,
    )


def _dataset_provenance(config: DataConfig, stats: LoadStats) -> dict[str, Any]:
    return {
        **config.to_dict(),
        "sha256": [sha256_of(Path(uri)) for uri in config.uris],
        "records_read": stats.records,
        "records_skipped": stats.skipped,
        "skipped_examples": stats.errors,
    }


def _run_directory(output: str | os.PathLike[str] | None, evaluation: str, dataset: str, overwrite: bool) -> Path:
    if output is None:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        output = Path("runs") / f"{evaluation}-{dataset}-{stamp}"
    run_dir = Path(output)
    if (run_dir / RECORDS_FILE).exists() and not overwrite:
        raise UserError(f"{run_dir} already holds a run; choose another output directory or pass overwrite")
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in (RECORDS_FILE, SUMMARY_FILE):
        (run_dir / name).unlink(missing_ok=True)
    return run_dir


def _chunks(records: Iterable[Record], size: int) -> Iterator[list[Record]]:
    iterator = iter(records)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _record_line(result: RecordResult) -> str:
    record = result.record
    line = {
        "record_id": record.record_id,
        "location": record.location,
        "category": record.category,
        "model_input": record.model_input,
        "prompt": record.prompt,
        "model_output": result.model_output,
        "target_output": record.target_output,
        "scores": result.scores,
        "error": result.error,
    }
    for name in ("context", "sent_more_input", "sent_less_input"):
        if getattr(record, name) is not None:
            line[name] = getattr(record, name)
    line.update(result.extras)
    return json.dumps(line, ensure_ascii=False)


def _slim(result: RecordResult) -> RecordResult:
    """Drop the texts aggregation does not need, so memory grows by little per record."""
    record = result.record
    slim = Record(record_id=record.record_id, location="", category=record.category, target_output=record.target_output)
    return dataclasses.replace(result, record=slim, model_output=None)


def _skipped_note(stats: LoadStats) -> str:
    if not stats.skipped:
        return ""
    return f" ({stats.skipped} skipped as bad; first: {stats.errors[0]})"


@contextlib.contextmanager
def _progress_bar(enabled: bool, total: int, description: str) -> Iterator[Callable[[int], None]]:
    if not enabled:
        yield lambda completed: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda completed: bar.advance(task, completed)
