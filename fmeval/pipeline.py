"""Run one evaluation end to end: dataset -> prompts -> engine -> scores -> run directory.

A run directory holds:
- `run.json`: the run's configuration (evaluation, dataset checksum, prompt template, model
  identity, sampling), written first;
- `records.jsonl`: one line per record (input, prompt, output, target, category, scores,
  error), appended and flushed as records complete;
- `summary.json`: an `EvalOutput`, computed from `records.jsonl` at the end.

Running again into the same directory with the same configuration resumes: records already
written are kept and skipped, a line cut short by a crash is dropped, and each record ends
up in `records.jsonl` exactly once. A different configuration is refused.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import logging
import os
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from fmeval.algorithms import get_algorithm
from fmeval.algorithms.base import Algorithm, RecordResult, aggregate, aggregate_by_category
from fmeval.datasets.config import DataConfig
from fmeval.datasets.loader import LoadStats, iter_records, sample
from fmeval.datasets.record import Record
from fmeval.datasets.registry import DATASETS
from fmeval.datasets.sources import sha256_of
from fmeval.engine import Engine, EngineOptions
from fmeval.engine.cache import ResponseCache
from fmeval.errors import DataError, UserError
from fmeval.model_runners import ModelRunner, load_runner
from fmeval.prompt import PromptTemplate
from fmeval.results import EvalOutput
from fmeval.version import __version__

logger = logging.getLogger(__name__)

RECORDS_FILE = "records.jsonl"
SUMMARY_FILE = "summary.json"
MANIFEST_FILE = "run.json"
DEFAULT_TEMPLATE = "$model_input"
DEFAULT_FIELDS = {"model_input": "model_input", "target_output": "target_output", "category": "category"}
RECORD_FIELDS = ("record_id", "location", "category", "model_input", "prompt", "model_output", "target_output",
                 "scores", "error", "context", "sent_more_input", "sent_less_input")


def evaluate(
    *,
    evaluation: str | Algorithm,
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
    engine_options: EngineOptions | Mapping[str, Any] | None = None,
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    n_bootstrap: int = 1000,
    chunk_size: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    store: bool | str | os.PathLike[str] = True,
) -> EvalOutput:
    """Evaluate `model` on `dataset` with `evaluation` and write the run directory.

    `dataset` is a built-in name (`fmeval datasets list`), a DataConfig, or a file path whose
    field locations come from `dataset_fields` (JMESPath; defaults: fields named model_input,
    target_output, category). `num_records` draws a seeded uniform sample over the whole
    file; None evaluates every record. `model` is a spec for `load_runner`, a runner, or None
    when the dataset carries model outputs. Responses are cached (`cache_dir`, default the
    user cache) unless `cache=False`. `chunk_size` records are evaluated and saved together
    (default: 32 batches for local models, 256 for hosted ones). An existing run in `output` with the same
    configuration is resumed; `overwrite` starts it again. The finished run is indexed in the
    run store (`store`: True for the default store, a path, or False). Returns what `summary.json` holds.
    """
    started = time.perf_counter()
    if n_bootstrap < 0 or (chunk_size is not None and chunk_size < 1):
        raise UserError("n_bootstrap must be >= 0 and chunk_size >= 1")
    if not isinstance(engine_options, EngineOptions):
        engine_options = EngineOptions(**dict(engine_options or {}))
    algorithm = (
        evaluation
        if isinstance(evaluation, Algorithm)
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

    runner: ModelRunner | None = model if not isinstance(model, str) else None
    if isinstance(model, str) and needs_model:
        runner = load_runner(model, **dict(model_options or {}))
    if needs_model and runner is None:
        raise UserError("this dataset has no model_output field, so a model is needed")

    dataset_info = _dataset_provenance(config, stats)
    manifest = {
        "evaluation": algorithm.name,
        "evaluation_config": algorithm.config(),
        "dataset": {key: dataset_info[key] for key in ("dataset_name", "sha256", "record_filter",
                                                       "target_output_delimiter", *config.locations())},
        "prompt_template": template.template,
        "model": runner.identity() if runner is not None else None,
        "num_records": num_records,
        "seed": seed,
        "skip_bad_records": skip_bad_records,
    }
    run_dir = _run_directory(output, algorithm.name, config.dataset_name)
    done, run_id = _open_run(run_dir, manifest, overwrite)
    resumed = len(done)
    total = len(sampled) if sampled is not None else stats.records
    chunk_size = chunk_size or _auto_chunk_size(runner)
    response_cache = ResponseCache(cache_dir) if cache and runner is not None else None
    try:
        with _progress_bar(progress, total, f"{algorithm.name} on {config.dataset_name}") as advance, Engine(
            runner, options=engine_options, cache=response_cache, on_progress=advance, seed=seed
        ) as engine:
            advance(resumed)
            seen = set(done)
            with open(run_dir / RECORDS_FILE, "a", encoding="utf-8") as sink:
                for chunk in _chunks(_new_records(stream(), done, seen), chunk_size):
                    for record in chunk:
                        if record.model_input is not None:
                            record.prompt = template.render(
                                model_input=record.model_input, context=record.context, location=record.location
                            )
                    results = algorithm.evaluate_batch(chunk, engine, template=template)
                    advance(sum(1 for record in chunk if record.model_output is not None))
                    sink.writelines(_record_line(result) + "\n" for result in results)
                    sink.flush()
            engine_report = engine.report()
    finally:
        if response_cache is not None:
            response_cache.close()

    scoring_started = time.perf_counter()
    results = read_results(run_dir / RECORDS_FILE)
    corpus = algorithm.corpus_metrics()
    summary = EvalOutput(
        eval_name=algorithm.name,
        dataset_name=config.dataset_name,
        run_id=run_id,
        dataset_scores=aggregate(results, algorithm.score_names, corpus, n_bootstrap=n_bootstrap, seed=seed),
        category_scores=aggregate_by_category(results, algorithm.score_names, corpus, n_bootstrap=n_bootstrap, seed=seed),
        prompt_template=template.template,
        output_path=str(run_dir),
        num_records=len(results),
        num_errors=sum(1 for result in results if result.error is not None),
        num_skipped_records=stats.skipped,
        model=manifest["model"] or {"type": "dataset model_output"},
        dataset=dataset_info,
        config={
            "evaluation": algorithm.config(),
            "num_records": num_records,
            "skip_bad_records": skip_bad_records,
            "n_bootstrap": n_bootstrap,
            "engine": {k: v for k, v in vars(engine_options).items() if v is not None},
        },
        engine={**engine_report, "resumed_records": resumed},
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
    if store:
        _index(summary, run_id, None if store is True else store)
    return summary


def _index(summary: EvalOutput, run_id: str, path: str | os.PathLike[str] | None) -> None:
    """Record the run in the run store; a store that cannot be written costs a warning, not the run."""
    from fmeval.reports.store import RunStore

    try:
        with RunStore(path) as run_store:
            run_store.index(summary, run_id=run_id)
    except (OSError, sqlite3.Error) as exc:
        logger.warning("run %s finished but could not be indexed in the run store: %s", run_id, exc)


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


def _run_directory(output: str | os.PathLike[str] | None, evaluation: str, dataset: str) -> Path:
    if output is None:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        output = Path("runs") / f"{evaluation}-{dataset}-{stamp}"
    run_dir = Path(output)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _open_run(run_dir: Path, manifest: dict[str, Any], overwrite: bool) -> tuple[set[str], str]:
    """Start the run, or resume it: the ids of the records already written, and the run's id."""
    records_path, manifest_path = run_dir / RECORDS_FILE, run_dir / MANIFEST_FILE
    manifest = json.loads(json.dumps(manifest, default=str))  # as it reads back from disk
    done: set[str] = set()
    run_id = f"{dt.datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
    if overwrite:
        for name in (RECORDS_FILE, SUMMARY_FILE, MANIFEST_FILE):
            (run_dir / name).unlink(missing_ok=True)
    elif records_path.exists():
        if not manifest_path.exists():
            raise UserError(f"{run_dir} holds {RECORDS_FILE} but no {MANIFEST_FILE}; use another output or overwrite")
        saved = json.loads(manifest_path.read_text(encoding="utf-8"))
        previous, run_id = saved.get("config", {}), saved.get("run_id", run_id)
        if previous != manifest:
            changed = sorted(key for key in manifest.keys() | previous.keys() if manifest.get(key) != previous.get(key))
            raise UserError(
                f"{run_dir} holds a run with a different configuration (changed: {', '.join(changed)}); "
                f"use another output directory, or overwrite to start again"
            )
        done = {line["record_id"] for line in _read_lines(records_path, repair=True)}
    (run_dir / SUMMARY_FILE).unlink(missing_ok=True)
    staging = manifest_path.with_suffix(".tmp")
    staging.write_text(json.dumps({"run_id": run_id, "config": manifest}, indent=2) + "\n", encoding="utf-8")
    os.replace(staging, manifest_path)
    return done, run_id


