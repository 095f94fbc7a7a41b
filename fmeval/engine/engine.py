"""The engine: turns an algorithm's requests into batched runner calls.

Algorithms never call a model. They ask the engine to `generate` outputs for prompts or to
score texts with `log_probability`; the engine batches (length-sorted, order restored),
records failures per prompt, and reports progress. Concurrency, retries, the response
cache and resume are added behind these two methods.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Sequence

from fmeval.engine.collator import length_sorted_batches
from fmeval.errors import UserError
from fmeval.model_runners.base import ModelOutput, ModelRunner

logger = logging.getLogger(__name__)

ERR_NO_MODEL = "this evaluation needs model outputs: give a model, or a model_output field in the dataset"
ERR_NO_LOG_PROBABILITY = "the model {identity} cannot give log-probabilities, which this evaluation needs"


class Engine:
    """Batched access to one model runner (or none, when every record carries its model output)."""

    def __init__(self, runner: ModelRunner | None, *, on_progress: Callable[[int], None] | None = None):
        self.runner = runner
        self._on_progress = on_progress or (lambda completed: None)
        self.model_seconds = 0.0
        self.calls = 0

    def _require_runner(self) -> ModelRunner:
        if self.runner is None:
            raise UserError(ERR_NO_MODEL)
        return self.runner

    def generate(self, prompts: Sequence[str]) -> list[ModelOutput]:
        """One output per prompt, in order. A failed call leaves an error on its prompts' outputs."""
        runner = self._require_runner()
        outputs: list[ModelOutput | None] = [None] * len(prompts)
        # Sort by the runner's own measure of length (tokens) when it has one: less padding.
        measure = getattr(runner, "prompt_lengths", None)
        lengths = measure(prompts) if measure is not None else [len(prompt) for prompt in prompts]
        for batch in length_sorted_batches(range(len(prompts)), runner.capabilities.batch_size, lengths.__getitem__):
            batch_prompts = [prompts[i] for i in batch]
            started = time.perf_counter()
            try:
                results = runner.predict(batch_prompts)
                if len(results) != len(batch):
                    raise RuntimeError(f"the runner returned {len(results)} outputs for {len(batch)} prompts")
            except Exception as exc:  # recorded per record; the run goes on
                logger.warning("model call failed for %d prompts: %s", len(batch), exc)
                results = [ModelOutput(output=None, error=f"{type(exc).__name__}: {exc}")] * len(batch)
            self.model_seconds += time.perf_counter() - started
            self.calls += 1
            for index, result in zip(batch, results):
                outputs[index] = result
            self._on_progress(len(batch))
        return outputs  # type: ignore[return-value]

    def log_probability(self, texts: Sequence[str]) -> list[float]:
        """The summed log-probability of each text under the model, in order."""
        runner = self._require_runner()
        if not runner.capabilities.log_probability:
            raise UserError(ERR_NO_LOG_PROBABILITY.format(identity=runner.identity()))
        started = time.perf_counter()
        values = runner.log_probability(texts)
        self.model_seconds += time.perf_counter() - started
        self.calls += 1
        self._on_progress(len(texts))
        return values
