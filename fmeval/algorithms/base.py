"""What every evaluation shares: per-record results, the generate-then-score path, aggregation."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable, Sequence

import numpy as np

from fmeval.datasets.record import Record
from fmeval.engine import Engine
from fmeval.errors import UserError
from fmeval.prompt import PromptTemplate
from fmeval.results import CategoryScore, EvalScore
from fmeval.stats import bootstrap_mean_ci, bootstrap_statistic_ci

CorpusMetric = Callable[[Sequence["RecordResult"]], float]


@dataclass
class RecordResult:
    """One record's outcome: its model output, its scores, and an error if it could not be scored."""

    record: Record
    model_output: str | None
    scores: dict[str, float | None]
    error: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    """Per-record values beyond scores (e.g. the label a classifier's output was read as)."""


class Algorithm(ABC):
    """An evaluation: what it asks the engine for, and how it scores each record.

    Subclasses set `name`, `available_metrics` (per-record metrics, then corpus metrics; any
    can be switched off with `metrics`) and `required_fields`, and implement `evaluate_batch`.
    Dataset-level metrics that are not means of per-record scores go in `corpus_metrics`.
    """

    name: ClassVar[str]
    available_metrics: tuple[str, ...]
    required_fields: ClassVar[tuple[str, ...]] = ("model_input", "target_output")

    def __init__(self, *, metrics: Sequence[str] | None = None):
        chosen = tuple(self.available_metrics if metrics is None else metrics)
        unknown = [m for m in chosen if m not in self.available_metrics]
        if unknown or not chosen:
            raise UserError(
                f"{self.name}: metrics must be a non-empty subset of {', '.join(self.available_metrics)}"
                + (f"; unknown: {', '.join(unknown)}" if unknown else "")
            )
        self.metrics = chosen

    @property
    def score_names(self) -> tuple[str, ...]:
        """The chosen per-record metrics."""
        corpus = self.corpus_metrics()
        return tuple(m for m in self.metrics if m not in corpus)

    def corpus_metrics(self) -> dict[str, CorpusMetric]:
        """The chosen dataset-level metrics that are not means of per-record scores."""
        return {}

    def config(self) -> dict[str, Any]:
        """The options that change scores, for the run summary."""
        return {"metrics": list(self.metrics)}

    def prepare(self, records: Iterable[Record]) -> None:
        """Look at the records before scoring (e.g. to learn the label set); default: nothing."""

    @abstractmethod
    def evaluate_batch(
        self, records: Sequence[Record], engine: Engine, *, template: PromptTemplate | None = None
    ) -> list[RecordResult]:
        """Results for `records`, asking `engine` for what the model must produce. `template`
        renders a model input into a prompt (records already carry their rendered `prompt`)."""


class GenerationAlgorithm(Algorithm):
    """An evaluation that generates one output per record and scores it against the record's targets.

    Subclasses implement `score_outputs`. `evaluate_batch` serves a whole dataset (via the
    engine) and `evaluate_sample` a single record, through the same code.
    """

    @abstractmethod
    def score_outputs(self, records: Sequence[Record], outputs: Sequence[str]) -> list[tuple[dict[str, float], dict]]:
        """Scores (and extras) of each output against its record; `outputs` are never None."""

    def evaluate_batch(
        self, records: Sequence[Record], engine: Engine, *, template: PromptTemplate | None = None
    ) -> list[RecordResult]:
        outputs, errors = generate_missing_outputs(records, engine)
        scorable = [i for i, output in enumerate(outputs) if output is not None]
        scored = self.score_outputs([records[i] for i in scorable], [outputs[i] for i in scorable])  # type: ignore[misc]
        results = [
            RecordResult(record, outputs[i], dict.fromkeys(self.score_names), errors[i])
            for i, record in enumerate(records)
        ]
        for index, (scores, extras) in zip(scorable, scored):
            results[index].scores = scores
            results[index].extras = extras
        return results

    def evaluate_sample(
        self,
        *,
        model_output: str,
        target_output: str | Sequence[str] | None = None,
        model_input: str = "",
        delimiter: str | None = "<OR>",
    ) -> list[EvalScore]:
        """Scores of one model output against its target(s); `<OR>` separates alternatives."""
        if model_output is None:
            raise UserError(f"{self.name}: model_output must be a string, got None")
        targets: list[str] | None = None
        if "target_output" in self.required_fields:
            if target_output is None:
                raise UserError(f"{self.name}: target_output must be a string or a list of strings, got None")
            targets = [target_output] if isinstance(target_output, str) else list(target_output)
            if isinstance(target_output, str) and delimiter:
                targets = target_output.split(delimiter)
        record = Record(
            record_id="sample", location="<sample>", model_input=model_input, target_output=targets,
            model_output=model_output,
        )
        self.prepare([record])
        (result,) = self.evaluate_batch([record], Engine(None))
        return [EvalScore(name=name, value=value) for name, value in result.scores.items()]


