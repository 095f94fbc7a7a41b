"""Question-answering accuracy: word overlap, exact matches and BERTScore against the targets."""
from __future__ import annotations

from typing import Any, Sequence

from fmeval.algorithms import text_metrics
from fmeval.algorithms.base import GenerationAlgorithm, max_over_targets
from fmeval.algorithms.bertscore import DEFAULT_MODEL, BertScore
from fmeval.datasets.record import Record

F1_SCORE = "f1_score"
EXACT_MATCH_SCORE = "exact_match_score"
QUASI_EXACT_MATCH_SCORE = "quasi_exact_match_score"
PRECISION_OVER_WORDS = "precision_over_words"
RECALL_OVER_WORDS = "recall_over_words"
BERTSCORE = "bertscore"
TEXT_METRICS = {
    F1_SCORE: text_metrics.f1_over_words,
    EXACT_MATCH_SCORE: text_metrics.exact_match,
    QUASI_EXACT_MATCH_SCORE: text_metrics.quasi_exact_match,
    PRECISION_OVER_WORDS: text_metrics.precision_over_words,
    RECALL_OVER_WORDS: text_metrics.recall_over_words,
}


class QAAccuracy(GenerationAlgorithm):
    """Each metric takes the best value over a record's targets, as AWS fmeval does.

    BERTScore needs a second model and dominates the run time: leave it out with
    `metrics=[...]` when word overlap is enough.
    """

    name = "qa_accuracy"
    available_metrics = (*TEXT_METRICS, BERTSCORE)

    def __init__(
        self,
        *,
        metrics: Sequence[str] | None = None,
        bertscore_model: str = DEFAULT_MODEL,
        bertscore_num_layers: int | None = None,
    ):
        super().__init__(metrics=metrics)
        self.bertscore = BertScore(model=bertscore_model, num_layers=bertscore_num_layers)

    def config(self) -> dict[str, Any]:
        extra = self.bertscore.config() if BERTSCORE in self.metrics else {}
        return {**super().config(), **extra}

    def score_outputs(self, records: Sequence[Record], outputs: Sequence[str]) -> list[tuple[dict[str, float], dict]]:
        scores = [
            {
                name: max_over_targets(TEXT_METRICS[name], output, record.target_output)
                for name in self.metrics
                if name in TEXT_METRICS
            }
            for record, output in zip(records, outputs)
        ]
        if BERTSCORE in self.metrics:
            best = self.bertscore.max_over_targets(outputs, [record.target_output for record in records])
            for record_scores, value in zip(scores, best):
                record_scores[BERTSCORE] = value
        return [(record_scores, {}) for record_scores in scores]
