"""The model runner contract: batch-first `predict`, optional `log_probability`, declared capabilities."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence, runtime_checkable

from fmeval.errors import UserError


@dataclass(frozen=True)
class ModelOutput:
    """One generation. `error` is set, and `output` is None, when the call for this prompt failed."""

    output: str | None
    log_probability: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class Capabilities:
    """What a runner can do; the engine plans its calls from this."""

    log_probability: bool = False
    """`log_probability(texts)` is implemented."""
    chat: bool = False
    """Prompts are sent as chat messages (a chat template or a chat API)."""
    batch_size: int = 1
    """How many prompts one `predict` call should carry."""
    max_concurrency: int = 1
    """How many requests may be in flight at once (runners with `agenerate`)."""
    cacheable: bool = True
    """Whether answers may be cached under `identity()`: false where the identity cannot
    tell two models apart (e.g. a Python function whose code may change between runs)."""


@runtime_checkable
class ModelRunner(Protocol):
    """A model behind one batch-first interface.

    `identity()` names the model and every parameter that changes its answers (never a
    credential): results and caches are keyed on it. `predict` may raise: the engine retries
    and then records the error on the records concerned.

    Optional methods the engine uses when present:
    - `prompt_lengths(prompts) -> list[int]` and `text_lengths(texts) -> list[int]` (e.g. in
      tokens), to batch prompts (and texts to score) of similar length together; without them
      the engine sorts by characters;
    - `async agenerate(prompt) -> ModelOutput` and `async alog_probability(text) -> float`,
      one request each, for services that take one prompt per call: the engine then sends
      requests concurrently (raising `RetryableError` asks for a retry);
    - `async aclose()`, to release connections when the engine closes.
    """

    capabilities: Capabilities

    def predict(self, prompts: Sequence[str]) -> list[ModelOutput]:
        """Generate one output per prompt, in the order of `prompts`."""
        ...

    def log_probability(self, texts: Sequence[str]) -> list[float]:
        """The summed log-probability of each whole text under the model."""
        ...

    def identity(self) -> dict[str, Any]:
        ...


class LogProbabilityUnsupported(UserError):
    """Raised by runners whose model cannot score texts (the user asked for what it cannot give)."""
