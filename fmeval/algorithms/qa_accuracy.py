"""Question-answering accuracy: word overlap, exact matches and BERTScore against the targets."""
from __future__ import annotations

import functools
from typing import Any, Sequence

from fmeval.algorithms import text_metrics
from fmeval.algorithms.base import GenerationAlgorithm, max_over_targets
from fmeval.algorithms.bertscore import BERTSCORE_RANGE, DEFAULT_MODEL, BertScore
from fmeval.datasets.record import Record
from fmeval.errors import UserError
from fmeval.scores import MetricSpec

F1_SCORE = "f1_score"
EXACT_MATCH_SCORE = "exact_match_score"
QUASI_EXACT_MATCH_SCORE = "quasi_exact_match_score"
PRECISION_OVER_WORDS = "precision_over_words"
RECALL_OVER_WORDS = "recall_over_words"
BERTSCORE = "bertscore"
NORMALIZED = {
    F1_SCORE: text_metrics.f1_over_words,
    QUASI_EXACT_MATCH_SCORE: text_metrics.quasi_exact_match,
    PRECISION_OVER_WORDS: text_metrics.precision_over_words,
    RECALL_OVER_WORDS: text_metrics.recall_over_words,
}
TEXT_METRICS = (F1_SCORE, EXACT_MATCH_SCORE, QUASI_EXACT_MATCH_SCORE, PRECISION_OVER_WORDS, RECALL_OVER_WORDS)


class QAAccuracy(GenerationAlgorithm):
    """Each metric takes the best value over a record's targets, as AWS fmeval does.

    Word metrics normalise text with `normalization` ("aws", default, or "squad"; see
    `text_metrics`). BERTScore needs a second model and dominates the run time: leave it out
    with `metrics=[...]` when word overlap is enough.
    """

    name = "qa_accuracy"
    METRICS = (*(MetricSpec(name) for name in TEXT_METRICS), MetricSpec(BERTSCORE, range=BERTSCORE_RANGE))

    def __init__(
        self,
        *,
        metrics: Sequence[str] | None = None,
        normalization: text_metrics.Normalization = "aws",
        bertscore_model: str = DEFAULT_MODEL,
        bertscore_num_layers: int | None = None,
    ):
        super().__init__(metrics=metrics)
        if normalization not in text_metrics.NORMALIZATIONS:
            raise UserError(f"qa_accuracy: normalization must be one of {text_metrics.NORMALIZATIONS}")
        self.normalization = normalization
        self.bertscore = BertScore(model=bertscore_model, num_layers=bertscore_num_layers)

    def config(self) -> dict[str, Any]:
        extra = self.bertscore.config() if BERTSCORE in self.metrics else {}
        return {**super().config(), "normalization": self.normalization, **extra}

    def load(self) -> None:
        if BERTSCORE in self.metrics:
            self.bertscore.load()

    def _function(self, name: str):
        if name == EXACT_MATCH_SCORE:
            return text_metrics.exact_match
        return functools.partial(NORMALIZED[name], normalization=self.normalization)

    def score_outputs(self, records: Sequence[Record], outputs: Sequence[str]) -> list[tuple[dict[str, float], dict]]:
        functions = {name: self._function(name) for name in self.metrics if name in TEXT_METRICS}
        scores = [
            {name: max_over_targets(function, output, record.target_output) for name, function in functions.items()}
            for record, output in zip(records, outputs)
        ]
        if BERTSCORE in self.metrics:
            best = self.bertscore.max_over_targets(outputs, [record.target_output for record in records])
            for record_scores, value in zip(scores, best):
                record_scores[BERTSCORE] = value
        return [(record_scores, {}) for record_scores in scores]
