"""Semantic robustness: do small, meaning-preserving typos change what the model says?

- `general_semantic_robustness` compares each perturbed prompt's output with the original
  output: `word_error_rate` and `bertscore_dissimilarity` (1 - BERTScore). For a model that
  does not answer the same twice, a baseline measured between repeated unperturbed
  generations is subtracted (clipped at 0), as AWS fmeval does.
- `<accuracy>_semantic_robustness` reports the accuracy metrics on the original prompts plus
  `delta_<metric>`, the mean of |s - s_i| over the perturbed prompts.

All prompts of a batch, original and perturbed, go to the engine in one batched call.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from fmeval.algorithms.base import Algorithm, GenerationAlgorithm, RecordResult, generate_missing_outputs
from fmeval.algorithms.bertscore import DEFAULT_MODEL, BertScore
from fmeval.algorithms.perturbations import get_perturbation, rng_for
from fmeval.algorithms.text_metrics import word_error_rate
from fmeval.datasets.record import Record
from fmeval.engine import Engine
from fmeval.errors import UserError
from fmeval.prompt import PromptTemplate

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

    def prompts(self, records: Sequence[Record], template: PromptTemplate | None) -> list[list[str]]:
        """prompts[i][k]: record i with its k-th perturbation, rendered as a prompt."""
        template = template or DEFAULT_TEMPLATE
        return [
            [
                template.render(
                    model_input=self.perturb(record.model_input, rng_for(self.seed, record.record_id, self.name, k)),
                    context=record.context, location=record.location,
                )
                for k in range(self.count)
            ]
            for record in records
        ]


def _generate_grid(engine: Engine, grid: list[list[str]]) -> tuple[list[list[str | None]], list[str | None]]:
    """Outputs for every prompt of a records x perturbations grid, in one engine call; the first
    error of each record."""
    flat = engine.generate([prompt for row in grid for prompt in row]) if grid else []
    outputs, errors, position = [], [], 0
    for row in grid:
        cells = flat[position : position + len(row)]
        position += len(row)
        outputs.append([cell.output for cell in cells])
        errors.append(next((cell.error or "the model returned no output" for cell in cells if cell.output is None), None))
    return outputs, errors


class AccuracySemanticRobustness(Algorithm):
    """An accuracy evaluation on original prompts, plus how far each metric moves under perturbation."""

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
        per_record = base.score_names
        self.available_metrics = (*per_record, *(f"delta_{m}" for m in per_record), *base.corpus_metrics())
        super().__init__(metrics=metrics)
        self.perturbed = _Perturbed(perturbation, num_perturbations, seed, perturbation_options)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "base": self.base.config(), **self.perturbed.config()}

    def prepare(self, records: Any) -> None:
        self.base.prepare(records)

    def corpus_metrics(self):
        """The base evaluation's dataset-level metrics, on the original outputs."""
        return {name: fn for name, fn in self.base.corpus_metrics().items() if name in self.metrics}

    def evaluate_batch(
        self, records: Sequence[Record], engine: Engine, *, template: PromptTemplate | None = None
    ) -> list[RecordResult]:
        outputs, errors = generate_missing_outputs(records, engine)
        perturbed, perturbed_errors = _generate_grid(engine, self.perturbed.prompts(records, template))
        results = [
            RecordResult(record, outputs[i], dict.fromkeys(self.score_names), errors[i] or perturbed_errors[i],
                         {"perturbed_model_outputs": perturbed[i]})
            for i, record in enumerate(records)
        ]
        ok = [i for i, result in enumerate(results) if result.error is None]
        # One scoring call for every (record, output) pair of the batch: metrics such as BERTScore
        # run a model, which should see the whole batch at once.
        width = 1 + self.perturbed.count
        scored = self.base.score_outputs(
            [records[i] for i in ok for _ in range(width)], [text for i in ok for text in (outputs[i], *perturbed[i])]
        )
        for position, index in enumerate(ok):
            (original, extras), *variants = scored[position * width : (position + 1) * width]
            scores = dict(original)
            for name in self.base.score_names:
                scores[f"delta_{name}"] = float(np.mean([abs(original[name] - v[0][name]) for v in variants]))
            results[index].scores = {name: scores[name] for name in self.score_names}
            results[index].extras.update(extras)
        return results


class GeneralSemanticRobustness(Algorithm):
    """How much the output changes when the prompt is perturbed: word error rate and
    BERTScore dissimilarity between original and perturbed outputs, less the baseline of a
    non-deterministic model."""

    name = "general_semantic_robustness"
    available_metrics = (WORD_ERROR_RATE, BERTSCORE_DISSIMILARITY)
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

    def _check_determinism(self, records: Sequence[Record], outputs: Sequence[str | None], engine: Engine) -> None:
        """Generate the first few prompts again, bypassing the cache: any difference means the
        model does not answer the same twice (decided once per run, on its first batch)."""
        sample = [i for i, record in enumerate(records) if record.prompt is not None and outputs[i] is not None]
        sample = sample[: self.determinism_check_records]
        again = engine.generate([records[i].prompt for i in sample], use_cache=False)
        self.deterministic = all(outputs[i] == repeat.output for i, repeat in zip(sample, again))

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

    def evaluate_batch(
        self, records: Sequence[Record], engine: Engine, *, template: PromptTemplate | None = None
    ) -> list[RecordResult]:
        outputs, errors = generate_missing_outputs(records, engine)
        perturbed, perturbed_errors = _generate_grid(engine, self.perturbed.prompts(records, template))
        if self.deterministic is None:
            self._check_determinism(records, outputs, engine)
        baseline_errors: list[str | None] = [None] * len(records)
        baseline_outputs: list[list[str | None]] = [[] for _ in records]
        if not self.deterministic:
            grid = [[record.prompt] * self.num_baseline_samples for record in records]
            flat = engine.generate([prompt for row in grid for prompt in row], use_cache=False)
            for i in range(len(records)):
                cells = flat[i * self.num_baseline_samples : (i + 1) * self.num_baseline_samples]
                baseline_outputs[i] = [cell.output for cell in cells]
                baseline_errors[i] = next((cell.error for cell in cells if cell.output is None), None)
        ok = [i for i in range(len(records)) if not (errors[i] or perturbed_errors[i] or baseline_errors[i])]
        scores = self._dissimilarities([outputs[i] for i in ok], [perturbed[i] for i in ok])
        if not self.deterministic:
            baseline = self._dissimilarities([outputs[i] for i in ok], [baseline_outputs[i] for i in ok])
            scores = {name: [max(0.0, v - b) for v, b in zip(values, baseline[name])] for name, values in scores.items()}
        results = [
            RecordResult(record, outputs[i], dict.fromkeys(self.score_names),
                         errors[i] or perturbed_errors[i] or baseline_errors[i],
                         {"perturbed_model_outputs": perturbed[i]})
            for i, record in enumerate(records)
        ]
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
    return build


qa_accuracy_semantic_robustness = _robustness_of("qa_accuracy")
summarization_accuracy_semantic_robustness = _robustness_of("summarization_accuracy")
classification_accuracy_semantic_robustness = _robustness_of("classification_accuracy")
