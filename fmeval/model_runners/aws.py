"""Amazon Bedrock (Converse or invoke_model) and SageMaker endpoints (invoke_endpoint).

`content_template` and the JMESPath `output` / `log_probability` locations work as in AWS
fmeval's BedrockModelRunner and SageMakerModelRunner: `$prompt` is replaced by the prompt as
a JSON string (or `$features` by a JSON value, as in SageMaker Clarify: see `json_template`). Each runner holds one boto3 client, made on first use and reused by every
call (boto3 clients are thread-safe); botocore's own retries are off because the engine's
adaptive retries replace them. Credentials come from boto3's usual chain and are never stored.
"""
from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from typing import Any, Sequence

from fmeval.retry import RetryableError
from fmeval.errors import UserError
from fmeval.model_runners.base import Capabilities, ModelOutput, ModelRunner, RequestKind
from fmeval.model_runners.json_template import JsonTemplate
from fmeval.secrets import redact

THROTTLING_CODES = {"ThrottlingException", "TooManyRequestsException", "ServiceQuotaExceededException"}
RETRYABLE_CODES = THROTTLING_CODES | {
    "ServiceUnavailableException", "InternalServerException", "ModelNotReadyException", "ModelTimeoutException",
    "InternalFailure", "ServiceUnavailable", "ModelError",
}


class RequestRejected(Exception):
    """The service refused the request for a reason retrying will not fix."""


def _call(function: Any, **kwargs: Any) -> Any:
    """Call a boto3 operation, sorting its failures into retryable and final ones."""
    from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

    try:
        return function(**kwargs)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        message = redact(f"{code}: {exc.response.get('Error', {}).get('Message', '')}")
        if code in RETRYABLE_CODES:
            raise RetryableError(message, throttled=code in THROTTLING_CODES) from None
        raise RequestRejected(message) from None
    except (ConnectionError, HTTPClientError) as exc:
        raise RetryableError(redact(f"connection failed: {exc}")) from None
    except BotoCoreError as exc:
        raise RequestRejected(redact(str(exc))) from None


class _AwsRunner(ModelRunner, ABC):
    service: str
    template: JsonTemplate | None

    def __init__(self, *, region: str | None, max_concurrency: int, client: Any):
        if max_concurrency < 1:
            raise UserError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self.region = region
        self._client = client
        self._client_lock = threading.Lock()
        self._max_concurrency = max_concurrency

    def client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                self._client = boto3.session.Session().client(
                    self.service,
                    region_name=self.region,
                    config=Config(retries={"max_attempts": 1}, max_pool_connections=self._max_concurrency),
                )
            return self._client

    @abstractmethod
    def _invoke(self, prompt: str) -> bytes:
        """Send one JSON request built from the content template; the raw response body."""

    def _generate(self, prompt: str) -> ModelOutput:
        return self.template.model_output(self._invoke(prompt))  # type: ignore[union-attr]

    async def agenerate(self, prompt: str) -> ModelOutput:
        return await asyncio.to_thread(self._generate, prompt)

    def _score(self, text: str) -> ModelOutput:
        value = float(self.template.read(self._invoke(text), "log_probability"))  # type: ignore[union-attr]
        return ModelOutput(output=None, log_probability=value)

    async def alog_probability(self, text: str) -> ModelOutput:
        return await asyncio.to_thread(self._score, text)

    def predict(self, prompts: Sequence[str]) -> list[ModelOutput]:
        """For direct use; the engine sends `agenerate` requests concurrently instead."""
        return [self._generate(prompt) for prompt in prompts]

    def log_probability(self, texts: Sequence[str]) -> list[ModelOutput]:
        """For direct use; the engine sends `alog_probability` requests concurrently instead."""
        return [self._score(text) for text in texts]


