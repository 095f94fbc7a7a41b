"""The model runner contract: batch-first `predict`, optional `log_probability`, declared capabilities."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol, Sequence, runtime_checkable

from fmeval.errors import UserError

RequestKind = Literal["generate", "log_probability", "loglikelihood", "loglikelihood_rolling"]


@dataclass(frozen=True)
class ModelOutput:
    """One answer: a generation, or a text's log-probability. On failure `error` says why."""

    output: str | None
    log_probability: float | None = None
    """The summed log-probability (of the generated text, or of the scored text)."""
    num_tokens: int | None = None
    """How many tokens `log_probability` sums over, where the runner knows."""
    error: str | None = None
    retryable: bool = False
    """The error may go away if the request is sent again later (throttling, 5xx, timeouts, network)."""
    finish_reason: str | None = None
    """Why a generation ended, where the runner knows: "stop" (the model ended it) or "length" (cut at max_new_tokens)."""
    is_greedy: bool | None = None
    """For `loglikelihood` requests: whether greedy decoding from the context yields exactly the continuation."""


@dataclass(frozen=True)
class Capabilities:
    """What a runner can do; the engine plans its calls from this."""

    log_probability: bool = False
    """`log_probability(texts)` is implemented."""
    loglikelihood: bool = False
    """`loglikelihood(pairs)` and `loglikelihood_rolling(texts)` are implemented (lm-evaluation-harness's
    request types: a continuation's log-probability after a context, and a whole text's over rolling windows)."""
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

    `identity(kind)` names the model and every parameter that changes its answers to requests
    of that kind (never a credential): results and caches are keyed on it. `predict` may raise:
    the engine retries and then records the error on the records concerned.

    Optional methods the engine and the run use when present:
    - `load()`, to load weights or check the configuration before a run writes anything;
    - `prompt_lengths(prompts) -> list[int]` and `text_lengths(texts) -> list[int]` (e.g. in
      tokens), to batch prompts (and texts to score) of similar length together; without them
      the engine sorts by characters;
    - `async agenerate(prompt) -> ModelOutput` and `async alog_probability(text) -> ModelOutput`,
      one request each, for services that take one prompt per call: the engine then sends
      requests concurrently (raising `RetryableError` asks for a retry);
    - `async aclose()`, to release connections when the engine closes.
    """

    capabilities: Capabilities

    def predict(self, prompts: Sequence[str]) -> list[ModelOutput]:
        """Generate one output per prompt, in the order of `prompts`."""
        ...

    def log_probability(self, texts: Sequence[str]) -> list[ModelOutput]:
        """Each whole text's summed log-probability under the model (`ModelOutput.log_probability`)."""
        ...

    def identity(self, kind: RequestKind = "generate") -> dict[str, Any]:
        ...


class LoglikelihoodRunner(Protocol):
    """What a runner with `capabilities.loglikelihood` adds (lm-evaluation-harness's request types)."""

    def loglikelihood(self, pairs: Sequence[tuple[str, str]]) -> list[ModelOutput]:
        """Per (context, continuation): log p(continuation | context) summed over the continuation's
        tokens (`log_probability`), their count (`num_tokens`), and `is_greedy`."""
        ...

    def loglikelihood_rolling(self, texts: Sequence[str]) -> list[ModelOutput]:
        """Each text's summed log-probability over disjoint windows of the model's context, the
        first conditioned on the prefix (BOS) token: every token is scored exactly once."""
        ...


class LogProbabilityUnsupported(UserError):
    """Raised by runners whose model cannot score texts (the user asked for what it cannot give)."""
