"""The engine: turns an algorithm's requests into batched, cached, concurrent, retried runner calls.

Algorithms never call a model. They ask the engine to `generate` outputs for prompts or to
score texts with `log_probability`. The engine answers from the response cache where it
can, and sends the rest to the runner in one of two ways:

- runners with `agenerate(prompt)` (hosted APIs) get concurrent requests under an adaptive
  concurrency limit and an optional rate limit, each retried with backoff;
- batch runners (`predict(prompts)`, local models) get length-sorted batches, each retried.

A request that still fails is recorded as an error on its record; the run goes on.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from fmeval.engine.cache import ResponseCache
from fmeval.batching import length_sorted_batches
from fmeval.retry import AdaptiveLimiter, RateLimiter, RequestStats, RetryPolicy, run_with_retries
from fmeval.errors import UserError
from fmeval.model_runners.base import ModelOutput, ModelRunner
from fmeval.secrets import redact

logger = logging.getLogger(__name__)

ERR_NO_MODEL = "this evaluation needs model outputs: give a model, or a model_output field in the dataset"
ERR_NO_LOG_PROBABILITY = "the model {identity} cannot give log-probabilities, which this evaluation needs"


@dataclass(frozen=True, kw_only=True)
class EngineOptions:
    """How requests are sent. None of this changes answers, so none of it is in the cache key."""

    max_retries: int = 5
    """Retries of a failed request (or batch) before its records get an error."""
    retry_base_delay_s: float = 0.25
    max_concurrency: int | None = None
    """Requests in flight at once; the runner's declared maximum when None."""
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    """Estimated as characters / 4 of the prompt plus the runner's max_new_tokens."""

    def __post_init__(self) -> None:
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise UserError(f"max_concurrency must be >= 1, got {self.max_concurrency}")
        if self.max_retries < 0:
            raise UserError(f"max_retries must be >= 0, got {self.max_retries}")
        for name in ("requests_per_minute", "tokens_per_minute"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise UserError(f"{name} must be > 0, got {value}")


def _error_text(exc: BaseException) -> str:
    return redact(f"{type(exc).__name__}: {exc}")


class Engine:
    """Cached, batched and concurrent access to one model runner (or none, when every record
    carries its model output). Use it as a context manager, or call `close()`."""

    def __init__(
        self,
        runner: ModelRunner | None,
        *,
        options: EngineOptions | None = None,
        cache: ResponseCache | None = None,
        on_progress: Callable[[int], None] | None = None,
        seed: int = 0,
    ):
        self.runner = runner
        self.options = options or EngineOptions()
        self.cache = cache
        self._on_progress = on_progress or (lambda completed: None)
        self._retry = RetryPolicy(max_retries=self.options.max_retries, base_delay_s=self.options.retry_base_delay_s)
        self._rng = random.Random(seed)
        self._seed = seed
        self._loop: asyncio.AbstractEventLoop | None = None
        self._limiter: AdaptiveLimiter | None = None
        self.stats = RequestStats()
        self.model_seconds = 0.0
        self.cache_hits = self.cache_misses = 0

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._loop is not None:
            closer = getattr(self.runner, "aclose", None)
            if closer is not None:
                self._loop.run_until_complete(closer())
            self._loop.close()
            self._loop = None

    def report(self) -> dict[str, Any]:
        """Counts for the run summary."""
        report: dict[str, Any] = {
            "requests": self.stats.requests,
            "retries": self.stats.retries,
            "throttled": self.stats.throttled,
            "failed_requests": self.stats.failed,
            "cache_hits": self.cache_hits,
            "cache_misses": self.cache_misses,
        }
        if self._limiter is not None:
            report["max_concurrency"] = self._limiter.maximum
            report["lowest_concurrency"] = self._limiter.lowest_limit
        return report

    def _require_runner(self) -> ModelRunner:
        if self.runner is None:
            raise UserError(ERR_NO_MODEL)
        return self.runner

    # -- the two requests algorithms make ------------------------------------------------------
    def generate(self, prompts: Sequence[str], *, use_cache: bool = True) -> list[ModelOutput]:
        """One output per prompt, in order. A request that keeps failing leaves an error on its output.
        `use_cache=False` asks the model afresh (e.g. to see whether it answers the same twice)."""
        runner = self._require_runner()
        send = functools.partial(self._send, runner, "generate")
        return self._through_cache("generate", prompts, send) if use_cache else send(prompts)

    def log_probability(self, texts: Sequence[str]) -> list[ModelOutput]:
        """The summed log-probability of each text (in `ModelOutput.log_probability`), in order."""
        runner = self._require_runner()
        if not runner.capabilities.log_probability:
            raise UserError(ERR_NO_LOG_PROBABILITY.format(identity=runner.identity()))
        return self._through_cache("log_probability", texts, functools.partial(self._send, runner, "log_probability"))

    # -- cache -------------------------------------------------------------------------------------
    def _through_cache(
        self, kind: str, items: Sequence[str], send: Callable[[Sequence[str]], list[ModelOutput]]
    ) -> list[ModelOutput]:
        runner = self._require_runner()
        results: list[ModelOutput | None] = [None] * len(items)
        use_cache = self.cache is not None and runner.capabilities.cacheable
        keys: list[str] = []
        if use_cache:
            identity = runner.identity()
            keys = [ResponseCache.key(identity, kind, item) for item in items]
            found = self.cache.get_many(keys)  # type: ignore[union-attr]
            for index, key in enumerate(keys):
                if key in found:
                    results[index] = ModelOutput(**found[key])
            hits = sum(result is not None for result in results)
            self.cache_hits += hits
            self.cache_misses += len(items) - hits
            self._on_progress(hits)
        missing = [i for i, result in enumerate(results) if result is None]
        if missing:
            for index, result in zip(missing, send([items[i] for i in missing])):
                results[index] = result
            if use_cache:
                self.cache.put_many(  # type: ignore[union-attr]
                    (keys[i], {"output": results[i].output, "log_probability": results[i].log_probability})
                    for i in missing
                    if results[i].error is None  # errors are never cached
                )
        return results  # type: ignore[return-value]

    # -- sending -----------------------------------------------------------------------------------
    def _send(self, runner: ModelRunner, kind: str, items: Sequence[str]) -> list[ModelOutput]:
        started = time.perf_counter()
        try:
            single = getattr(runner, "agenerate" if kind == "generate" else "alog_probability", None)
            if single is not None:
                return self._send_concurrently(runner, kind, single, items)
            return self._send_in_batches(runner, kind, items)
        finally:
            self.model_seconds += time.perf_counter() - started

    def _send_concurrently(
        self, runner: ModelRunner, kind: str, single: Callable[[str], Any], items: Sequence[str]
    ) -> list[ModelOutput]:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        maximum = self.options.max_concurrency or runner.capabilities.max_concurrency
        if self._limiter is None:
            self._limiter = self._loop.run_until_complete(_make_limiter(maximum))
        rate = None
        if self.options.requests_per_minute or self.options.tokens_per_minute:
            rate = RateLimiter(
                requests_per_minute=self.options.requests_per_minute, tokens_per_minute=self.options.tokens_per_minute
            )
        extra_tokens = getattr(runner, "max_new_tokens", 0) or 0
        outcomes = self._loop.run_until_complete(
            run_with_retries(
                [functools.partial(single, item) for item in items],
                limiter=self._limiter,
                retry=self._retry,
                rate=rate,
                costs=[len(item) // 4 + extra_tokens for item in items],
                stats=self.stats,
                on_done=self._on_progress,
                seed=self._seed,
            )
        )
        results = []
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                results.append(ModelOutput(output=None, error=_error_text(outcome)))
            elif kind == "generate":
                results.append(outcome)
            else:
                results.append(ModelOutput(output=None, log_probability=float(outcome)))
        return results

    def _send_in_batches(self, runner: ModelRunner, kind: str, items: Sequence[str]) -> list[ModelOutput]:
        results: list[ModelOutput | None] = [None] * len(items)
        # Sort by the runner's own measure of length (tokens) when it has one: less padding.
        measure = getattr(runner, "prompt_lengths" if kind == "generate" else "text_lengths", None)
        lengths = measure(items) if measure is not None else [len(item) for item in items]
        for batch in length_sorted_batches(range(len(items)), runner.capabilities.batch_size, lengths.__getitem__):
            batch_items = [items[i] for i in batch]
            for index, result in zip(batch, self._batch_with_retries(runner, kind, batch_items)):
                results[index] = result
            self._on_progress(len(batch))
        return results  # type: ignore[return-value]

    def _batch_with_retries(self, runner: ModelRunner, kind: str, items: list[str]) -> list[ModelOutput]:
        attempt = 0
        while True:
            self.stats.requests += 1
            try:
                if kind == "generate":
                    outputs = runner.predict(items)
                else:
                    outputs = [ModelOutput(output=None, log_probability=v) for v in runner.log_probability(items)]
                if len(outputs) != len(items):
                    raise RuntimeError(f"the runner returned {len(outputs)} results for {len(items)} inputs")
                return outputs
            except Exception as exc:
                error = _error_text(exc)
                if attempt == self._retry.max_retries:
                    self.stats.failed += 1
                    logger.warning("model call failed for %d inputs after %d attempts: %s", len(items), attempt + 1, error)
                    return [ModelOutput(output=None, error=error) for _ in items]
            self.stats.retries += 1
            time.sleep(self._retry.delay(attempt, None, self._rng))
            attempt += 1


async def _make_limiter(maximum: int) -> AdaptiveLimiter:
    return AdaptiveLimiter(maximum)  # made inside the loop that will use it
