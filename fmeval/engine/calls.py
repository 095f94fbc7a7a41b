"""Model calls without the engine around them: one batch call with retries, the batches a runner
gets, and failures turned into answers. Ray workers use these too, so this module stays light
(no pydantic, no engine)."""
from __future__ import annotations

import logging
import random

from fmeval.batching import length_sorted_batches
from fmeval.errors import UserError
from fmeval.model_runners.base import ModelOutput, ModelRunner, RequestKind
from fmeval.retry import RequestStats, RetryableError, RetryPolicy
from fmeval.secrets import redact

logger = logging.getLogger(__name__)


def error_text(exc: BaseException) -> str:
    return redact(f"{type(exc).__name__}: {exc}")


def answer(outcome: ModelOutput | BaseException) -> ModelOutput:
    """A request's final outcome as an answer: a failure becomes an error, marked retryable or not."""
    if isinstance(outcome, BaseException):
        return ModelOutput(output=None, error=error_text(outcome), retryable=isinstance(outcome, RetryableError))
    return outcome


METHODS: dict[str, str] = {"generate": "predict", "log_probability": "log_probability",
                            "loglikelihood": "loglikelihood", "loglikelihood_rolling": "loglikelihood_rolling"}
"""The runner method that answers each kind of request."""
LENGTHS: dict[str, str] = {"generate": "prompt_lengths", "log_probability": "text_lengths",
                           "loglikelihood_rolling": "text_lengths"}
"""The runner's optional measure of each kind's requests (e.g. in tokens), for length-sorted batches."""


def call_in_batch(runner: ModelRunner, kind: RequestKind, items: list, *, retry: RetryPolicy,
                  stats: RequestStats, rng: random.Random) -> list[ModelOutput]:
    """One batch call (`predict`, `log_probability`, `loglikelihood` ...), retried while its error is
    transient (`RetryableError`, or what the runner's `should_retry` accepts); when it fails for good,
    every item gets the error. A `UserError` (e.g. no log-probabilities) stops the run."""

    def send() -> list[ModelOutput]:
        outputs = getattr(runner, METHODS[kind])(items)
        if len(outputs) != len(items):
            raise RuntimeError(f"the runner returned {len(outputs)} results for {len(items)} inputs")
        return outputs

    try:
        return retry.call(send, rng=rng, stats=stats, should_retry=runner.should_retry)
    except UserError:
        raise
    except Exception as exc:
        stats.failed += 1
        logger.warning("model call failed for %d inputs: %s", len(items), error_text(exc))
        return [answer(exc)] * len(items)


def batches(runner: ModelRunner, kind: RequestKind, texts: list) -> list[list[int]]:
    """Indices of `texts` in batches of the runner's size, sorted by the runner's own measure of
    length (tokens) when it has one: less padding."""
    lengths = (getattr(runner, LENGTHS[kind])(texts) if kind in LENGTHS
               else [len("".join(text)) for text in texts])
    if kind != "loglikelihood":
        return length_sorted_batches(range(len(texts)), runner.capabilities.batch_size, lengths.__getitem__)
    # Continuations of one context travel together: the runner can score them in one forward pass.
    by_context: dict[str, list[int]] = {}
    for index, (context, _) in enumerate(texts):
        by_context.setdefault(context, []).append(index)
    groups = list(by_context.values())
    return [[index for group in batch for index in groups[group]]
            for batch in length_sorted_batches(groups, runner.capabilities.batch_size,
                                               lambda group: max(lengths[i] for i in group))]
