"""Factual knowledge: does the output contain the expected fact? (Petroni et al., 2019; AWS fmeval)"""
from __future__ import annotations

import functools
from typing import Any, Literal, Sequence

from fmeval.algorithms import text_metrics
from fmeval.algorithms.base import GenerationAlgorithm
from fmeval.datasets.record import Record
from fmeval.errors import UserError
from fmeval.scores import MetricSpec

FACTUAL_KNOWLEDGE = "factual_knowledge"
FACTUAL_KNOWLEDGE_QUASI_EXACT = "factual_knowledge_quasi_exact"


class FactualKnowledge(GenerationAlgorithm):
    """1 when the output contains a target (ignoring case), else 0; averaged over records.

    `factual_knowledge_quasi_exact` first normalises both (`normalization`: "aws", default, as
    AWS fmeval does, or "squad"; see `text_metrics`). With `logical_operator="OR"` (default) any
    target counts; with "AND" every target must be present. Inclusion is by substring, as in AWS fmeval.
    """

    name = "factual_knowledge"
    METRICS = (MetricSpec(FACTUAL_KNOWLEDGE), MetricSpec(FACTUAL_KNOWLEDGE_QUASI_EXACT))

    def __init__(
        self,
        *,
        logical_operator: Literal["OR", "AND"] = "OR",
        normalization: text_metrics.Normalization = "aws",
        metrics: Sequence[str] | None = None,
    ):
        super().__init__(metrics=metrics)
        if logical_operator not in ("OR", "AND"):
            raise UserError(f"factual_knowledge: logical_operator must be 'OR' or 'AND', got {logical_operator!r}")
        if normalization not in text_metrics.NORMALIZATIONS:
            raise UserError(f"factual_knowledge: normalization must be one of {text_metrics.NORMALIZATIONS}")
        self.logical_operator = logical_operator
        self.normalization = normalization

    def config(self) -> dict[str, Any]:
        return {**super().config(), "logical_operator": self.logical_operator, "normalization": self.normalization}

    def score_outputs(self, records: Sequence[Record], outputs: Sequence[str]) -> list[tuple[dict[str, float], dict]]:
        combine = any if self.logical_operator == "OR" else all
        functions = {
            FACTUAL_KNOWLEDGE: text_metrics.factual_inclusion,
            FACTUAL_KNOWLEDGE_QUASI_EXACT: functools.partial(
                text_metrics.factual_inclusion_quasi_exact, normalization=self.normalization
            ),
        }
        return [
            (
                {
                    name: float(combine(functions[name](output, target) == 1.0 for target in record.target_output))
                    for name in self.score_names
                },
                {},
            )
            for record, output in zip(records, outputs)
        ]