def generate_missing_outputs(records: Sequence[Record], engine: Engine) -> tuple[list[str | None], list[str | None]]:
    """Each record's model output (its own, or generated for its prompt) and error, in order."""
    pending = [i for i, record in enumerate(records) if record.model_output is None]
    generated = engine.generate([records[i].prompt for i in pending]) if pending else []
    outputs: list[str | None] = [record.model_output for record in records]
    errors: list[str | None] = [None] * len(records)
    for index, result in zip(pending, generated):
        outputs[index], errors[index] = result.output, result.error
        if result.output is None and result.error is None:
            errors[index] = "the model returned no output"
    return outputs, errors


def max_over_targets(score: Callable[[str, str], float], output: str, targets: Sequence[str]) -> float:
    return max(score(output, target) for target in targets)


def aggregate(
    results: Sequence[RecordResult],
    score_names: Sequence[str],
    corpus_metrics: dict[str, CorpusMetric],
    *,
    n_bootstrap: int,
    seed: int,
) -> list[EvalScore]:
    """Mean of each per-record score with a bootstrap CI, then each corpus metric with one."""
    scores: list[EvalScore] = []
    for name in score_names:
        values = [r.scores.get(name) for r in results]
        values = [v for v in values if v is not None]
        if not values:
            scores.append(EvalScore(name=name, value=None, error="no record could be scored", count=0))
            continue
        ci = bootstrap_mean_ci(values, n_bootstrap=n_bootstrap, seed=seed)
        scores.append(_score(name, float(np.mean(values)), ci, len(values)))
    scored = [r for r in results if r.error is None]
    for name, metric in corpus_metrics.items():
        if not scored:
            scores.append(EvalScore(name=name, value=None, error="no record could be scored", count=0))
            continue
        ci = bootstrap_statistic_ci(
            lambda indices: metric([scored[i] for i in indices]), len(scored), n_bootstrap=n_bootstrap, seed=seed
        )
        scores.append(_score(name, metric(scored), ci, len(scored)))
    return scores


def aggregate_by_category(
    results: Sequence[RecordResult],
    score_names: Sequence[str],
    corpus_metrics: dict[str, CorpusMetric],
    *,
    n_bootstrap: int,
    seed: int,
) -> list[CategoryScore]:
    by_category: dict[str, list[RecordResult]] = {}
    for result in results:
        if result.record.category is not None:
            by_category.setdefault(result.record.category, []).append(result)
    return [
        CategoryScore(
            name=category,
            scores=aggregate(members, score_names, corpus_metrics, n_bootstrap=n_bootstrap, seed=seed),
        )
        for category, members in sorted(by_category.items())
    ]


def _score(name: str, value: float, ci: tuple[float, float] | None, count: int) -> EvalScore:
    return EvalScore(
        name=name, value=value, ci_lower=ci[0] if ci else None, ci_upper=ci[1] if ci else None, count=count
    )