class BedrockRunner(_AwsRunner):
    """A Bedrock model through the Converse API (messages, system prompt, inference config), or
    through `invoke_model` with a `content_template` and JMESPath `output`/`log_probability`."""

    service = "bedrock-runtime"

    def __init__(
        self,
        model_id: str,
        *,
        region: str | None = None,
        system_prompt: str | None = None,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        content_template: str | None = None,
        output: str | None = None,
        log_probability: str | None = None,
        max_concurrency: int = 8,
        client: Any = None,
    ):
        super().__init__(region=region, max_concurrency=max_concurrency, client=client)
        self.model_id = model_id
        self.system_prompt = system_prompt
        self.max_new_tokens, self.temperature, self.top_p = max_new_tokens, temperature, top_p
        self.template = JsonTemplate(content_template, output, log_probability) if content_template else None
        if self.template is None and (output or log_probability):
            raise UserError("output/log_probability JMESPaths need a content_template (invoke_model)")
        self.capabilities = Capabilities(
            log_probability=bool(self.template and log_probability), chat=self.template is None,
            max_concurrency=max_concurrency, single_requests=True,
        )

    def identity(self, kind: RequestKind = "generate") -> dict[str, Any]:
        identity: dict[str, Any] = {"type": "bedrock", "model": self.model_id, "region": self.region}
        if self.template is None:
            identity.update(system_prompt=self.system_prompt, max_new_tokens=self.max_new_tokens,
                            temperature=self.temperature, top_p=self.top_p)
        else:
            identity.update(content_template=self.template.content_template, **self.template.paths)
        return identity

    def _generate(self, prompt: str) -> ModelOutput:
        if self.template is not None:
            return super()._generate(prompt)
        request: dict[str, Any] = {
            "modelId": self.model_id,
            "messages": [{"role": "user", "content": [{"text": prompt}]}],
            "inferenceConfig": {"maxTokens": self.max_new_tokens, "temperature": self.temperature, "topP": self.top_p},
        }
        if self.system_prompt is not None:
            request["system"] = [{"text": self.system_prompt}]
        response = _call(self.client().converse, **request)
        try:
            texts = [block["text"] for block in response["output"]["message"]["content"] if "text" in block]
        except (KeyError, TypeError):
            raise RetryableError("malformed response: no output.message.content") from None
        return ModelOutput(output="".join(texts))

    def _invoke(self, prompt: str) -> bytes:
        response = _call(
            self.client().invoke_model, modelId=self.model_id, body=self.template.body(prompt),  # type: ignore[union-attr]
            contentType="application/json", accept="application/json",
        )
        return response["body"].read()


class SageMakerRunner(_AwsRunner):
    """A SageMaker real-time endpoint through `invoke_endpoint`, with a `content_template` and
    JMESPath `output` / `log_probability` locations."""

    service = "sagemaker-runtime"

    def __init__(
        self,
        endpoint_name: str,
        *,
        content_template: str,
        output: str | None = None,
        log_probability: str | None = None,
        inference_component: str | None = None,
        region: str | None = None,
        max_concurrency: int = 8,
        client: Any = None,
    ):
        super().__init__(region=region, max_concurrency=max_concurrency, client=client)
        self.endpoint_name = endpoint_name
        self.inference_component = inference_component
        self.template = JsonTemplate(content_template, output, log_probability)
        self.capabilities = Capabilities(log_probability=bool(log_probability), max_concurrency=max_concurrency,
                                         single_requests=True)

    def identity(self, kind: RequestKind = "generate") -> dict[str, Any]:
        return {
            "type": "sagemaker", "endpoint": self.endpoint_name, "inference_component": self.inference_component,
            "region": self.region, "content_template": self.template.content_template, **self.template.paths,
        }

    def _invoke(self, prompt: str) -> bytes:
        request: dict[str, Any] = {
            "EndpointName": self.endpoint_name, "Body": self.template.body(prompt),
            "ContentType": "application/json", "Accept": "application/json",
        }
        if self.inference_component:
            request["InferenceComponentName"] = self.inference_component
        return _call(self.client().invoke_endpoint, **request)["Body"].read()
