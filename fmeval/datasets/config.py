"""`DataConfig`: where a dataset is and where each field sits in its records (JMESPath).

Field names match AWS fmeval's DataConfig, so existing configs keep working. Added here:
CSV, Parquet and plain-text files, several files read as one dataset, list targets,
record ids, a record filter, and a `context` field for RAG-style prompts.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from fmeval.datasets.readers import CSV, JSON, JSONLINES, PARQUET, READERS, TEXT
from fmeval.errors import UserError

MIME_TYPES = (JSONLINES, JSON, CSV, PARQUET, TEXT)
EXTENSION_MIME_TYPES = {
    ".jsonl": JSONLINES,
    ".json": JSON,
    ".csv": CSV,
    ".parquet": PARQUET,
    ".pq": PARQUET,
    ".txt": TEXT,
    ".raw": TEXT,
}
FIELD_LOCATIONS = (
    "model_input",
    "target_output",
    "category",
    "context",
    "sent_more_input",
    "sent_less_input",
    "model_output",
    "record_id",
    "choices",
)


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """A dataset: its files, their format, and a JMESPath location for each field used.

    Every location is validated (compiled) when the config is made, so a typo fails at once
    with the field's name rather than on the first record.
    """

    dataset_name: str
    """Name shown in results and reports."""
    dataset_uri: str | tuple[str, ...]
    """A local file, or several files read one after another as one dataset."""
    dataset_mime_type: str | None = None
    """One of MIME_TYPES; inferred from the file extension when not given."""
    model_input: str | None = None
    """JMESPath of the model input (the prompt template's `$model_input`)."""
    target_output: str | None = None
    """JMESPath of the target: a string (split on `target_output_delimiter`) or a list of strings."""
    category: str | None = None
    """JMESPath of the category that scores are broken down by."""
    context: str | None = None
    """JMESPath of a context passage (the prompt template's `$context`), e.g. retrieved documents."""
    sent_more_input: str | None = None
    """JMESPath of the more-stereotypical sentence (prompt stereotyping)."""
    sent_less_input: str | None = None
    """JMESPath of the less-stereotypical sentence (prompt stereotyping)."""
    choices: str | None = None
    """JMESPath of a multiple-choice record's answer options (a list of strings)."""
    model_output: str | None = None
    """JMESPath of an existing model output: such records are scored without calling a model."""
    record_id: str | None = None
    """JMESPath of a stable record id; the record's position in the dataset when not given."""
    record_filter: str | None = None
    """JMESPath predicate: only records for which it is truthy are used."""
    target_output_delimiter: str | None = "<OR>"
    """Separates alternative targets inside one string; None keeps strings whole."""

    def __post_init__(self) -> None:
        import jmespath
        from jmespath.exceptions import JMESPathError

        if not self.dataset_name:
            raise UserError("DataConfig: dataset_name must not be empty")
        uris = self.uris
        if not uris or not all(uris):
            raise UserError(f"DataConfig {self.dataset_name!r}: dataset_uri must name at least one file")
        if self.dataset_mime_type is not None and self.dataset_mime_type not in READERS:
            raise UserError(
                f"DataConfig {self.dataset_name!r}: dataset_mime_type {self.dataset_mime_type!r} "
                f"is not one of {', '.join(READERS)}"
            )
        if self.dataset_mime_type is None:
            for uri in uris:
                self.mime_type_of(uri)  # fails early on an unknown extension
        if self.target_output_delimiter == "":
            raise UserError("DataConfig: target_output_delimiter must be a non-empty string or None")
        for name in (*FIELD_LOCATIONS, "record_filter"):
            expression = getattr(self, name)
            if expression is None:
                continue
            try:
                jmespath.compile(expression)
            except JMESPathError as exc:
                raise UserError(
                    f"DataConfig {self.dataset_name!r}: {name} is not a valid JMESPath expression "
                    f"({expression!r}): {exc}"
                ) from exc

    @property
    def uris(self) -> tuple[str, ...]:
        return (self.dataset_uri,) if isinstance(self.dataset_uri, str) else tuple(self.dataset_uri)

    def mime_type_of(self, uri: str) -> str:
        if self.dataset_mime_type:
            return self.dataset_mime_type
        mime_type = EXTENSION_MIME_TYPES.get(Path(uri).suffix.lower())
        if mime_type is None:
            raise UserError(
                f"DataConfig {self.dataset_name!r}: cannot tell the format of {uri!r} from its extension; "
                f"set dataset_mime_type to one of {', '.join(MIME_TYPES)}"
            )
        return mime_type

    def locations(self) -> dict[str, str]:
        """The configured field locations, by field name."""
        return {name: getattr(self, name) for name in FIELD_LOCATIONS if getattr(self, name) is not None}

    def to_dict(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["dataset_uri"] = list(self.uris) if len(self.uris) > 1 else self.uris[0]
        return values
