"""The engine: turns an algorithm's requests into batched, cached, concurrent, retried runner calls.

Algorithms never call a model. They hand the engine groups of `Request`s (one group per
record: its prompt, its perturbed prompts, two sentences to score ...) and get each group back
as soon as all of its answers are in (`complete`), so that a run can save every record the
moment it is done. The engine answers from the response store where it can, and sends the
rest to the runner in one of two ways:

- runners with `agenerate(prompt)` (hosted APIs) get concurrent requests under an adaptive
  concurrency limit and an optional rate limit, each retried with backoff, on an event loop in
  a background thread, so that requests keep flowing while finished records are scored;
- batch runners (`predict(prompts)`, local models) get length-sorted batches, each retried.

Every answer is saved in the response store as it arrives, before anything else happens to
it: a run killed at any moment has paid for nothing it must ask again. A request that still
fails is recorded as an error on its record; the run goes on.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import queue
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol, Sequence

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from fmeval.engine.cache import ResponseCache
from fmeval.engine.calls import answer, batches, call_in_batch
from fmeval.errors import UserError
from fmeval.model_runners.base import ModelOutput, ModelRunner, RequestKind
from fmeval.retry import AdaptiveLimiter, RateLimiter, RequestStats, RetryPolicy, run_with_retries

logger = logging.getLogger(__name__)

ERR_NO_MODEL = "this evaluation needs model outputs: give a model, or a model_output field in the dataset"
ERR_NO_LOG_PROBABILITY = "the model {identity} cannot give log-probabilities, which this evaluation needs"
ERR_NO_LOGLIKELIHOOD = (
    "the model {identity} cannot serve {kind} requests, which this evaluation needs: use a local Hugging Face "
    "model (hf:DIR or a hub id); hosted and OpenAI-compatible runners do not serve them yet"
)
_POLL_S = 0.2  # how often a consumer waiting on requests checks that they are still running


class EngineOptions(BaseModel):
    """How requests are sent. None of this changes answers, so none of it is in the cache key."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    max_concurrency: StrictInt | None = Field(default=None, ge=1)
    """Requests in flight at once (hosted models); the runner's own maximum when not set."""
    max_retries: StrictInt = Field(default=5, ge=0)
    """Retries of a failed request (or batch) before its records get an error."""
    retry_base_delay_s: float = Field(default=0.25, ge=0, strict=True)
    """First backoff delay; each retry waits up to twice as long as the one before (with jitter)."""
    requests_per_minute: float | None = Field(default=None, gt=0, strict=True)
    """A rate limit on requests (hosted models)."""
    tokens_per_minute: float | None = Field(default=None, gt=0, strict=True)
    """A rate limit on tokens, estimated as prompt characters / 4 plus max_new_tokens."""


@dataclass(frozen=True)
class Request:
    """One thing an algorithm needs from the model."""

    text: str
    kind: RequestKind = "generate"
    cached: bool = True
    """False asks the model afresh (e.g. to see whether it answers the same twice); the answer is not saved."""
    continuation: str | None = None
    """For `loglikelihood` requests: the text scored after `text` (the context)."""

    @property
    def payload(self) -> str | tuple[str, str]:
        """What the runner is given: the text, or (context, continuation)."""
        return (self.text, self.continuation or "") if self.kind == "loglikelihood" else self.text


Completed = list[tuple[int, list[ModelOutput]]]
"""Groups that have all their answers: (group index, the answers in request order)."""
Save = Callable[[list[tuple[int, ModelOutput]]], None]


class Backend(Protocol):
    """Where model calls run when not in this process (e.g. `fmeval.engine.ray_backend.RayBackend`).
    The engine keeps the cache and hands the backend only what must be asked."""

    def send(self, runner: ModelRunner, kind: RequestKind, texts: list[str], save: Save | None,
             stats: RequestStats) -> Iterator[list[tuple[int, ModelOutput]]]:
        """Answers to `texts` by index, in batches as they arrive, each saved before it is yielded."""
        ...

    def report(self) -> dict[str, Any]:
        ...

    def close(self) -> None:
        ...


