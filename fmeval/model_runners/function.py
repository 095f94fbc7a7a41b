"""Wrap any Python callable as a model runner."""
from __future__ import annotations

from typing import Any, Callable, Sequence

from fmeval.model_runners.base import Capabilities, LogProbabilityUnsupported, ModelOutput, ModelRunner, RequestKind

ERR_BAD_RETURN = (
    "the model function returned {got!r}; it must return a str, a ModelOutput or a (str, log_probability) tuple"
)
ERR_BATCH_LENGTH = "the batched model function returned {got} outputs for {expected} prompts"


def _to_output(value: Any) -> ModelOutput:
    if isinstance(value, ModelOutput):
        return value
    if isinstance(value, str):
        return ModelOutput(output=value)
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        return ModelOutput(output=value[0], log_probability=None if value[1] is None else float(value[1]))
    raise TypeError(ERR_BAD_RETURN.format(got=value))


class FunctionRunner(ModelRunner):
    """Runs `fn` on prompts.

    With `batched=False` (default) `fn(prompt) -> str`; with `batched=True`
    `fn(prompts) -> list[str]`. Items may also be `ModelOutput` or `(text, log_probability)`.
    Exceptions propagate: the engine retries the transient ones (`RetryableError`, and what
    `should_retry` accepts: by default connection errors and timeouts), then records the error
    per record; any other error (a bug in `fn`, a `TypeError`) is recorded at once.
    Answers are not cached unless `cacheable=True`, since the function's name cannot tell
    whether its code changed.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        batched: bool = False,
        batch_size: int = 32,
        log_probability_fn: Callable[[Sequence[str]], Sequence[float]] | None = None,
        parameters: dict[str, Any] | None = None,
        cacheable: bool = False,
        should_retry: Callable[[BaseException], bool] | None = None,
    ):
        if not callable(fn):
            raise TypeError(f"FunctionRunner needs a callable, got {type(fn).__name__}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self._fn = fn
        self._batched = batched
        self._log_probability_fn = log_probability_fn
        self._name = name or f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
        self._parameters = dict(parameters or {})
        self._should_retry = should_retry
        self.capabilities = Capabilities(
            log_probability=log_probability_fn is not None,
            batch_size=batch_size if batched else 1,
            cacheable=cacheable,
        )

    def identity(self, kind: RequestKind = "generate") -> dict[str, Any]:
        return {"type": "function", "model": self._name, "parameters": self._parameters}

    def should_retry(self, exc: BaseException) -> bool:
        if self._should_retry is not None:
            return bool(self._should_retry(exc))
        return isinstance(exc, (ConnectionError, TimeoutError))

    def predict(self, prompts: Sequence[str]) -> list[ModelOutput]:
        if not self._batched:
            return [_to_output(self._fn(prompt)) for prompt in prompts]
        values = list(self._fn(list(prompts)))
        if len(values) != len(prompts):
            raise ValueError(ERR_BATCH_LENGTH.format(got=len(values), expected=len(prompts)))
        return [_to_output(value) for value in values]

    def log_probability(self, texts: Sequence[str]) -> list[ModelOutput]:
        if self._log_probability_fn is None:
            raise LogProbabilityUnsupported(f"{self._name} was given no log_probability_fn")
        return [ModelOutput(output=None, log_probability=float(value)) for value in self._log_probability_fn(list(texts))]
