"""Semantic robustness: do small, meaning-preserving typos change what the model says?

- `general_semantic_robustness` compares each perturbed prompt's output with the original
  output: `word_error_rate` and `bertscore_dissimilarity` (1 - BERTScore). For a model that
  does not answer the same twice, a baseline measured between repeated unperturbed
  generations is subtracted (clipped at 0), as AWS fmeval does.
- `<accuracy>_semantic_robustness` reports the accuracy metrics on the original prompts plus
  `delta_<metric>`, the mean of |s - s_i| over the perturbed prompts.

Every prompt of a record, original and perturbed, goes to the engine with the rest of the batch;
a record is scored as soon as all of its outputs are in.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from fmeval.algorithms.base import NO_OUTPUT, Algorithm, GenerationAlgorithm, RecordResult, answer_of
from fmeval.algorithms.bertscore import DEFAULT_MODEL, BertScore
from fmeval.algorithms.perturbations import get_perturbation, rng_for
from fmeval.algorithms.text_metrics import word_error_rate
from fmeval.datasets.record import Record
from fmeval.engine import Engine, Request
from fmeval.errors import UserError
from fmeval.model_runners.base import ModelOutput
from fmeval.prompt import PromptTemplate
from fmeval.scores import MetricSpec

WORD_ERROR_RATE = "word_error_rate"
BERTSCORE_DISSIMILARITY = "bertscore_dissimilarity"
DEFAULT_TEMPLATE = PromptTemplate("$model_input")


class _Perturbed:
    """The perturbed model inputs of records, rendered into prompts."""

    def __init__(self, perturbation: str, num_perturbations: int, seed: int, options: Mapping[str, Any] | None):
        if num_perturbations < 1:
            raise UserError(f"num_perturbations must be >= 1, got {num_perturbations}")
        self.name, self.count, self.seed = perturbation, num_perturbations, seed
        self.options = dict(options or {})
        self.perturb = get_perturbation(perturbation, self.options)

    def config(self) -> dict[str, Any]:
        return {"perturbation": self.name, "perturbation_options": self.options,
                "num_perturbations": self.count, "perturbation_seed": self.seed}

    def prompts(self, record: Record, template: PromptTemplate | None) -> list[str]:
        """The record with each of its perturbations, rendered as a prompt."""
        template = template or DEFAULT_TEMPLATE
        return [
            template.render(
                model_input=self.perturb(record.model_input, rng_for(self.seed, record.record_id, self.name, k)),
                context=record.context, location=record.location,
            )
            for k in range(self.count)
        ]


def _split(record: Record, answers: Sequence[ModelOutput], count: int) -> tuple[list[ModelOutput], list[ModelOutput], list[ModelOutput]]:
    """A record's answers: its original output's (none when the record carries one), then `count`
    perturbed ones, then any baseline repeats."""
    originals = 0 if record.model_output is not None else 1
    return list(answers[:originals]), list(answers[originals : originals + count]), list(answers[originals + count :])


def _first_error(answers: Sequence[ModelOutput]) -> tuple[str | None, bool]:
    failed = next((answer for answer in answers if answer.output is None), None)
    if failed is None:
        return None, False
    return failed.error or NO_OUTPUT, failed.retryable


class AccuracySemanticRobustness(Algorithm):
    """An accuracy evaluation on original prompts, plus how far each metric moves under perturbation."""

    needs_model_with_outputs = True

    def __init__(
        self,
        base: GenerationAlgorithm,
        *,
        perturbation: str = "butter_finger",
        num_perturbations: int = 5,
        seed: int = 0,
        perturbation_options: Mapping[str, Any] | None = None,
        metrics: Sequence[str] | None = None,
    ):
        self.base = base
        self.name = f"{base.name}_semantic_robustness"  # type: ignore[misc]
        self.required_fields = base.required_fields  # type: ignore[misc]
        super().__init__(metrics=metrics)
        self.perturbed = _Perturbed(perturbation, num_perturbations, seed, perturbation_options)

    def catalog(self) -> dict[str, MetricSpec]:
        """The base metrics, each per-record one's delta (how far it moves: lower is better), and
        the base's dataset-level metrics."""
        base = self.base.catalog()
        per_record = [base[name] for name in self.base.score_names]
        deltas = [MetricSpec(f"delta_{spec.name}", higher_is_better=False, range=(0.0, spec.range[1] - spec.range[0]))
                  for spec in per_record]
        corpus = [base[name] for name in self.base.corpus_metrics()]
        return {spec.name: spec for spec in (*per_record, *deltas, *corpus)}

    def config(self) -> dict[str, Any]:
        return {**super().config(), "base": self.base.config(), **self.perturbed.config()}

    def load(self) -> None:
        self.base.load()

    def prepare(self, records: Any) -> None:
        self.base.prepare(records)

    def corpus_metrics(self):
        """The base evaluation's dataset-level metrics, on the original outputs."""
        return {name: fn for name, fn in self.base.corpus_metrics().items() if name in self.metrics}

    def requests(self, record: Record, template: PromptTemplate | None) -> list[Request]:
        return [*self.base.requests(record, template), *map(Request, self.perturbed.prompts(record, template))]

    def score(self, records: Sequence[Record], answers: Sequence[Sequence[ModelOutput]]) -> list[RecordResult]:
        results, perturbed = [], []
        for record, record_answers in zip(records, answers):
            original, variants, _ = _split(record, record_answers, self.perturbed.count)
            output, error, retryable = answer_of(record, original)
            variant_error, variant_retryable = _first_error(variants)
            results.append(RecordResult(record, output, dict.fromkeys(self.score_names), error or variant_error,
                                        {"perturbed_model_outputs": [v.output for v in variants]},
                                        error_retryable=retryable if error else variant_retryable))
            perturbed.append([v.output for v in variants])
        ok = [i for i, result in enumerate(results) if result.error is None]
        # One scoring call for every (record, output) pair of the batch: metrics such as BERTScore
        # run a model, which should see the whole batch at once.
        width = 1 + self.perturbed.count
        scored = self.base.score_outputs(
            [records[i] for i in ok for _ in range(width)],
            [text for i in ok for text in (results[i].model_output, *perturbed[i])],
        )
        for position, index in enumerate(ok):
            (original_scores, extras), *variant_scores = scored[position * width : (position + 1) * width]
            scores = dict(original_scores)
            for name in self.base.score_names:
                scores[f"delta_{name}"] = float(np.mean([abs(original_scores[name] - v[0][name]) for v in variant_scores]))
            results[index].scores = {name: scores[name] for name in self.score_names}
            results[index].extras.update(extras)
        return results


