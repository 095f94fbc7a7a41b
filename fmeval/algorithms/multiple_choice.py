"""Multiple choice by log-likelihood, as lm-evaluation-harness scores it (`output_type: multiple_choice`).

Each choice is scored as the continuation `target_delimiter + choice` after the record's prompt.
The prediction is the choice of highest log-likelihood (`acc`); `acc_norm` divides each
log-likelihood by the choice's length in characters and `acc_bytes` by its length in UTF-8 bytes
(lm-eval 0.4.13 computes `acc_norm` from `len(choice)`, characters, although its documentation
says bytes: we follow the code, so that the numbers compare). Ties go to the first choice. `mc2`
is TruthfulQA's MC2: the probability mass of the true answers (the targets) among all choices.

The targets are the correct choices' texts: a record whose target is not one of its choices
is an error on that record (lm-eval only warns and scores it 0).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from fmeval.algorithms.base import Algorithm, RecordResult
from fmeval.datasets.record import Record
from fmeval.engine import Request
from fmeval.model_runners.base import ModelOutput
from fmeval.prompt import PromptTemplate
from fmeval.scores import MetricSpec

ACC, ACC_NORM, ACC_BYTES, MC2 = "acc", "acc_norm", "acc_bytes", "mc2"
DEFAULT_METRICS = (ACC, ACC_NORM)
ERR_NOT_A_CHOICE = "the target {targets!r} is not one of the record's choices {choices!r}"


def argmax(values: Sequence[float]) -> int:
    """The index of the largest value, the first on ties (as numpy's argmax)."""
    return max(range(len(values)), key=lambda i: (values[i], -i))


def choice_scores(log_likelihoods: Sequence[float], choices: Sequence[str], gold: set[int]) -> dict[str, float]:
    """Every metric of one record from its choices' log-likelihoods and the correct choices' indices."""
    characters = [ll / len(choice) for ll, choice in zip(log_likelihoods, choices)]
    per_byte = [ll / len(choice.encode("utf-8")) for ll, choice in zip(log_likelihoods, choices)]
    top = max(log_likelihoods)
    mass = [math.exp(ll - top) for ll in log_likelihoods]  # shifted: the ratio is the same, and never 0/0
    return {
        ACC: float(argmax(log_likelihoods) in gold),
        ACC_NORM: float(argmax(characters) in gold),
        ACC_BYTES: float(argmax(per_byte) in gold),
        MC2: sum(mass[i] for i in gold) / sum(mass),
    }


class MultipleChoice(Algorithm):
    """acc, acc_norm, acc_bytes and mc2 of records with `choices`; every choice is one
    `loglikelihood` request, batched and cached by the engine."""

    name = "multiple_choice"
    METRICS = (MetricSpec(ACC), MetricSpec(ACC_NORM), MetricSpec(ACC_BYTES), MetricSpec(MC2))
    required_fields = ("model_input", "choices", "target_output")
    request_kind = "loglikelihood"

    def __init__(self, *, target_delimiter: str = " ", metrics: Sequence[str] | None = None):
        super().__init__(metrics=DEFAULT_METRICS if metrics is None else metrics)
        self.target_delimiter = target_delimiter

    def config(self) -> dict[str, Any]:
        return {**super().config(), "target_delimiter": self.target_delimiter}

    def requests(self, record: Record, template: PromptTemplate | None) -> list[Request]:
        return [Request(record.prompt or "", kind="loglikelihood", continuation=self.target_delimiter + choice)
                for choice in record.choices or ()]

    def score(self, records: Sequence[Record], answers: Sequence[Sequence[ModelOutput]]) -> list[RecordResult]:
        results = []
        for record, record_answers in zip(records, answers):
            choices = record.choices or []
            targets = record.target_output or []
            gold = {choices.index(target) for target in targets if target in choices}
            scores: dict[str, float | None] = dict.fromkeys(self.score_names)
            failed = next((answer for answer in record_answers if answer.error is not None), None)
            error = failed.error if failed is not None else None
            if error is None and len(gold) < len(set(targets)):
                error = ERR_NOT_A_CHOICE.format(targets=targets, choices=choices)
            log_likelihoods = [answer.log_probability for answer in record_answers]
            if error is None:
                computed = choice_scores(log_likelihoods, choices, gold)  # type: ignore[arg-type]
                scores = {name: computed[name] for name in self.score_names}
            prediction = choices[argmax(log_likelihoods)] if error is None else None  # type: ignore[arg-type]
            results.append(RecordResult(
                record, prediction, scores, error,
                {"choice_log_likelihoods": log_likelihoods, "choice_is_greedy": [a.is_greedy for a in record_answers]},
                error_retryable=bool(failed and failed.retryable),
            ))
        return results
