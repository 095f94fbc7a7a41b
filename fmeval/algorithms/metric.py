"""Registered metrics (`@register_metric`), and the evaluation that scores outputs with them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Sequence

from fmeval.algorithms.base import GenerationAlgorithm
from fmeval.datasets.record import Record
from fmeval.errors import UserError
from fmeval.scores import MetricSpec

ERR_METRIC_VALUE = "metric {name} returned {value!r}; it must return a number (or None when it cannot score)"


@dataclass(frozen=True)
class Metric:
    """A metric function and what its numbers mean."""

    spec: MetricSpec
    fn: Callable[[str, list[str]], Any]

    def __call__(self, model_output: str, target_output: list[str]) -> float | None:
        value = self.fn(model_output, target_output)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(ERR_METRIC_VALUE.format(name=self.spec.name, value=value))
        return float(value)


class MetricEvaluation(GenerationAlgorithm):
    """Generates one output per record and scores it with registered metrics."""

    name: ClassVar[str] = "metrics"

    def __init__(self, *, metrics: Sequence[str]):
        from fmeval.algorithms import METRICS

        unknown = [m for m in metrics if m not in METRICS]
        if unknown or not metrics:
            raise UserError(f"unknown metric(s) {', '.join(unknown) or '(none)'}; registered: "
                            f"{', '.join(METRICS) or '(none)'}")
        self._metrics = {name: METRICS[name] for name in metrics}
        self.name = metrics[0] if len(metrics) == 1 else "metrics"  # type: ignore[misc]
        super().__init__(metrics=list(metrics))

    def catalog(self) -> dict[str, MetricSpec]:
        return {name: metric.spec for name, metric in self._metrics.items()}

    def score_outputs(self, records: Sequence[Record], outputs: Sequence[str]) -> list[tuple]:
        results: list[tuple] = []
        for record, output in zip(records, outputs):
            try:
                scores = {name: self._metrics[name](output, record.target_output or []) for name in self.metrics}
            except Exception as exc:  # a bug in the user's metric is that record's error, named
                results.append(({}, {}, f"{type(exc).__name__}: {exc}"))
                continue
            results.append((scores, {}))
        return results


def metric_evaluation(metrics: Sequence[str], **options: Any) -> MetricEvaluation:
    return MetricEvaluation(metrics=options.pop("metrics", None) or metrics, **options)
