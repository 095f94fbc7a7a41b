"""Prompt templates: `$model_input`, and `$context` for retrieval-augmented prompts."""
from __future__ import annotations

import string

from fmeval.errors import DataError, UserError

PLACEHOLDERS = ("model_input", "context")


class PromptTemplate:
    """A `string.Template` over a record's fields, checked once when built."""

    def __init__(self, template: str):
        self.template = template
        self._compiled = string.Template(template)
        if not self._compiled.is_valid():
            raise UserError(f"prompt template {template!r} has a malformed '$' placeholder (write $$ for a literal $)")
        self.placeholders = tuple(dict.fromkeys(self._compiled.get_identifiers()))
        unknown = [name for name in self.placeholders if name not in PLACEHOLDERS]
        if unknown:
            raise UserError(
                f"prompt template {template!r} uses unknown placeholder(s) {', '.join('$' + u for u in unknown)}; "
                f"known: {', '.join('$' + p for p in PLACEHOLDERS)}"
            )
        if "model_input" not in self.placeholders:
            raise UserError(f"prompt template {template!r} must contain $model_input")

    def render(self, *, model_input: str, context: str | None = None, location: str = "<sample>") -> str:
        if "context" in self.placeholders and context is None:
            raise DataError(location, "the prompt template uses $context but the record has no context field")
        return self._compiled.substitute(model_input=model_input, context=context or "")

    def __repr__(self) -> str:
        return f"PromptTemplate({self.template!r})"
