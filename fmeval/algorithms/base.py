"""What every evaluation shares: per-record results, the request-then-score protocol, metric specs.

An evaluation says what each record needs from the model (`requests`) and how to score a
record once those answers are in (`score`). `evaluate` hands every record's requests to the
engine and yields results as records complete, so a run saves each record as soon as it is
done. The same path serves one sample (`evaluate_sample`) and a whole dataset.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable, Iterator, Sequence

from fmeval.datasets.record import Record
from fmeval.engine import Engine, Request
from fmeval.errors import UserError
from fmeval.model_runners.base import ModelOutput, ModelRunner, RequestKind
from fmeval.prompt import PromptTemplate
from fmeval.scores import EvalScore, MetricSpec

CorpusMetric = Callable[[Sequence["RecordResult"]], float]
NO_OUTPUT = "the model returned no output"


@dataclass
class RecordResult:
    """One record's outcome: its model output, its scores, and an error if it could not be scored."""

    record: Record
    model_output: str | None
    scores: dict[str, float | None]
    error: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    """Per-record values beyond scores (e.g. the label a classifier's output was read as)."""
    error_retryable: bool = False
    """The error may go away when the record is run again (network, throttling, 5xx, timeouts)."""


def answer_of(record: Record, answers: Sequence[ModelOutput]) -> tuple[str | None, str | None, bool]:
    """A record's output (its own, or the model's first answer), error, and whether the error is retryable."""
    if not answers:
        return record.model_output, None, False
    answer = answers[0]
    if answer.output is None:
        return None, answer.error or NO_OUTPUT, answer.retryable
    return answer.output, None, False


class Algorithm(ABC):
    """An evaluation: what it asks the engine for, and how it scores each record.

    Subclasses set `name`, `METRICS` (per-record metrics, then dataset-level ones; any can be
    switched off with `metrics`) and `required_fields`, and implement `requests` and `score`.
    Dataset-level metrics that are not means of per-record scores go in `corpus_metrics`.
    """

    name: ClassVar[str]
    METRICS: ClassVar[tuple[MetricSpec, ...]] = ()
    required_fields: ClassVar[tuple[str, ...]] = ("model_input", "target_output")
    request_kind: ClassVar[RequestKind] = "generate"
    """What this evaluation asks the model for: the run's model identity is the one for this kind."""
    needs_model_with_outputs: ClassVar[bool] = False
    """Whether a model is needed even when the dataset carries model outputs (e.g. for perturbed prompts)."""
    judges: Sequence[ModelRunner] = ()
    """Models that grade outputs, beyond the model under evaluation; the caller gives each an engine (`open`)."""

    def __init__(self, *, metrics: Sequence[str] | None = None):
        available = self.available_metrics
        chosen = tuple(available if metrics is None else metrics)
        unknown = [m for m in chosen if m not in available]
        if unknown or not chosen:
            raise UserError(
                f"{self.name}: metrics must be a non-empty subset of {', '.join(available)}"
                + (f"; unknown: {', '.join(unknown)}" if unknown else "")
            )
        self.metrics = chosen

    def catalog(self) -> dict[str, MetricSpec]:
        """Every metric this evaluation can compute, by name."""
        return {spec.name: spec for spec in self.METRICS}

    @property
    def available_metrics(self) -> tuple[str, ...]:
        return tuple(self.catalog())

    def specs(self) -> list[MetricSpec]:
        """The chosen metrics' specs, as written into each run's summary."""
        catalog = self.catalog()
        return [catalog[name] for name in self.metrics]

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

    def load(self) -> None:
        """Load the models the metrics need (e.g. BERTScore), so that a run fails before it starts."""

    def prepare(self, records: Iterable[Record]) -> None:
        """Look at the records before scoring (e.g. to learn the label set); default: nothing."""

    def open(self, engines: Sequence[Engine]) -> None:
        """Take one engine per judge (`judges`), which the caller built (a run: with the judges'
        engine options and its response store, so that a resumed run pays nothing twice) and
        closes. Default: nothing."""

    def calibrate(self, records: Sequence[Record], engine: Engine, template: PromptTemplate | None) -> None:
        """Learn what requests will be needed from the first records (e.g. whether the model is
        deterministic); called before the requests of each batch are made. Default: nothing."""

    @abstractmethod
    def requests(self, record: Record, template: PromptTemplate | None) -> list[Request]:
        """What `record` needs from the model (its rendered `prompt` is already set)."""

    @abstractmethod
    def score(self, records: Sequence[Record], answers: Sequence[Sequence[ModelOutput]]) -> list[RecordResult]:
        """Results for `records`, given the answers to each one's `requests`, in order."""

    def evaluate(
        self, records: Sequence[Record], engine: Engine, *, template: PromptTemplate | None = None
    ) -> Iterator[list[RecordResult]]:
        """Results for `records`, in batches as records complete (in completion order)."""
        self.calibrate(records, engine, template)
        groups = [self.requests(record, template) for record in records]
        for finished in engine.complete(groups):
            yield self.score([records[index] for index, _ in finished], [answers for _, answers in finished])


class GenerationAlgorithm(Algorithm):
    """An evaluation that generates one output per record and scores it against the record's targets.

    Subclasses implement `score_outputs`. `evaluate` serves a whole dataset (via the engine)
    and `evaluate_sample` a single record, through the same code.
    """

    @abstractmethod
    def score_outputs(self, records: Sequence[Record], outputs: Sequence[str]) -> list[tuple]:
        """Scores and extras of each output against its record, and optionally an error when it
        cannot be scored (e.g. a judge's unreadable answer); `outputs` are never None."""

    def requests(self, record: Record, template: PromptTemplate | None) -> list[Request]:
        return [] if record.model_output is not None else [Request(record.prompt)]  # type: ignore[arg-type]

    def score(self, records: Sequence[Record], answers: Sequence[Sequence[ModelOutput]]) -> list[RecordResult]:
        results, names = [], self.score_names
        for record, record_answers in zip(records, answers):
            output, error, retryable = answer_of(record, record_answers)
            results.append(RecordResult(record, output, dict.fromkeys(names), error, error_retryable=retryable))
        scorable = [result for result in results if result.model_output is not None]
        scored = self.score_outputs([r.record for r in scorable], [r.model_output for r in scorable])  # type: ignore[misc]
        for result, (scores, extras, *error) in zip(scorable, scored):
            result.scores, result.extras = {**result.scores, **scores}, extras
            result.error = error[0] if error else None
        return results

    def evaluate_sample(
        self,
        *,
        model_output: str,
        target_output: str | Sequence[str] | None = None,
        model_input: str = "",
        context: str | None = None,
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
            targets = [target for target in targets if target]
            if not targets:
                raise UserError(f"{self.name}: target_output has no non-empty target")
        record = Record(
            record_id="sample", location="<sample>", model_input=model_input, target_output=targets,
            model_output=model_output, context=context,
        )
        self.prepare([record])
        judge_engines = [Engine(judge) for judge in self.judges]
        try:
            self.open(judge_engines)
            with Engine(None) as engine:
                (result,) = [result for batch in self.evaluate([record], engine) for result in batch]
        finally:
            for judge_engine in judge_engines:
                judge_engine.close()
        if result.error is not None:
            raise UserError(f"{self.name}: {result.error}")
        return [EvalScore(name=name, value=value) for name, value in result.scores.items()]


def max_over_targets(score: Callable[[str, str], float], output: str, targets: Sequence[str]) -> float:
    return max(score(output, target) for target in targets)
