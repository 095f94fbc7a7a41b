"""The record type: one dataset record with its fields extracted and checked."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Record:
    """One dataset record, its fields already extracted and checked."""

    record_id: str
    location: str
    """Where it came from: `file:line`, or `file: row N` for Parquet."""
    model_input: str | None = None
    target_output: list[str] | None = None
    category: str | None = None
    context: str | None = None
    sent_more_input: str | None = None
    sent_less_input: str | None = None
    choices: list[str] | None = None
    """The answer options of a multiple-choice record (scored by log-likelihood after the prompt)."""
    model_output: str | None = None
    prompt: str | None = None
