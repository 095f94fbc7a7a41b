"""Factual knowledge: does the output contain the expected fact? (Petroni et al., 2019; AWS fmeval)"""
from __future__ import annotations

from typing import Any, Literal, Sequence

from fmeval.algorithms import text_metrics
from fmeval.algorithms.base import GenerationAlgorithm
from fmeval.datasets.record import Record
from fmeval.errors import UserError

FACTUAL_KNOWLEDGE = "factual_knowledge"
FACTUAL_KNOWLEDGE_QUASI_EXACT = "factual_knowledge_quasi_exact"


class FactualKnowledge(GenerationAlgorithm):
    """1 when the output contains a target (ignoring case), else 0; averaged over records.

    `factual_knowledge_quasi_exact` first normalises both (lowercase, no punctuation, no
    articles, single spaces). With `logical_operator="OR"` (default) any target counts; with
    "AND" every target must be present. Inclusion is by substring, as in AWS fmeval.
    """

    name = "factual_knowledge"
    available_metrics = (FACTUAL_KNOWLEDGE, FACTUAL_KNOWLEDGE_QUASI_EXACT)

    def __init__(self, *, logical_operator: Literal["OR", "AND"] = "OR", metrics: Sequence[str] | None = None):
        super().__init__(metrics=metrics)
        if logical_operator not in ("OR", "AND"):
            raise UserError(f"factual_knowledge: logical_operator must be 'OR' or 'AND', got {logical_operator!r}")
        self.logical_operator = logical_operator

    def config(self) -> dict[str, Any]:
        return {**super().config(), "logical_operator": self.logical_operator}

    def score_outputs(self, records: Sequence[Record], outputs: Sequence[str]) -> list[tuple[dict[str, float], dict]]:
        combine = any if self.logical_operator == "OR" else all
        functions = {
            FACTUAL_KNOWLEDGE: text_metrics.factual_inclusion,
            FACTUAL_KNOWLEDGE_QUASI_EXACT: text_metrics.factual_inclusion_quasi_exact,
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