class GeneralSemanticRobustness(Algorithm):
    """How much the output changes when the prompt is perturbed: word error rate and
    BERTScore dissimilarity between original and perturbed outputs, less the baseline of a
    non-deterministic model."""

    name = "general_semantic_robustness"
    needs_model_with_outputs = True
    METRICS = (
        MetricSpec(WORD_ERROR_RATE, higher_is_better=False, range=(0.0, math.inf)),
        MetricSpec(BERTSCORE_DISSIMILARITY, higher_is_better=False, range=(0.0, 2.0)),
    )
    required_fields = ("model_input",)

    def __init__(
        self,
        *,
        perturbation: str = "butter_finger",
        num_perturbations: int = 5,
        seed: int = 0,
        perturbation_options: Mapping[str, Any] | None = None,
        num_baseline_samples: int = 4,
        determinism_check_records: int = 5,
        bertscore_model: str = DEFAULT_MODEL,
        bertscore_num_layers: int | None = None,
        metrics: Sequence[str] | None = None,
    ):
        super().__init__(metrics=metrics)
        if num_baseline_samples < 1 or determinism_check_records < 1:
            raise UserError("num_baseline_samples and determinism_check_records must be >= 1")
        self.perturbed = _Perturbed(perturbation, num_perturbations, seed, perturbation_options)
        self.num_baseline_samples = num_baseline_samples
        self.determinism_check_records = determinism_check_records
        self.bertscore = BertScore(model=bertscore_model, num_layers=bertscore_num_layers)
        self.deterministic: bool | None = None

    def config(self) -> dict[str, Any]:
        extra = self.bertscore.config() if BERTSCORE_DISSIMILARITY in self.metrics else {}
        return {**super().config(), **self.perturbed.config(), "num_baseline_samples": self.num_baseline_samples,
                **extra}

    def load(self) -> None:
        if BERTSCORE_DISSIMILARITY in self.metrics:
            self.bertscore.load()

    def calibrate(self, records: Sequence[Record], engine: Engine, template: PromptTemplate | None) -> None:
        """Generate the first few prompts twice, the second time bypassing the cache: any
        difference means the model does not answer the same twice, and each record then also
        gets `num_baseline_samples` fresh repeats of its prompt. Decided once per run. When the
        records carry their own outputs, there is nothing to repeat."""
        if self.deterministic is not None:
            return
        prompts = [r.prompt for r in records if r.model_output is None][: self.determinism_check_records]
        if not prompts:
            self.deterministic = True
            return
        pairs = zip(engine.generate(prompts), engine.generate(prompts, use_cache=False))
        answered = [(first.output, again.output) for first, again in pairs if first.output is not None and again.output is not None]
        # Without a single answered pair there is no evidence: assume not deterministic, which
        # costs extra requests but never a wrong score (a deterministic model's baseline is 0).
        self.deterministic = bool(answered) and all(first == again for first, again in answered)

    def requests(self, record: Record, template: PromptTemplate | None) -> list[Request]:
        original = [] if record.model_output is not None else [Request(record.prompt)]  # type: ignore[arg-type]
        perturbed = [Request(prompt) for prompt in self.perturbed.prompts(record, template)]
        repeats = [] if self.deterministic else [Request(record.prompt, cached=False)] * self.num_baseline_samples  # type: ignore[arg-type]
        return [*original, *perturbed, *repeats]

    def _dissimilarities(self, originals: Sequence[str], others: Sequence[Sequence[str]]) -> dict[str, list[float]]:
        """Per record, the mean word error rate and BERTScore dissimilarity of `others` against its original."""
        values: dict[str, list[float]] = {}
        if WORD_ERROR_RATE in self.metrics:
            values[WORD_ERROR_RATE] = [
                float(np.mean([word_error_rate(original, other) for other in row])) for original, row in zip(originals, others)
            ]
        if BERTSCORE_DISSIMILARITY in self.metrics:
            flat_outputs = [other for row in others for other in row]
            flat_targets = [[original] for original, row in zip(originals, others) for _ in row]
            similarity = iter(self.bertscore.max_over_targets(flat_outputs, flat_targets))
            values[BERTSCORE_DISSIMILARITY] = [
                1.0 - float(np.mean([next(similarity) for _ in row])) for row in others
            ]
        return values

    def score(self, records: Sequence[Record], answers: Sequence[Sequence[ModelOutput]]) -> list[RecordResult]:
        results, perturbed, repeats = [], [], []
        for record, record_answers in zip(records, answers):
            original, variants, baseline = _split(record, record_answers, self.perturbed.count)
            output, error, retryable = answer_of(record, original)
            other_error, other_retryable = _first_error([*variants, *baseline])
            results.append(RecordResult(record, output, dict.fromkeys(self.score_names), error or other_error,
                                        {"perturbed_model_outputs": [v.output for v in variants]},
                                        error_retryable=retryable if error else other_retryable))
            perturbed.append([v.output for v in variants])
            repeats.append([b.output for b in baseline])
        ok = [i for i, result in enumerate(results) if result.error is None]
        originals = [results[i].model_output for i in ok]
        scores = self._dissimilarities(originals, [perturbed[i] for i in ok])  # type: ignore[arg-type]
        if any(repeats[i] for i in ok):
            baseline = self._dissimilarities(originals, [repeats[i] for i in ok])  # type: ignore[arg-type]
            scores = {name: [max(0.0, v - b) for v, b in zip(values, baseline[name])] for name, values in scores.items()}
        for position, index in enumerate(ok):
            results[index].scores = {name: scores[name][position] for name in self.score_names}
        return results


