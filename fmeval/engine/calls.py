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


def call_in_batch(runner: ModelRunner, kind: RequestKind, items: list[str], *, retry: RetryPolicy,
                  stats: RequestStats, rng: random.Random) -> list[ModelOutput]:
    """One batch call (`predict` or `log_probability`), retried while its error is transient
    (`RetryableError`, or what the runner's `should_retry` accepts); when it fails for good, every
    item gets the error. A `UserError` (e.g. no log-probabilities) stops the run."""

    def send() -> list[ModelOutput]:
        outputs = runner.predict(items) if kind == "generate" else runner.log_probability(items)
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


def batches(runner: ModelRunner, kind: RequestKind, texts: list[str]) -> list[list[int]]:
    """Indices of `texts` in batches of the runner's size, sorted by the runner's own measure of
    length (tokens) when it has one: less padding."""
    lengths = runner.prompt_lengths(texts) if kind == "generate" else runner.text_lengths(texts)
    return length_sorted_batches(range(len(texts)), runner.capabilities.batch_size, lengths.__getitem__)
