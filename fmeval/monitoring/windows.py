"""Windows of captured traffic: the events of a time range, as rows for the monitors.

A window is a half-open UTC range [start, end) of `eventMetadata.inferenceTime`. Capture files
sit in hourly folders (`yyyy/mm/dd/hh`), so a window reads only the folders it overlaps.

`window_frame` turns events into a table: the request's fields are the features (a JSON object's
scalar fields by name; a JSON list or CSV line as c0, c1, ..., or by the names `headers` gives; a
`features` JMESPath picks them out of a JSON request), the response gives `prediction` (a scalar
answer) or its own scalar fields, and the ground truth, merged by event id, gives
`label`. `prompt_response` reads an LLM's prompt and answer from the usual request and response
shapes (OpenAI chat and completions, streamed or not; Hugging Face text generation; fmeval's own
runner capture).
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import pandas as pd

from fmeval.errors import UserError
from fmeval.monitoring.data_capture import ReadStats, capture_files, csv_value, decoded, read_files

UTC = dt.timezone.utc
_HOUR_FOLDER = re.compile(r"(\d{4})/(\d{2})/(\d{2})/(\d{2})$")


@dataclass(frozen=True)
class Window:
    """Events with start <= inferenceTime < end (UTC)."""

    start: dt.datetime
    end: dt.datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise UserError("a window's start and end must be timezone-aware")
        if self.end <= self.start:
            raise UserError(f"a window must end after it starts: {self}")

    def __str__(self) -> str:
        return f"{_iso(self.start)}/{_iso(self.end)}"

    def holds(self, when: dt.datetime) -> bool:
        return self.start <= when < self.end


def _iso(when: dt.datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> dt.datetime:
    """An ISO 8601 time; without a zone it is UTC."""
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"not an ISO 8601 time: {text!r} (e.g. 2026-12-06T18:00:00Z)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def parse_window(text: str) -> Window:
    """`START/END` (ISO 8601 times, UTC unless a zone is given)."""
    start, separator, end = text.partition("/")
    if not separator:
        raise UserError(f"--window must be START/END, e.g. 2026-12-06T17:00Z/2026-12-06T18:00Z; got {text!r}")
    return Window(parse_time(start), parse_time(end))


def event_time(event: dict[str, Any]) -> dt.datetime | None:
    text = event.get("eventMetadata", {}).get("inferenceTime")
    if not text:
        return None
    try:
        return parse_time(text)
    except UserError:
        return None


def may_overlap(path: Path, window: Window) -> bool:
    """False for a file in an hourly folder outside the window (never read); True otherwise."""
    match = _HOUR_FOLDER.search(path.parent.as_posix())
    if match is None:
        return True  # not in the hourly layout: read it, and filter by event time
    hour = dt.datetime(*map(int, match.groups()), tzinfo=UTC)
    return hour < window.end and hour + dt.timedelta(hours=1) > window.start


def is_capture(source: str | Path) -> bool:
    """A folder of capture files (JSON Lines), not one of CSV or Parquet data files."""
    path = Path(source)
    return path.is_dir() and any(path.rglob("*.jsonl")) and not any(path.glob("*.csv")) and not any(path.glob("*.parquet"))


def window_events(directory: str | Path, window: Window | None, stats: ReadStats | None = None) -> Iterator[dict[str, Any]]:
    """The events of the window (all of them for None); bad lines, and events without a valid
    inferenceTime when a window is asked for, are skipped and listed in `stats`."""
    files = capture_files(directory)
    if window is None:
        yield from read_files(files, stats)
        return
    for event in read_files([path for path in files if may_overlap(path, window)], stats):
        when = event_time(event)
        if when is None and stats is not None:
            stats.skipped.append(f"event {event['eventMetadata']['eventId']}: no valid inferenceTime, so in no window")
        elif when is not None and window.holds(when):
            yield event


# -- events as rows ------------------------------------------------------------------------------------
def _fields(value: Any, part: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, str) and part.get("encoding") == "CSV":
        value = next(csv.reader([value]), [])
        value = [csv_value(item) for item in value]
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if not isinstance(v, (dict, list))}
    if isinstance(value, list):
        return {f"c{i}": v for i, v in enumerate(value)}
    return {"value": value}


def event_row(event: dict[str, Any], part: str) -> dict[str, Any]:
    """The request's ("input") or the response's ("output") fields of one event."""
    key = "endpointInput" if part == "input" else "endpointOutput"
    data = event["captureData"].get(key) or {}
    return _fields(decoded(data), data)


def load_labels(ground_truth: str | Path | None) -> dict[str, Any]:
    """Event id -> its latest label, from a ground-truth directory."""
    if ground_truth is None:
        return {}
    from fmeval.monitoring.ground_truth import labels_by_event

    return labels_by_event(ground_truth)


def request_features(event: dict[str, Any], *, headers: Sequence[str] | None = None, features: Any = None,
                     label: str | None = None) -> dict[str, Any]:
    """The model's input features of one event, from its request only: `features` (a compiled
    JMESPath, as in Clarify's analysis config) picks a list (or a CSV line) out of a JSON request, and `headers` name
    a list's or CSV line's values in order (Clarify's `headers` may also hold the label, which a
    request never does). Without headers a JSON object's scalar fields keep their names and a list's
    values are c0, c1, ... Raises ValueError for a request that does not fit."""
    part = event["captureData"].get("endpointInput") or {}
    value = decoded(part)
    if features is not None:
        value = features.search(value) if isinstance(value, (dict, list)) else None
        if isinstance(value, str):
            value = [csv_value(item) for item in next(csv.reader([value]), [])]
        if not isinstance(value, list):
            raise ValueError(f"features ({features.expression!r}) picks no list out of the request")
    fields = _fields(value, part)
    if not headers:
        return fields
    if isinstance(value, dict) and features is None:
        missing = [name for name in headers if name not in fields and name != label]
        if missing:
            raise ValueError(f"the request has no field {', '.join(map(repr, missing))} of the config's headers")
        return {name: fields[name] for name in headers if name in fields}
    names = list(headers)
    if len(names) == len(fields) + 1 and label in names:
        names.remove(label)
    if len(names) != len(fields):
        raise ValueError(f"the request has {len(fields)} values but the config's headers name {len(names)}")
    return dict(zip(names, fields.values()))


def window_frame(capture: str | Path, window: Window | None, *, ground_truth: str | Path | None = None,
                 stats: ReadStats | None = None, headers: Sequence[str] | None = None, features: str | None = None,
                 label: str | None = None) -> pd.DataFrame:
    """One row per event of the window: the request's features (see `request_features`), the
    response's `prediction` (a scalar answer, or a one-value list or CSV line) or its own scalar
    fields, and `label` where ground truth was added; the event ids are the index (named `eventId`).
    `frame.attrs["response_columns"]` names the columns that came from the response, which are
    never the model's features. An event whose request does not fit `headers`/`features` is
    skipped and listed in `stats`."""
    labels = load_labels(ground_truth)
    if features is not None:
        import jmespath

        try:
            features = jmespath.compile(features)
        except jmespath.exceptions.JMESPathError as exc:
            raise UserError(f"features {features!r} is not a JMESPath expression: {exc}") from None
    rows, ids, response_columns = [], [], {}
    for event in window_events(capture, window, stats):
        event_id = event["eventMetadata"]["eventId"]
        try:
            row = request_features(event, headers=headers, features=features, label=label)
        except ValueError as exc:
            if stats is not None:
                stats.skipped.append(f"event {event_id}: {exc}")
            continue
        answer = event_row(event, "output")
        if set(answer) in ({"value"}, {"c0"}):
            answer = {"prediction": next(iter(answer.values()))}
        for name, value in answer.items():
            column = name if name not in row else f"output_{name}"
            row[column] = value
            response_columns[column] = True
        if ground_truth is not None:
            row["label"] = labels.get(event_id)
        rows.append(row)
        ids.append(event_id)
    frame = pd.DataFrame(rows, index=pd.Index(ids, name="eventId"))
    if ground_truth is not None and len(frame):
        frame = frame[frame["label"].notna()]
    frame.attrs["response_columns"] = list(response_columns)
    return frame


# -- LLM traffic --------------------------------------------------------------------------------------
def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # chat content as parts: [{"type": "text", "text": ...}]
        texts = [part.get("text", "") for part in value if isinstance(part, dict)]
        return "".join(texts) if texts else None
    return None


def _prompt(request: Any) -> str | None:
    if isinstance(request, str):
        return request
    if not isinstance(request, dict):
        return None
    messages = request.get("messages")
    if isinstance(messages, list):
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        return _text((users or messages)[-1].get("content")) if (users or messages) else None
    for key in ("prompt", "inputs", "input", "text"):
        if key in request:
            value = request[key]
            return _text(value[0] if isinstance(value, list) and value and isinstance(value[0], str) else value)
    return None


def streamed_text(text: str) -> str | None:
    """The answer of a server-sent event stream of OpenAI chunks (None if the text is no such stream)."""
    pieces, seen = [], False
    for line in text.splitlines():
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            continue
        try:
            chunk = json.loads(payload)
        except json.JSONDecodeError:
            continue
        seen = True
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            pieces.append(_text(delta.get("content")) or choice.get("text") or "")
    return "".join(pieces) if seen else None


def _response(answer: Any) -> str | None:
    if isinstance(answer, str):
        streamed = streamed_text(answer) if "data:" in answer else None
        return streamed if streamed is not None else answer
    if isinstance(answer, list) and answer:
        return _response(answer[0])
    if not isinstance(answer, dict):
        return None
    choices = answer.get("choices")
    if isinstance(choices, list) and choices:
        first = choices[0]
        message = first.get("message") if isinstance(first, dict) else None
        return _text(message.get("content")) if isinstance(message, dict) else _text(first.get("text"))
    for key in ("output", "generated_text", "completion", "text", "response"):
        if key in answer:
            return _text(answer[key])
    return None


def prompt_response(event: dict[str, Any]) -> dict[str, Any]:
    """{"event_id", "prompt", "response"} of an LLM event, or with "error" when the answer is an
    error or has no text fmeval can read."""
    capture = event["captureData"]
    request = decoded(capture.get("endpointInput") or {})
    answer = decoded(capture.get("endpointOutput") or {})
    pair: dict[str, Any] = {"event_id": event["eventMetadata"]["eventId"], "prompt": _prompt(request)}
    if isinstance(answer, dict) and "error" in answer:
        pair["error"] = str(answer["error"])[:500]
        return pair
    pair["response"] = _response(answer)
    if pair["prompt"] is None or pair["response"] is None:
        pair["error"] = "no prompt or answer text in a shape fmeval reads (OpenAI, Hugging Face, fmeval)"
    return pair
