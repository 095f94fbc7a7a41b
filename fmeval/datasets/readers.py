"""File readers: each turns one file into (location, raw record) pairs, one record at a time.

A record that cannot be parsed comes as a `DataError` value rather than an exception, so that
reading can go on after it when bad records are skipped. Files are UTF-8; a byte-order mark at
the start is accepted, and a line in another encoding (latin-1, say) is a bad record that
names its line.
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
NOT_UTF8 = "not valid UTF-8 ({reason} at byte {byte}); save the file as UTF-8"


def _lines(path: str) -> Iterator[tuple[int, str | DataError]]:
    """(line number, text) for each line; a line that is not UTF-8 comes as a DataError."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                yield number, DataError(f"{path}:{number}", NOT_UTF8.format(reason=exc.reason, byte=exc.start + 1))


def json_document(path: str) -> Any:
    """A whole JSON file, parsed; errors name the line."""
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}", NOT_UTF8.format(reason=exc.reason, byte=exc.start + 1)) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}", f"invalid JSON: {exc.msg} (column {exc.colno})") from None


def read_jsonlines(path: str) -> Iterator[tuple[str, Any]]:
    for number, line in _lines(path):
        location = f"{path}:{number}"
        if isinstance(line, DataError):
            yield location, line
            continue
        if not line.strip():
            continue
        try:
            yield location, json.loads(line)
        except json.JSONDecodeError as exc:
            yield location, DataError(location, f"invalid JSON: {exc.msg} (column {exc.colno})")


def read_json(path: str) -> Iterator[tuple[str, Any]]:
    """A JSON array of records, or an object with one key holding that array."""
    document = json_document(path)
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
    """Rows under a header line; a quoted field may span lines (the location is its first line)."""
    undecodable: dict[int, DataError] = {}

    def text_lines() -> Iterator[str]:
        for number, line in _lines(path):
            if isinstance(line, DataError):
                undecodable[number] = line
                yield "\n"  # keeps the line count; the row holding it is reported
            else:
                yield line

    reader = csv.reader(text_lines())
    try:
        header = next(reader)
    except StopIteration:
        return
    if undecodable:
        raise next(iter(undecodable.values()))
    line_number = reader.line_num
    for row in reader:
        start, line_number = line_number + 1, reader.line_num
        location = f"{path}:{start}"
        broken = [undecodable[n] for n in range(start, line_number + 1) if n in undecodable]
        if broken:
            yield location, broken[0]
            continue
        if not row:
            continue
        if len(row) != len(header):
            yield location, DataError(location, f"expected {len(header)} columns (as in the header), found {len(row)}")
            continue
        yield location, dict(zip(header, row))


def read_parquet(path: str) -> Iterator[tuple[str, Any]]:
    import pyarrow
    import pyarrow.parquet as pq

    row = 0
    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=8192):
            for item in batch.to_pylist():
                yield f"{path}: row {row}", item
                row += 1
    except (pyarrow.ArrowException, OSError) as exc:
        where = f"{path}: row {row}" if row else path
        raise DataError(where, f"not a readable Parquet file ({exc})") from None


def read_text(path: str) -> Iterator[tuple[str, Any]]:
    """One record per non-blank line: {"text": stripped line, "line": line number}."""
    for number, line in _lines(path):
        if isinstance(line, DataError):
            yield f"{path}:{number}", line
        elif line.strip():
            yield f"{path}:{number}", {"text": line.strip(), "line": number}


def read_bold_prompts(path: str) -> Iterator[tuple[str, Any]]:
    """BOLD's upstream layout, {category: {wikipedia_name: [prompt, ...]}}, one record per prompt."""
    document = json_document(path)
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
