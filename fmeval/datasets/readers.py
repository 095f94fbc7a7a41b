"""File readers: each turns one file into (location, raw record) pairs, one record at a time.

A record that cannot be parsed comes as a `DataError` value rather than an exception, so that
reading can go on after it when bad records are skipped.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Callable, Iterator

from fmeval.errors import DataError

JSONLINES = "application/jsonlines"
JSON = "application/json"
CSV = "text/csv"
PARQUET = "application/x-parquet"
TEXT = "text/plain"
BOLD_PROMPTS = "application/x-bold-prompts+json"
"""BOLD's upstream layout, used by the built-in `bold` dataset."""

Reader = Callable[[str], Iterator[tuple[str, Any]]]


def read_jsonlines(path: str) -> Iterator[tuple[str, Any]]:
    with open(path, "rb") as handle:
        for line_number, raw_line in enumerate(handle, start=1):
            location = f"{path}:{line_number}"
            try:
                line = raw_line.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield location, DataError(location, f"not valid UTF-8 ({exc.reason} at byte {exc.start})")
                continue
            if not line.strip():
                continue
            try:
                yield location, json.loads(line)
            except json.JSONDecodeError as exc:
                yield location, DataError(location, f"invalid JSON: {exc.msg} (column {exc.colno})")


def read_json(path: str) -> Iterator[tuple[str, Any]]:
    """A JSON array of records, or an object with one key holding that array."""
    with open(path, encoding="utf-8") as handle:
        try:
            document = json.load(handle)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{exc.lineno}", f"invalid JSON: {exc.msg} (column {exc.colno})") from exc
    if isinstance(document, dict):
        arrays = [key for key, value in document.items() if isinstance(value, list)]
        if len(arrays) != 1:
            raise DataError(
                path, "a JSON dataset must be an array of records, or an object with exactly one array of records"
            )
        document = document[arrays[0]]
    if not isinstance(document, list):
        raise DataError(path, f"a JSON dataset must be an array of records, not {type(document).__name__}")
    for index, item in enumerate(document):
        yield f"{path}: item {index}", item


def read_csv(path: str) -> Iterator[tuple[str, Any]]:
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            return
        line_number = reader.line_num
        for row in reader:
            start, line_number = line_number + 1, reader.line_num
            if not row:
                continue
            location = f"{path}:{start}"
            if len(row) != len(header):
                yield location, DataError(location, f"expected {len(header)} columns (as in the header), found {len(row)}")
                continue
            yield location, dict(zip(header, row))


def read_parquet(path: str) -> Iterator[tuple[str, Any]]:
    import pyarrow.parquet as pq

    row = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=8192):
        for item in batch.to_pylist():
            yield f"{path}: row {row}", item
            row += 1


def read_text(path: str) -> Iterator[tuple[str, Any]]:
    """One record per non-blank line: {"text": stripped line, "line": line number}."""
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if line.strip():
                yield f"{path}:{line_number}", {"text": line.strip(), "line": line_number}


def read_bold_prompts(path: str) -> Iterator[tuple[str, Any]]:
    """BOLD's upstream layout, {category: {wikipedia_name: [prompt, ...]}}, one record per prompt."""
    with open(path, encoding="utf-8") as handle:
        document = json.load(handle)
    domain = Path(path).name.removesuffix("_prompt.json")
    for category, names in document.items():
        for name, prompts in names.items():
            for index, prompt in enumerate(prompts):
                yield f"{path}: {category}/{name}[{index}]", {
                    "domain": domain,
                    "category": category,
                    "name": name,
                    "prompt": prompt,
                }


READERS: dict[str, Reader] = {
    JSONLINES: read_jsonlines,
    JSON: read_json,
    CSV: read_csv,
    PARQUET: read_parquet,
    TEXT: read_text,
    BOLD_PROMPTS: read_bold_prompts,
}