class _LoopThread:
    """An asyncio event loop running in a daemon thread, for concurrent requests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fmeval-requests", daemon=True)
        self._thread.start()

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def close(self, final: Any = None) -> None:
        if final is not None:
            try:
                self.run(final)
            except Exception as exc:  # closing connections must not hide what happened before
                logger.debug("closing the runner failed: %s", exc)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


class Engine:
    """Cached, batched and concurrent access to one model runner (or none, when every record
    carries its model output). Use it as a context manager, or call `close()`.

    `store` keeps every answer as it arrives: the shared response cache (for runners whose
    answers may be shared), or a run's own journal. `backend` sends what the store cannot answer
    elsewhere (e.g. to Ray workers); its owner closes it.
    """

    def __init__(
        self,
        runner: ModelRunner | None,
        *,
        options: EngineOptions | None = None,
        store: ResponseCache | None = None,
        seed: int = 0,
        backend: Backend | None = None,
    ):
        self.runner = runner
        self.backend = backend
        self.options = options or EngineOptions()
        self.store = store
        self._retry = RetryPolicy(max_retries=self.options.max_retries, base_delay_s=self.options.retry_base_delay_s)
        self._rng = random.Random(seed)
        self._seed = seed
        self._loop: _LoopThread | None = None
        self._limiter: AdaptiveLimiter | None = None
        self._rate: RateLimiter | None = None
        self.stats = RequestStats()
        self.model_seconds = 0.0
        self.cache_hits = self.cache_misses = 0

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._loop is not None:
            self._loop.close(self.runner.aclose() if self.runner is not None else None)
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
        if self.backend is not None:
            report.update(self.backend.report())
        return report

    def _require_runner(self, kind: RequestKind) -> ModelRunner:
        if self.runner is None:
            raise UserError(ERR_NO_MODEL)
        if kind == "log_probability" and not self.runner.capabilities.log_probability:
            raise UserError(ERR_NO_LOG_PROBABILITY.format(identity=self.runner.identity(kind)))
        if kind.startswith("loglikelihood") and not self.runner.capabilities.loglikelihood:
            raise UserError(ERR_NO_LOGLIKELIHOOD.format(identity=self.runner.identity(kind), kind=kind))
        return self.runner

    # -- what algorithms call ----------------------------------------------------------------------
    def complete(self, groups: Sequence[Sequence[Request]]) -> Iterator[Completed]:
        """Answer every request; yield each group as soon as all of its answers are in.

        Groups come back in completion order (cache hits first), each exactly once. A request
        that keeps failing comes back as a `ModelOutput` with `error` set.
        """
        results: list[list[ModelOutput | None]] = [[None] * len(group) for group in groups]
        remaining = [len(group) for group in groups]

        def settle(slots: list[tuple[int, int]], answers: list[tuple[int, ModelOutput]]) -> Completed:
            finished = []
            for slot, reply in answers:
                group, position = slots[slot]
                results[group][position] = reply
                remaining[group] -= 1
                if remaining[group] == 0:
                    finished.append((group, results[group]))
            return finished  # type: ignore[return-value]

        empty = [(index, []) for index, group in enumerate(groups) if not group]
        if empty:
            yield empty  # type: ignore[misc]
        for kind in ("generate", "log_probability", "loglikelihood", "loglikelihood_rolling"):
            slots = [(g, p) for g, group in enumerate(groups) for p, request in enumerate(group) if request.kind == kind]
            if not slots:
                continue
            runner = self._require_runner(kind)  # type: ignore[arg-type]
            requests = [groups[g][p] for g, p in slots]
            store = self.store
            keys: list[str | None] = [None] * len(slots)
            if store is not None:
                identity = runner.identity(kind)  # type: ignore[arg-type]
                keys = [ResponseCache.key(identity, kind, r.payload) if r.cached else None for r in requests]
                cached = [key for key in keys if key is not None]
                found = store.get_many(cached)
                self.cache_hits += len(found)
                self.cache_misses += len(cached) - len(found)
                hits = [(slot, ModelOutput(**found[key])) for slot, key in enumerate(keys) if key in found]
                finished = settle(slots, hits)
                if finished:
                    yield finished
            missing = [slot for slot in range(len(slots)) if results[slots[slot][0]][slots[slot][1]] is None]
            if not missing:
                continue

            save = _saver(store, [keys[slot] for slot in missing]) if store is not None else None
            for answers in self._send(runner, kind, [requests[s].payload for s in missing], save):  # type: ignore[arg-type]
                finished = settle(slots, [(missing[i], answer) for i, answer in answers])
                if finished:
                    yield finished

    def generate(self, prompts: Sequence[str], *, use_cache: bool = True) -> list[ModelOutput]:
        """One output per prompt, in order. `use_cache=False` asks the model afresh."""
        return self._collect([[Request(prompt, cached=use_cache)] for prompt in prompts])

    def log_probability(self, texts: Sequence[str]) -> list[ModelOutput]:
        """Each text's summed log-probability (in `ModelOutput.log_probability`), in order."""
        return self._collect([[Request(text, kind="log_probability")] for text in texts])

    def _collect(self, groups: list[list[Request]]) -> list[ModelOutput]:
        outputs: list[ModelOutput | None] = [None] * len(groups)
        for finished in self.complete(groups):
            for index, answers in finished:
                outputs[index] = answers[0]
        return outputs  # type: ignore[return-value]

    # -- sending -----------------------------------------------------------------------------------
    def _send(
        self, runner: ModelRunner, kind: RequestKind, texts: list[str], save: Save | None
    ) -> Iterator[list[tuple[int, ModelOutput]]]:
        """Answers to `texts` by index, in batches as they arrive; each batch is saved before it is yielded."""
        if self.backend is not None:
            stream = self.backend.send(runner, kind, texts, save, self.stats)
        elif runner.capabilities.single_requests and kind in ("generate", "log_probability"):
            single = runner.agenerate if kind == "generate" else runner.alog_probability
            stream = self._send_concurrently(runner, single, texts, save)
        else:
            stream = self._send_in_batches(runner, kind, texts, save)
        started = time.perf_counter()
        for answers in stream:
            self.model_seconds += time.perf_counter() - started
            yield answers
            started = time.perf_counter()
        self.model_seconds += time.perf_counter() - started

    def _send_concurrently(
        self, runner: ModelRunner, single: Callable[[str], Any], texts: list[str], save: Save | None
    ) -> Iterator[list[tuple[int, ModelOutput]]]:
        if self._loop is None:
            self._loop = _LoopThread()
        maximum = self.options.max_concurrency or runner.capabilities.max_concurrency
        if self._limiter is None:
            self._limiter, self._rate = self._loop.run(_make_limits(maximum, self.options))
        arrived: queue.SimpleQueue[tuple[int, ModelOutput]] = queue.SimpleQueue()

        async def on_result(index: int, outcome: Any) -> None:
            result = answer(outcome)
            if save is not None and result.error is None:
                await asyncio.to_thread(save, [(index, result)])
            arrived.put((index, result))

        extra_tokens = runner.max_new_tokens or 0
        future = asyncio.run_coroutine_threadsafe(
            run_with_retries(
                [functools.partial(single, text) for text in texts],
                limiter=self._limiter,
                retry=self._retry,
                rate=self._rate,
                costs=[len(text) // 4 + extra_tokens for text in texts],
                stats=self.stats,
                on_result=on_result,
                should_retry=runner.should_retry,
                seed=self._seed,
            ),
            self._loop.loop,
        )
        received = 0
        try:
            while received < len(texts):
                try:
                    batch = [arrived.get(timeout=_POLL_S)]
                except queue.Empty:
                    if future.done():
                        future.result()  # re-raises what stopped the requests
                        raise RuntimeError("the requests ended before every answer arrived")
                    continue
                while True:
                    try:
                        batch.append(arrived.get_nowait())
                    except queue.Empty:
                        break
                received += len(batch)
                yield batch
        finally:
            if not future.done():
                future.cancel()  # the consumer stopped early (an interrupt, an error while scoring)

    def _send_in_batches(
        self, runner: ModelRunner, kind: RequestKind, texts: list[str], save: Save | None
    ) -> Iterator[list[tuple[int, ModelOutput]]]:
        for batch in batches(runner, kind, texts):
            outputs = call_in_batch(runner, kind, [texts[i] for i in batch], retry=self._retry, stats=self.stats,
                                    rng=self._rng)
            answers = list(zip(batch, outputs))
            if save is not None:
                save(answers)
            yield answers



def _saver(store: ResponseCache, keys: list[str | None]) -> Save:
    """Saves answers (by their index into `keys`) in the store; errors and uncached requests are not saved."""

    def save(answers: list[tuple[int, ModelOutput]]) -> None:
        store.put_many(
            (keys[i], {"output": a.output, "log_probability": a.log_probability, "num_tokens": a.num_tokens,
                       **({"is_greedy": a.is_greedy} if a.is_greedy is not None else {})})
            for i, a in answers
            if a.error is None and keys[i] is not None
        )

    return save


async def _make_limits(maximum: int, options: EngineOptions) -> tuple[AdaptiveLimiter, RateLimiter | None]:
    """Made inside the loop that will use them."""
    rate = None
    if options.requests_per_minute or options.tokens_per_minute:
        rate = RateLimiter(requests_per_minute=options.requests_per_minute, tokens_per_minute=options.tokens_per_minute)
    return AdaptiveLimiter(maximum), rate