def _robustness_of(evaluation: str):
    def build(
        *,
        perturbation: str = "butter_finger",
        num_perturbations: int = 5,
        seed: int = 0,
        perturbation_options: Mapping[str, Any] | None = None,
        metrics: Sequence[str] | None = None,
        **base_options: Any,
    ) -> AccuracySemanticRobustness:
        from fmeval.algorithms import get_algorithm

        if metrics is not None and "metrics" not in base_options:
            # compute only the base metrics the chosen ones need (delta_x needs x)
            needed = {m.removeprefix("delta_") for m in metrics}
            base_options["metrics"] = [m for m in get_algorithm(evaluation).available_metrics if m in needed]
        return AccuracySemanticRobustness(
            get_algorithm(evaluation, **base_options), perturbation=perturbation, num_perturbations=num_perturbations,
            seed=seed, perturbation_options=perturbation_options, metrics=metrics,
        )

    build.__doc__ = f"{evaluation} under perturbation; other options go to {evaluation}."
    build.base_evaluation = evaluation  # type: ignore[attr-defined]  # where the other options go
    return build


qa_accuracy_semantic_robustness = _robustness_of("qa_accuracy")
summarization_accuracy_semantic_robustness = _robustness_of("summarization_accuracy")
classification_accuracy_semantic_robustness = _robustness_of("classification_accuracy")
