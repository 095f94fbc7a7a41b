"""Run one evaluation end to end: dataset -> prompts -> engine -> scores -> run directory.

Everything that can fail is checked before anything is written: the dataset (every record,
and record ids unique), the evaluation's own models (e.g. BERTScore), the model, the response
cache and the output directory. Then the run directory is locked, started or resumed, and
each record is saved the moment it completes; the summary is computed from the saved records.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import logging
import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from fmeval.algorithms import get_algorithm
from fmeval.algorithms.base import Algorithm, RecordResult
from fmeval.datasets.config import DataConfig
from fmeval.datasets.loader import LoadStats, iter_records, sample, sample_like_aws, unique_ids
from fmeval.datasets.record import Record
from fmeval.datasets.registry import resolve_dataset
from fmeval.datasets.sources import sha256_of
from fmeval.engine import Engine
from fmeval.engine.cache import ResponseCache
from fmeval.engine.engine import Backend, EngineOptions
from fmeval.errors import RunInterrupted, UserError
from fmeval.model_runners import ModelRunner, load_runner
from fmeval.prompt import PromptTemplate
from fmeval.runs.aggregate import aggregate, aggregate_by_category
from fmeval.runs.config import ModelOptions, RunConfig, build_config
from fmeval.runs.directory import RECORD_FIELDS, RunDirectory, RunWriter
from fmeval.runs.loaded import load_run
from fmeval.runs.summary import EvalOutput
from fmeval.version import __version__

logger = logging.getLogger(__name__)

DEFAULT_TEMPLATE = "$model_input"
HOSTED_CHUNK = 1024


def evaluate(config: RunConfig | None = None, /, **options: Any) -> EvalOutput:
    """Evaluate a model on a dataset and write the run directory; returns what `summary.json` holds.

    Give a `RunConfig`, keyword arguments named as its fields (`evaluation=`, `dataset=`,
    `model=`, `num_records=`, `model_options={...}` ...), or both (keywords win). An existing
    run in `output` with the same configuration is resumed; `overwrite=True` starts again. The
    finished run is indexed in the run store (`store`).
    """
    config = with_hub_dataset(with_task(build_config(config, options)))
    started = time.perf_counter()
    plan = plan_run(config)
    finished = None if config.overwrite else plan.directory.finished(plan.identity(), retry_errors=config.retry_errors)
    if finished is not None:  # a finished run is immutable: running it again gives its summary
        if plan.backend is not None:
            plan.backend.close()
        if config.store:
            _index(finished, None if config.store is True else config.store)
        return finished
    try:
        with _shared_cache(config, [plan.runner, *plan.algorithm.judges]) as shared_cache, plan.directory.writing(
            plan.identity(), overwrite=config.overwrite, retry_errors=config.retry_errors
        ) as run:
            try:
                summary = _execute(plan, run, shared_cache, started)
            except KeyboardInterrupt:
                raise RunInterrupted(
                    f"interrupted: {len(run.done) + run.written} records are saved in {plan.directory.path}; "
                    f"run the same command again to resume"
                ) from None
    finally:
        if plan.backend is not None:
            plan.backend.close()
    if config.store:
        _index(summary, None if config.store is True else config.store)
    return summary


def with_task(config: RunConfig) -> RunConfig:
    """A `--task` run as the evaluation, dataset (the task's records, written once) and prompt it
    means; the user's own evaluation options win over the task's."""
    if config.task is None:
        return config
    from fmeval.paths import cache_dir
    from fmeval.tasks import materialize, resolve

    name, tasks = resolve(config.task, config.include_path or ())
    options = materialize(name, tasks, cache_dir("tasks"))
    chosen = config.evaluation_options.chosen()
    options["evaluation_options"] = {**options["evaluation_options"], **chosen}
    merged = {key: value for key, value in config.model_dump(exclude_unset=True).items() if key != "task"}
    return build_config(None, {**merged, **options, "include_path": None})


def with_hub_dataset(config: RunConfig) -> RunConfig:
    """A `--dataset hf:ORG/NAME` run on that split's rows, written once to a file named by their content
    hash: sampling, `--dataset-fields`, the checksum in run.json and resume work as for any file (a
    revision that moved changes the rows, so resuming is refused)."""
    if not (isinstance(config.dataset, str) and config.dataset.startswith("hf:")):
        return config
    import hashlib
    import json

    from fmeval.paths import cache_dir
    from fmeval.tasks.documents import hub_split

    path = config.dataset.removeprefix("hf:")
    rows = hub_split(path, config.hf_name, config.split, revision=config.revision)
    body = "".join(json.dumps(row, ensure_ascii=False, sort_keys=True, default=str) + "\n" for row in rows)
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()[:16]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(filter(None, (path, config.hf_name, config.split, config.revision))))
    target = cache_dir("hub") / f"{name}-{digest}.jsonl"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_suffix(".tmp")
        staging.write_text(body, encoding="utf-8")
        staging.replace(target)
    return build_config(config, {"dataset": str(target), "hf_name": None, "revision": None})


@dataclass
class RunPlan:
    """A run, checked and ready: what to evaluate, on which records, with which model, and where."""

    config: RunConfig
    algorithm: Algorithm
    data: DataConfig
    template: PromptTemplate
    runner: ModelRunner | None
    directory: RunDirectory
    required: list[str]
    stats: LoadStats = field(default_factory=LoadStats)
    sampled: list[Record] | None = None
    sha256: list[str] = field(default_factory=list)
    backend: Backend | None = None
    load_seconds: float = 0.0

    def records(self) -> Iterable[Record]:
        """The records to evaluate, in dataset order (or the sample's order)."""
        if self.sampled is not None:
            return self.sampled
        return iter_records(self.data, required=self.required, skip_bad_records=self.config.skip_bad_records)

    @property
    def total(self) -> int:
        return len(self.sampled) if self.sampled is not None else self.stats.records

    def identity(self) -> dict[str, Any]:
        """Everything that changes the run's results; a resumed run must have the same."""
        uses_prompts = self.runner is not None and "model_input" in self.algorithm.required_fields
        return {
            "evaluation": self.algorithm.name,
            "evaluation_config": self.algorithm.config(),
            "dataset": {key: value for key, value in self.data.to_dict().items() if key != "dataset_uri"}
            | {"sha256": self.sha256},
            "prompt_template": self.template.template if uses_prompts else None,
            "model": self.runner.identity(self.algorithm.request_kind) if self.runner is not None else None,
            "num_records": self.config.num_records,
            "sampling": self.config.sampling if self.config.num_records else None,
            "seed": self.config.seed,
            "skip_bad_records": self.config.skip_bad_records,
        }


def plan_run(config: RunConfig) -> RunPlan:
    """Check everything a run needs, in the order that fails fastest; write nothing but the
    (empty) output directory."""
    started = time.perf_counter()
    algorithm = config.evaluation if isinstance(config.evaluation, Algorithm) else get_algorithm(
        config.evaluation, **_algorithm_options(config), **_judge_options(config))
    data, default_template = resolve_dataset(config.dataset, fields=config.dataset_fields.chosen() or None,
                                             mirror=config.dataset_mirror)
    template = PromptTemplate(config.prompt_template or default_template or DEFAULT_TEMPLATE)
    if "context" in template.placeholders and data.context is None:
        raise UserError(f"the prompt template uses $context but dataset {data.dataset_name!r} has no context field")
    has_outputs = data.model_output is not None
    required = [f for f in algorithm.required_fields if not has_outputs or f != "model_input"]
    directory = RunDirectory(config.output or _default_output(algorithm.name, data.dataset_name))
    for uri in data.uris:
        if directory.owns(uri):
            raise UserError(f"the dataset {uri} is one of the files of the run directory {directory.path}, which "
                            f"the run would rewrite; copy it elsewhere, or choose another --output")
    plan = RunPlan(config, algorithm, data, template, None, directory, required,
                   sha256=[sha256_of(Path(uri)) for uri in data.uris])

    # Pass 1 reads the whole dataset before any model work: bad input fails fast, and it
    # yields the sample (or the record count, for the progress bar).
    reading = {"required": required, "skip_bad_records": config.skip_bad_records}
    records = unique_ids(iter_records(data, stats=plan.stats, **reading), data, **reading)
    if config.num_records is None:
        for _ in records:
            pass
    elif config.sampling == "aws":
        plan.sampled = sample_like_aws(records, config.num_records)
    else:
        plan.sampled = sample(records, config.num_records, config.seed)
    if plan.stats.records == 0:
        raise UserError(f"dataset {data.dataset_name!r} has no usable records" + _skipped_note(plan.stats))
    algorithm.prepare(plan.records())
    algorithm.load()

    needs_model = not has_outputs or algorithm.needs_model_with_outputs
    if isinstance(config.model, str) and needs_model:
        plan.runner = load_runner(config.model, defaults=runner_defaults(config), **config.model_options.runner_options())
    elif config.model is not None and not isinstance(config.model, str):
        plan.runner = config.model
    if needs_model and plan.runner is None:
        raise UserError("this dataset has no model_output field, so a model is needed")
    directory.check_writable()
    if config.backend == "ray" and plan.runner is not None:
        plan.backend = _ray_backend(config, plan.runner)  # the workers load the model: the driver need not
    elif plan.runner is not None:
        plan.runner.load()
    for judge in algorithm.judges:
        judge.load()
    plan.load_seconds = time.perf_counter() - started
    return plan


def _algorithm_options(config: RunConfig) -> dict[str, Any]:
    """The evaluation's options; a baseline run (for pairwise judgements) becomes its outputs by record id."""
    options = config.evaluation_options.algorithm_options(
        config.evaluation if isinstance(config.evaluation, str) else None)
    baseline = options.pop("judge_baseline_run", None)
    if baseline is not None:
        run = load_run(baseline)
        options["baseline_outputs"] = {str(line["record_id"]): line["model_output"] for line in run.records()
                                       if line.get("model_output") is not None}
        options["baseline_run"] = run.run_id
    return options


def _judge_options(config: RunConfig) -> dict[str, Any]:
    """The judges, built here like the model under evaluation: each spec with its model options
    (one mapping for all, or one per judge) and the judges' engine concurrency."""
    options = config.evaluation_options
    if options.judge_model is None:
        return {}
    per_judge = options.judge_model_options or ModelOptions()
    if isinstance(per_judge, list) and len(per_judge) != len(options.judge_model):
        raise UserError(f"evaluation_options.judge_model_options: {len(per_judge)} mappings for "
                        f"{len(options.judge_model)} judges; give one per judge, or one mapping for all")
    per_judge = per_judge if isinstance(per_judge, list) else [per_judge] * len(options.judge_model)
    defaults = runner_defaults(config, judge_engine_options(config))
    return {"judge_model": [load_runner(spec, defaults=defaults, **model_options.runner_options())
                            for spec, model_options in zip(options.judge_model, per_judge)]}


def judge_engine_options(config: RunConfig) -> EngineOptions:
    """How requests are sent to the judges: their own options, else the run's."""
    return config.evaluation_options.judge_engine_options or config.engine_options


def runner_defaults(config: RunConfig, engine_options: EngineOptions | None = None) -> dict[str, Any]:
    """What a run gives every runner that takes it: its seed (for sampling) and the engine's
    concurrency (hosted runners size their connection pools from it)."""
    return {"seed": config.seed, "max_concurrency": (engine_options or config.engine_options).max_concurrency}


def _ray_backend(config: RunConfig, runner: ModelRunner) -> Backend:
    if not isinstance(config.model, str):
        raise UserError("the Ray backend rebuilds the model on each worker from its spec: give the model as a spec "
                        "(e.g. 'hf:DIR', 'openai:MODEL', 'function:module:callable'), not as an object")
    try:
        from fmeval.engine.ray_backend import RayBackend
    except ImportError as exc:
        raise UserError(f"the Ray backend needs Ray: pip install 'fmeval[ray]' ({exc})") from exc
    return RayBackend(spec=config.model, runner=runner, runner_options=config.model_options.runner_options(),
                      runner_defaults=runner_defaults(config),
                      options=config.engine_options, seed=config.seed, address=config.ray_address,
                      workers=config.ray_workers)


@contextlib.contextmanager
def _shared_cache(config: RunConfig, runners: list[ModelRunner | None]) -> Iterator[ResponseCache | None]:
    """The shared response cache, opened (and so checked) before the run directory is touched."""
    if not config.cache or not any(runner is not None and runner.capabilities.cacheable for runner in runners):
        yield None
        return
    try:
        cache = ResponseCache(config.cache_dir)
    except (OSError, sqlite3.Error) as exc:
        where = config.cache_dir or "the default cache directory"
        raise UserError(f"cannot open the response cache in {where}: {exc}; choose another --cache-dir, "
                        f"or --no-cache") from exc
    try:
        yield cache
    finally:
        cache.close()


def _execute(plan: RunPlan, run: RunWriter, shared_cache: ResponseCache | None, started: float) -> EvalOutput:
    config = plan.config
    # Answers the shared cache may not hold go to the run's own journal: a killed run never pays twice.
    runners = [runner for runner in (plan.runner, *plan.algorithm.judges) if runner is not None]
    journaled = [runner for runner in runners if shared_cache is None or not runner.capabilities.cacheable]
    journal = ResponseCache(plan.directory.journal_path) if journaled else None

    def store_of(runner: ModelRunner | None) -> ResponseCache | None:
        return shared_cache if runner is not None and not any(runner is other for other in journaled) else journal

    chunk_size = config.chunk_size or _auto_chunk_size(plan.runner)
    judge_engines = [Engine(judge, options=judge_engine_options(config), seed=config.seed, store=store_of(judge))
                     for judge in plan.algorithm.judges]
    try:
        plan.algorithm.open(judge_engines)
        with Engine(plan.runner, options=config.engine_options, store=store_of(plan.runner), seed=config.seed,
                    backend=plan.backend) as engine, _progress(config.progress, plan) as advance:
            advance(len(run.done))
            for chunk in _chunks((r for r in plan.records() if r.record_id not in run.done), chunk_size):
                for record in chunk:
                    if record.model_input is not None:
                        record.prompt = plan.template.render(
                            model_input=record.model_input, context=record.context, location=record.location)
                for results in plan.algorithm.evaluate(chunk, engine, template=plan.template):
                    run.append([_record_line(result) for result in results])
                    advance(len(results))
            engine_report, timings = engine.report(), {"load_s": plan.load_seconds, "model_s": engine.model_seconds}
    finally:
        for judge_engine in judge_engines:
            judge_engine.close()
        if journal is not None:
            journal.close()
    if judge_engines:  # the judges' requests, counted apart from the model's
        engine_report["judges"] = [{"judge": f"judge_{i}", **judge_engine.report()}
                                   for i, judge_engine in enumerate(judge_engines, start=1)]
        timings["judge_s"] = sum(judge_engine.model_seconds for judge_engine in judge_engines)
    summary = _summarize(plan, run, engine_report, timings, started)
    run.finish(summary)
    return summary


def _summarize(plan: RunPlan, run: RunWriter, engine_report: dict[str, Any], timings: dict[str, float],
               started: float) -> EvalOutput:
    config, algorithm = plan.config, plan.algorithm
    scoring_started = time.perf_counter()
    results = [_result(line) for line in plan.directory.records()]
    corpus = algorithm.corpus_metrics()
    scoring = {"n_bootstrap": config.n_bootstrap, "seed": config.seed}
    identity = plan.identity()
    return EvalOutput(
        eval_name=algorithm.name,
        dataset_name=plan.data.dataset_name,
        run_id=run.run_id,
        dataset_scores=aggregate(results, algorithm.score_names, corpus, **scoring),
        category_scores=aggregate_by_category(results, algorithm.score_names, corpus, **scoring),
        metrics=algorithm.specs(),
        prompt_template=identity["prompt_template"],
        output_path=str(plan.directory.path),
        num_records=len(results),
        num_errors=sum(1 for result in results if result.error is not None),
        num_skipped_records=plan.stats.skipped,
        model=identity["model"] or {"type": "dataset model_output"},
        dataset={**plan.data.to_dict(), "sha256": plan.sha256, "records_read": plan.stats.records,
                 "records_skipped": plan.stats.skipped, "skipped_examples": plan.stats.errors},
        config={"evaluation": algorithm.config(), "num_records": config.num_records,
                "sampling": identity["sampling"], "skip_bad_records": config.skip_bad_records,
                "n_bootstrap": config.n_bootstrap,
                "engine": config.engine_options.model_dump(exclude_defaults=True),
                **({"judge_engine": judge_engine_options(config).model_dump(exclude_defaults=True)}
                   if algorithm.judges else {})},
        engine={**engine_report, "resumed_records": len(run.done), "retried_records": run.retried},
        seed=config.seed,
        fmeval_version=__version__,
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        timings={**{name: round(value, 3) for name, value in timings.items()},
                 "aggregate_s": round(time.perf_counter() - scoring_started, 3),
                 "total_s": round(time.perf_counter() - started, 3)},
    )


def _record_line(result: RecordResult) -> dict[str, Any]:
    record = result.record
    line: dict[str, Any] = {
        "record_id": record.record_id, "location": record.location, "category": record.category,
        "model_input": record.model_input, "prompt": record.prompt, "model_output": result.model_output,
        "target_output": record.target_output, "scores": result.scores, "error": result.error,
    }
    if result.error is not None:
        line["error_retryable"] = result.error_retryable
    for name in ("context", "sent_more_input", "sent_less_input", "choices"):
        if getattr(record, name) is not None:
            line[name] = getattr(record, name)
    line.update(result.extras)
    return line


def _result(line: dict[str, Any]) -> RecordResult:
    """A saved record line, as aggregation needs it."""
    record = Record(record_id=line["record_id"], location=line.get("location", ""), category=line.get("category"),
                    target_output=line.get("target_output"))
    extras = {key: value for key, value in line.items() if key not in RECORD_FIELDS and key != "schema_version"}
    return RecordResult(record, line.get("model_output"), line["scores"], line.get("error"), extras)


def _index(summary: EvalOutput, store: str | None) -> None:
    """Record the run in the run store; a store that cannot be written costs a warning, not the run."""
    from sqlalchemy.exc import SQLAlchemyError

    from fmeval.runs.store import RunStore

    try:
        with RunStore(store) as run_store:
            run_store.index(summary, run_id=summary.run_id)  # type: ignore[arg-type]
    except (UserError, OSError, SQLAlchemyError) as exc:
        logger.warning("run %s finished but could not be indexed in the run store: %s", summary.run_id, exc)


def _default_output(evaluation: str, dataset: str) -> Path:
    """runs/EVALUATION-DATASET-TIME, with names cut to safe characters: a dataset called '../x'
    must not put the run outside runs/."""
    def safe(name: str) -> str:
        return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "unnamed"

    return Path("runs") / f"{safe(evaluation)}-{safe(dataset)}-{dt.datetime.now():%Y%m%d-%H%M%S}"


def _auto_chunk_size(runner: ModelRunner | None) -> int:
    """Records handed to the engine together. Local batch runners get 32 batches' worth, so that
    length sorting has enough to choose from; hosted runners enough to keep requests flowing."""
    if runner is None or runner.capabilities.single_requests:
        return HOSTED_CHUNK
    return max(256, 32 * runner.capabilities.batch_size)


def _chunks(records: Iterable[Record], size: int) -> Iterator[list[Record]]:
    iterator = iter(records)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _skipped_note(stats: LoadStats) -> str:
    if not stats.skipped:
        return ""
    return f" ({stats.skipped} skipped as bad; first: {stats.errors[0]})"


@contextlib.contextmanager
def _progress(enabled: bool, plan: RunPlan) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (stdout stays for results), advanced as records are saved."""
    if not enabled:
        yield lambda completed: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(f"{plan.algorithm.name} on {plan.data.dataset_name}", total=plan.total)
        yield lambda completed: bar.advance(task, completed)