def _read_lines(path: Path, *, repair: bool = False) -> Iterator[dict[str, Any]]:
    """The records of a run; with `repair`, first drop a last line cut short by a crash."""
    if repair:
        with open(path, "rb+") as handle:
            content = handle.read()
            if content and not content.endswith(b"\n"):
                handle.truncate(content.rfind(b"\n") + 1)
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}", f"not a record line: {exc.msg}") from exc


def read_results(path: str | os.PathLike[str]) -> list[RecordResult]:
    """The per-record results of a run directory's `records.jsonl`, as aggregation needs them."""
    results = []
    for line in _read_lines(Path(path)):
        record = Record(record_id=line["record_id"], location=line.get("location", ""),
                        category=line.get("category"), target_output=line.get("target_output"))
        extras = {key: value for key, value in line.items() if key not in RECORD_FIELDS}
        results.append(RecordResult(record, line.get("model_output"), line["scores"], line.get("error"), extras))
    return results


def _new_records(records: Iterable[Record], done: set[str], seen: set[str]) -> Iterator[Record]:
    """The records not yet in the run; a record id seen twice is an error (resume relies on ids)."""
    for record in records:
        if record.record_id in done:
            done.discard(record.record_id)  # each done id matches one record; a second one is a duplicate
            continue
        if record.record_id in seen:
            raise DataError(record.location, f"duplicate record_id {record.record_id!r}")
        seen.add(record.record_id)
        yield record


def _auto_chunk_size(runner: ModelRunner | None) -> int:
    """Records evaluated (and saved) together. Local batch runners get 32 batches' worth, so that
    length sorting has enough to choose from; request runners 256, saved sooner."""
    if runner is None or hasattr(runner, "agenerate"):
        return 256
    return max(256, 32 * runner.capabilities.batch_size)


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
