"""Any HTTP endpoint that takes a JSON body and answers JSON: a model server of your own, a
SageMaker-style `/invocations` container, a scoring API behind a gateway.

The body is built from `content_template` (`$prompt` or `$features`, see `json_template`) and
the output read with a JMESPath. An API key, when one is needed, is read from the environment
variable `api_key_env` names and sent in the `api_key_header` (`Authorization: Bearer ...` by
default); it is never stored, and it is masked in every error message.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

from fmeval.errors import UserError
from fmeval.model_runners.base import Capabilities, ModelOutput, ModelRunner, RequestKind
from fmeval.model_runners.http import HttpPoster, is_loopback, public_url, run_directly
from fmeval.model_runners.json_template import JsonTemplate
from fmeval.secrets import register_authorization


class HttpEndpointRunner(ModelRunner):
    """One POST per request; the engine sends them concurrently (`max_concurrency`)."""

    def __init__(
        self,
        url: str,
        *,
        content_template: str = '{"inputs": $prompt}',
        output: str | None = None,
        log_probability: str | None = None,
        api_key_env: str | None = None,
        api_key_header: str = "Authorization",
        timeout_s: float = 60.0,
        max_concurrency: int = 16,
    ):
        if not url.startswith(("http://", "https://")):
            raise UserError(f"the endpoint must be an http(s) URL, got {public_url(url)!r}")
        if timeout_s <= 0 or max_concurrency < 1:
            raise UserError("timeout_s must be > 0 and max_concurrency >= 1")
        self.url = url
        self.template = JsonTemplate(content_template, output, log_probability)
        self.api_key_env = api_key_env
        self.api_key_header = api_key_header
        self.capabilities = Capabilities(log_probability=bool(log_probability), max_concurrency=max_concurrency,
                                         single_requests=True)
        self._http = HttpPoster(max_concurrency=max_concurrency, timeout_s=timeout_s, headers=self._headers)

    def identity(self, kind: RequestKind = "generate") -> dict[str, Any]:
        return {"type": "http_endpoint", "url": public_url(self.url),
                "content_template": self.template.content_template, **self.template.paths}

    def load(self) -> None:
        """A configured key variable that is unset is refused for remote endpoints (every request
        would fail), as for the OpenAI-compatible runner."""
        if self.api_key_env and not os.environ.get(self.api_key_env) and not is_loopback(self.url):
            raise UserError(f"the environment variable {self.api_key_env} (api_key_env) is not set, so requests to "
                            f"{public_url(self.url)} would carry no API key")

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers[self.api_key_header] = f"Bearer {key}" if self.api_key_header == "Authorization" else key
            register_authorization(headers[self.api_key_header])
        return headers

    async def agenerate(self, prompt: str) -> ModelOutput:
        return self.template.model_output(await self._http.post(self.url, self.template.body(prompt)))

    async def alog_probability(self, text: str) -> ModelOutput:
        raw = await self._http.post(self.url, self.template.body(text))
        return ModelOutput(output=None, log_probability=float(self.template.read(raw, "log_probability")))

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- the batch interface, for direct use: the same requests, concurrent, with retries ----------
    def predict(self, prompts: Sequence[str]) -> list[ModelOutput]:
        return self._run_all(self.agenerate, prompts)

    def log_probability(self, texts: Sequence[str]) -> list[ModelOutput]:
        return self._run_all(self.alog_probability, texts)

    def _run_all(self, request: Any, items: Sequence[str]) -> list[ModelOutput]:
        return run_directly(request, items, max_concurrency=self.capabilities.max_concurrency, close=self.aclose)
