"""The model runner contract: batch-first `predict`, optional `log_probability`, declared capabilities."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

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
    """What a runner can do; the engine plans its calls from this, never by probing for methods."""

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
    """How many requests may be in flight at once (runners with `single_requests`)."""
    cacheable: bool = True
    """Whether answers may be cached under `identity()`: false where the identity cannot
    tell two models apart (e.g. a Python function whose code may change between runs)."""
    single_requests: bool = False
    """The runner implements `agenerate(prompt)` (and `alog_probability(text)` where it scores
    texts), one request per call: the engine sends them concurrently instead of `predict` batches."""


class ModelRunner:
    """A model behind one batch-first interface: the base class of every runner.

    A runner implements `predict` and `identity`, and declares in `capabilities` what else it
    can do; the engine asks only for what is declared. Everything else has a default here:

    - `identity(kind)` names the model and every parameter that changes its answers to requests
      of that kind (never a credential): results and caches are keyed on it;
    - `predict` may raise: the engine retries what `should_retry` (or a `RetryableError`) calls
      transient, and records anything else at once as the error of the records concerned;
    - `log_probability(texts)`, with `capabilities.log_probability`;
    - `loglikelihood(pairs)` / `loglikelihood_rolling(texts)`, with `capabilities.loglikelihood`;
    - `agenerate(prompt)` / `alog_probability(text)`, with `capabilities.single_requests`;
    - `load()`, to load weights or check the configuration before a run writes anything;
    - `prompt_lengths(prompts)` / `text_lengths(texts)` (e.g. in tokens), to batch prompts of
      similar length together (characters by default);
    - `max_new_tokens`, the most tokens one generation may take (for the token rate limit);
    - `aclose()`, to release connections when the engine closes.
    """

    capabilities: Capabilities = Capabilities()
    max_new_tokens: int = 0
    """The most tokens one generation may take; 0 where it is not known."""

    def predict(self, prompts: Sequence[str]) -> list[ModelOutput]:
        """Generate one output per prompt, in the order of `prompts`."""
        raise NotImplementedError(f"{type(self).__name__} must implement predict(prompts)")

    def identity(self, kind: RequestKind = "generate") -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement identity(kind)")

    def log_probability(self, texts: Sequence[str]) -> list[ModelOutput]:
        """Each whole text's summed log-probability under the model (`ModelOutput.log_probability`)."""
        raise LogProbabilityUnsupported(f"{type(self).__name__} cannot give log-probabilities")

    def loglikelihood(self, pairs: Sequence[tuple[str, str]]) -> list[ModelOutput]:
        """With `capabilities.loglikelihood` (lm-evaluation-harness's request type): per (context,
        continuation), log p(continuation | context) summed over the continuation's tokens
        (`log_probability`), their count (`num_tokens`), and `is_greedy`."""
        raise LogProbabilityUnsupported(f"{type(self).__name__} cannot score continuations (loglikelihood)")

    def loglikelihood_rolling(self, texts: Sequence[str]) -> list[ModelOutput]:
        """With `capabilities.loglikelihood`: each text's summed log-probability over disjoint
        windows of the model's context, the first conditioned on the prefix (BOS) token, so that
        every token is scored exactly once."""
        raise LogProbabilityUnsupported(f"{type(self).__name__} cannot score texts in windows (loglikelihood_rolling)")

    async def agenerate(self, prompt: str) -> ModelOutput:
        """One generation per call (with `capabilities.single_requests`); raising
        `RetryableError` asks for a retry."""
        raise NotImplementedError(f"{type(self).__name__} declares no single requests")

    async def alog_probability(self, text: str) -> ModelOutput:
        """One text's log-probability per call (with `single_requests` and `log_probability`)."""
        raise LogProbabilityUnsupported(f"{type(self).__name__} cannot give log-probabilities")

    def load(self) -> None:
        """Load weights or check the configuration; nothing to do by default."""

    def prompt_lengths(self, prompts: Sequence[str]) -> list[int]:
        return [len(prompt) for prompt in prompts]

    def text_lengths(self, texts: Sequence[str]) -> list[int]:
        return [len(text) for text in texts]

    def should_retry(self, exc: BaseException) -> bool:
        """Whether an error `predict` (or `agenerate`) raised may pass if sent again, beyond a
        `RetryableError`; by default nothing else is."""
        return False

    async def aclose(self) -> None:
        """Release connections; nothing to do by default."""


class LogProbabilityUnsupported(UserError):
    """Raised by runners whose model cannot score texts (the user asked for what it cannot give)."""
