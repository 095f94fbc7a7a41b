"""Perplexity of whole texts, as lm-evaluation-harness computes it (`output_type: loglikelihood_rolling`).

Each record's text (its prompt) is scored over rolling windows of the model's context. Words
(split on whitespace runs) and UTF-8 bytes are counted on the record's `model_input`, so a prompt
template may rewrite the scored text without changing the units (as lm-eval's WikiText task
detokenises the page but counts the raw one). The dataset metrics weight documents by their
length, as lm-eval does: `word_perplexity` = exp(-sum LL / sum words), `byte_perplexity` =
exp(-sum LL / sum bytes), `bits_per_byte` = -sum LL / sum bytes / ln 2. Each record also gets its
own `document_bits_per_byte`, so that two runs compare document by document. Lower is better.
"""
from __future__ import annotations

import math
import re
from typing import Sequence

from fmeval.algorithms.base import Algorithm, CorpusMetric, RecordResult
from fmeval.datasets.record import Record
from fmeval.engine import Request
from fmeval.model_runners.base import ModelOutput
from fmeval.prompt import PromptTemplate
from fmeval.scores import MetricSpec

WORD_PERPLEXITY, BYTE_PERPLEXITY, BITS_PER_BYTE = "word_perplexity", "byte_perplexity", "bits_per_byte"
DOCUMENT_BITS_PER_BYTE = "document_bits_per_byte"
LOG_LIKELIHOOD, WORDS, BYTES = "log_likelihood", "words", "bytes"


def units(text: str) -> tuple[int, int]:
    """Words (as lm-eval counts them: pieces between whitespace runs) and UTF-8 bytes."""
    return len(re.split(r"\s+", text)), len(text.encode("utf-8"))


def _weighted(unit: str, transform) -> CorpusMetric:
    def metric(results: Sequence[RecordResult]) -> float:
        total = sum(result.extras[unit] for result in results)
        if not total:
            return math.nan
        return transform(-sum(result.extras[LOG_LIKELIHOOD] for result in results) / total)

    return metric


CORPUS: dict[str, CorpusMetric] = {
    WORD_PERPLEXITY: _weighted(WORDS, math.exp),
    BYTE_PERPLEXITY: _weighted(BYTES, math.exp),
    BITS_PER_BYTE: _weighted(BYTES, lambda nats: nats / math.log(2)),
}


class Perplexity(Algorithm):
    """word_perplexity, byte_perplexity and bits_per_byte over the dataset (document-weighted),
    and each document's bits per byte."""

    name = "perplexity"
    METRICS = (
        MetricSpec(WORD_PERPLEXITY, higher_is_better=False, range=(1.0, math.inf), per_record=False),
        MetricSpec(BYTE_PERPLEXITY, higher_is_better=False, range=(1.0, math.inf), per_record=False),
        MetricSpec(BITS_PER_BYTE, higher_is_better=False, range=(0.0, math.inf), per_record=False),
        MetricSpec(DOCUMENT_BITS_PER_BYTE, higher_is_better=False, range=(0.0, math.inf)),
    )
    required_fields = ("model_input",)
    request_kind = "loglikelihood_rolling"

    def corpus_metrics(self) -> dict[str, CorpusMetric]:
        return {name: CORPUS[name] for name in self.metrics if name in CORPUS}

    def requests(self, record: Record, template: PromptTemplate | None) -> list[Request]:
        return [Request(record.prompt or "", kind="loglikelihood_rolling")]

    def score(self, records: Sequence[Record], answers: Sequence[Sequence[ModelOutput]]) -> list[RecordResult]:
        results = []
        for record, (answer,) in zip(records, answers):
            words, size = units(record.model_input or "")
            scores: dict[str, float | None] = dict.fromkeys(self.score_names)
            if answer.error is None and DOCUMENT_BITS_PER_BYTE in scores and size:
                scores[DOCUMENT_BITS_PER_BYTE] = -answer.log_probability / size / math.log(2)  # type: ignore[operator]
            results.append(RecordResult(
                record, None, scores, answer.error,
                {LOG_LIKELIHOOD: answer.log_probability, WORDS: words, BYTES: size,
                 "num_tokens": answer.num_tokens},
                error_retryable=answer.retryable,
            ))
        return results
