"""Ground truth for captured events, in SageMaker's ground-truth layout, and its merge with the
captured predictions by event id.

`add_ground_truth` takes labels keyed by event id (JSON Lines or CSV with `eventId` or
`event_id`, and `label`) and writes them as
`{"groundTruthData": {"data": ..., "encoding": "JSON"}, "eventMetadata": {"eventId": ...},
"eventVersion": "0"}` lines under `<directory>/yyyy/mm/dd/hh/`. `merge` joins them with the
capture; labels for event ids the capture does not hold are counted and reported, never
silently dropped.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from fmeval.errors import DataError, UserError
from fmeval.monitoring.data_capture import ReadStats, capture_files, csv_value, read_events

ID_FIELDS = ("eventId", "event_id")


def _labels(path: Path) -> Iterator[tuple[str, str, Any]]:
    """(file:line, event id, label) of each row of a labels file."""
    if path.suffix.lower() == ".csv":
        text = path.read_text(encoding="utf-8-sig")
        rows = [(f"{path}:{n}", {**row, "label": csv_value(row["label"]) if row.get("label") is not None else None})
                for n, row in enumerate(csv.DictReader(io.StringIO(text)), start=2)]
    else:
        from fmeval.datasets.readers import read_jsonlines

        rows = list(read_jsonlines(str(path)))
    for where, row in rows:
        if isinstance(row, DataError):
            raise row
        if not isinstance(row, dict):
            raise DataError(where, "each row must be a JSON object")
        event_id = next((row[f] for f in ID_FIELDS if row.get(f) not in (None, "")), None)
        if event_id is None or row.get("label") in (None, ""):
            raise DataError(where, "each row needs an eventId (or event_id) and a label")
        yield where, str(event_id), row["label"]


def add_ground_truth(labels_file: str | Path, directory: str | Path) -> int:
    """Store the labels of `labels_file` under `directory`; returns how many were added."""
    labels = list(_labels(Path(labels_file)))
    if not labels:
        raise UserError(f"{labels_file}: no labels")
    now = dt.datetime.now(dt.timezone.utc)
    folder = Path(directory) / f"{now:%Y/%m/%d/%H}"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{now:%M%S}-{secrets.token_hex(4)}.jsonl", "w", encoding="utf-8") as handle:
        for _, event_id, label in labels:
            handle.write(json.dumps({"groundTruthData": {"data": json.dumps(label), "encoding": "JSON"},
                                     "eventMetadata": {"eventId": event_id}, "eventVersion": "0"}) + "\n")
    return len(labels)


@dataclass
class Merged:
    """Captured events with their labels, and what could not be matched."""

    pairs: list[tuple[dict[str, Any], Any]] = field(default_factory=list)
    unknown_event_ids: list[str] = field(default_factory=list)
    unlabelled_events: int = 0
    capture: ReadStats = field(default_factory=ReadStats)


def labels_by_event(ground_truth_directory: str | Path) -> dict[str, Any]:
    """Event id -> its latest label."""
    labels: dict[str, Any] = {}
    for path in capture_files(ground_truth_directory):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                entry = json.loads(line)
                labels[entry["eventMetadata"]["eventId"]] = json.loads(entry["groundTruthData"]["data"])
    return labels


def merge(capture_directory: str | Path, ground_truth_directory: str | Path) -> Merged:
    """Each captured event with its (latest) label; labels of unknown events are listed."""
    labels = labels_by_event(ground_truth_directory)
    merged = Merged()
    seen = set()
    for event in read_events(capture_directory, merged.capture):
        event_id = event["eventMetadata"]["eventId"]
        seen.add(event_id)
        if event_id in labels:
            merged.pairs.append((event, labels[event_id]))
        else:
            merged.unlabelled_events += 1
    merged.unknown_event_ids = sorted(set(labels) - seen)
    return merged
