"""JSON request bodies from a template, and JMESPath locations in JSON responses.

`$prompt` in the template is replaced by the request text as a JSON string (AWS fmeval's
convention for language models). `$features` is replaced by the request text itself, which is
then a JSON value: a row of numbers, a list of strings, a base64 image (SageMaker Clarify's
convention for predictors). A value found at a location is the output as text: strings as they
are, anything else (numbers, lists) as JSON.
"""
from __future__ import annotations

import json
from typing import Any

from fmeval.errors import UserError
from fmeval.model_runners.base import ModelOutput
from fmeval.retry import RetryableError
from fmeval.secrets import redact

PLACEHOLDERS = ("$prompt", "$features")


class JsonTemplate:
    """A request body template with `$prompt` or `$features`, and the response's JMESPath
    locations of the output and of the log-probability."""

    def __init__(self, content_template: str, output: str | None, log_probability: str | None):
        import jmespath

        placeholders = [p for p in PLACEHOLDERS if p in content_template]
        if len(placeholders) != 1:
            raise UserError(f"content_template must contain one of $prompt or $features, got {content_template!r}")
        self.placeholder = placeholders[0]
        try:
            json.loads(content_template.replace(self.placeholder, json.dumps("probe")))
        except json.JSONDecodeError as exc:
            raise UserError(f"content_template is not JSON once {self.placeholder} is filled in: {exc}") from exc
        if output is None and log_probability is None:
            raise UserError("give an `output` JMESPath (and/or `log_probability`) for the response")
        self.content_template = content_template
        self.paths = {"output": output, "log_probability": log_probability}
        self._compiled = {name: jmespath.compile(path) for name, path in self.paths.items() if path}

    def body(self, text: str) -> str:
        value = json.dumps(text) if self.placeholder == "$prompt" else text
        return self.content_template.replace(self.placeholder, value)

    def model_output(self, raw: bytes) -> ModelOutput:
        output = None
        if self.paths["output"]:
            value = self.read(raw, "output")
            output = value if isinstance(value, str) else json.dumps(value)
        return ModelOutput(
            output=output,
            log_probability=float(self.read(raw, "log_probability")) if self.paths["log_probability"] else None,
        )

    def read(self, raw: bytes, what: str) -> Any:
        try:
            payload = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RetryableError(f"malformed response: not JSON: {redact(repr(raw))[:80]}") from None
        value = self._compiled[what].search(payload)
        if value is None:  # masked before it is cut: a cut secret would no longer match
            raise RetryableError(
                f"malformed response: {self.paths[what]!r} found nothing in {redact(json.dumps(payload))[:200]}"
            )
        return value
