"""OpenAI-compatible servers (OpenAI, vLLM, Ollama, llama.cpp, TGI): chat and completions APIs.

The API key is read from an environment variable whose *name* is configured; the key itself
is never stored, and it is masked in every error message (see `fmeval.secrets`).
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Literal, Sequence

from fmeval.retry import RetryableError
from fmeval.errors import UserError
from fmeval.model_runners.base import Capabilities, ModelOutput, ModelRunner, RequestKind
from fmeval.model_runners.http import HttpPoster, is_loopback, public_url, run_directly
from fmeval.secrets import redact, register_authorization

logger = logging.getLogger(__name__)

JSON_SNIPPET = 80
ERR_NO_KEY = (
    "the environment variable {env} (--api-key-env) is not set, so requests to {url} would carry no API key; "
    "set it, or pass --api-key-env '' for a server that needs none"
)


def _dig(payload: Any, *path: Any) -> Any:
    """payload[path[0]][path[1]]...; a missing step is a malformed response, worth a retry."""
    value = payload
    for step in path:
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError):
            where = "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in path).lstrip(".")
            raise RetryableError(f"malformed response: no {where}") from None
    return value


class OpenAICompatibleRunner(ModelRunner):
    """One request per prompt; the engine sends them concurrently (`max_concurrency`).

    `seed` is sent only when sampling (`temperature > 0`). `api_key_env` names the variable
    holding the key; None or "" sends none.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str = "https://api.openai.com/v1",
        api: Literal["chat", "completions"] = "chat",
        api_key_env: str | None = "OPENAI_API_KEY",
        system_prompt: str | None = None,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop: Sequence[str] | None = None,
        output_log_probability: bool = False,
        extra_body: dict[str, Any] | None = None,
        timeout_s: float = 60.0,
        max_concurrency: int = 16,
    ):
        if api not in ("chat", "completions"):
            raise UserError(f"api must be 'chat' or 'completions', got {api!r}")
        if not base_url.startswith(("http://", "https://")):
            raise UserError(f"base_url must be an http(s) URL, got {public_url(base_url)!r}")
        if max_new_tokens < 1 or timeout_s <= 0 or max_concurrency < 1:
            raise UserError("max_new_tokens and max_concurrency must be >= 1, and timeout_s > 0")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.api = api
        self.api_key_env = api_key_env
        self.system_prompt = system_prompt
        self.max_new_tokens = max_new_tokens
        self.temperature, self.top_p, self.seed = temperature, top_p, seed
        self.stop = list(stop) if stop else None
        self.output_log_probability = output_log_probability
        self.extra_body = dict(extra_body or {})
        self.timeout_s = timeout_s
        self.capabilities = Capabilities(log_probability=True, chat=api == "chat", max_concurrency=max_concurrency,
                                         single_requests=True)
        self._http = HttpPoster(max_concurrency=max_concurrency, timeout_s=timeout_s, headers=self._headers)

    def identity(self, kind: RequestKind = "generate") -> dict[str, Any]:
        identity: dict[str, Any] = {"type": "openai_compatible", "base_url": public_url(self.base_url),
                                    "model": self.model}
        if kind == "generate":
            identity.update(api=self.api, system_prompt=self.system_prompt, max_new_tokens=self.max_new_tokens,
                            temperature=self.temperature, top_p=self.top_p, stop=self.stop,
                            extra_body=self.extra_body)
            if self._sampling:
                identity["seed"] = self.seed
        return identity

    @property
    def _sampling(self) -> bool:
        return self.temperature > 0

    def load(self) -> None:
        """Check the API key's variable before a run starts: a missing key is refused for remote
        servers (every request would fail) and only warned about on loopback (local servers)."""
        if self.api_key_env and not os.environ.get(self.api_key_env):
            message = ERR_NO_KEY.format(env=self.api_key_env, url=public_url(self.base_url))
            if not is_loopback(self.base_url):
                raise UserError(message)
            logger.warning(message)

    # -- HTTP ----------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if key:
                headers["Authorization"] = f"Bearer {key}"
                register_authorization(headers["Authorization"])
        return headers

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        raw = await self._http.post(f"{self.base_url}/{path}", json.dumps(body))
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            text = raw.decode("utf-8", errors="replace")
            raise RetryableError(f"malformed response: not JSON: {redact(text)[:JSON_SNIPPET]!r}") from None

    def _generation_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            **self.extra_body,
        }
        if self.seed is not None and self._sampling:
            body["seed"] = self.seed
        if self.stop:
            body["stop"] = self.stop
        return body

    # -- requests ------------------------------------------------------------------------------
    async def agenerate(self, prompt: str) -> ModelOutput:
        body = self._generation_body()
        if self.api == "chat":
            messages = [{"role": "user", "content": prompt}]
            if self.system_prompt is not None:
                messages.insert(0, {"role": "system", "content": self.system_prompt})
            body["messages"] = messages
            if self.output_log_probability:
                body["logprobs"] = True
            payload = await self._post("chat/completions", body)
            text = _dig(payload, "choices", 0, "message", "content")
            log_probability = None
            if self.output_log_probability:
                log_probability = sum(float(t["logprob"]) for t in _dig(payload, "choices", 0, "logprobs", "content"))
        else:
            body["prompt"] = prompt if self.system_prompt is None else f"{self.system_prompt}\n\n{prompt}"
            if self.output_log_probability:
                body["logprobs"] = 1
            payload = await self._post("completions", body)
            text = _dig(payload, "choices", 0, "text")
            log_probability = None
            if self.output_log_probability:
                values = _dig(payload, "choices", 0, "logprobs", "token_logprobs")
                log_probability = sum(float(v) for v in values if v is not None)
        if not isinstance(text, str):
            raise RetryableError(f"malformed response: the output is {type(text).__name__}, not text")
        return ModelOutput(output=text, log_probability=log_probability)

    async def alog_probability(self, text: str) -> ModelOutput:
        """The prompt's own log-probability, from completions with `echo` (vLLM, llama.cpp, OpenAI legacy)."""
        body = {"model": self.model, "prompt": text, "max_tokens": 1, "temperature": 0.0, "echo": True, "logprobs": 1}
        payload = await self._post("completions", body)
        logprobs = _dig(payload, "choices", 0, "logprobs")
        values = _dig(logprobs, "token_logprobs")
        offsets = logprobs.get("text_offset") if isinstance(logprobs, dict) else None
        if offsets and len(offsets) == len(values):
            prompt_values = [v for v, offset in zip(values, offsets) if offset < len(text)]
        else:
            prompt_values = values[:-1]  # the echo is followed by the one generated token
        scored = [float(v) for v in prompt_values if v is not None]  # the first token has none
        return ModelOutput(output=None, log_probability=sum(scored), num_tokens=len(scored))

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- the batch interface, for direct use: the same requests, concurrent, with retries ----------
    def predict(self, prompts: Sequence[str]) -> list[ModelOutput]:
        return self._run_all(self.agenerate, prompts)

    def log_probability(self, texts: Sequence[str]) -> list[ModelOutput]:
        return self._run_all(self.alog_probability, texts)

    def _run_all(self, request: Any, items: Sequence[str]) -> list[ModelOutput]:
        return run_directly(request, items, max_concurrency=self.capabilities.max_concurrency, close=self.aclose)
