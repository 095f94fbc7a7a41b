"""Data capture: each request and response of a deployed model, as SageMaker writes them.

One JSON line per event, in SageMaker's data-capture layout, so that SageMaker capture files
and fmeval's read the same way:

    {"captureData": {"endpointInput": {"observedContentType": ..., "mode": "INPUT", "data": ...,
     "encoding": "JSON"}, "endpointOutput": {... "mode": "OUTPUT" ...}},
     "eventMetadata": {"eventId": ..., "inferenceTime": ..., "latencyMs": ..., "model": ...,
     "customAttributes": {...}}, "eventVersion": "0"}

Files go to `<directory>/<name>/yyyy/mm/dd/hh/mm-ss-mmm-<count>-<random>.jsonl` (UTC), a new file
when the hour changes, or the file passes `max_file_bytes` or `max_file_seconds`. An event is
written and flushed before the response is returned (so a crash loses nothing answered), and
the file is fsynced every `fsync_every` events and on close. `sampling_percentage` keeps that
share of events, decided by a generator seeded with `seed`.

Nothing from request headers is written except the content type and the custom attributes
asked for; Authorization and any header in `redact_headers` never are, and known secrets are
masked in whatever is written. A torn last line (a crash mid-write) or a corrupt one is skipped
on reading, and counted with its file:line.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import os
import random
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from fmeval.errors import UserError
from fmeval.model_runners.base import ModelOutput, ModelRunner
from fmeval.secrets import redact

JSON_TYPES = ("application/json", "application/jsonlines", "text/json")


def encode_body(body: bytes, content_type: str) -> dict[str, str]:
    """A body as SageMaker's capture stores it: JSON text as is, other text as CSV-like text,
    anything else base64."""
    kind = (content_type or "").split(";")[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return {"observedContentType": content_type, "data": base64.b64encode(body).decode("ascii"),
                "encoding": "BASE64"}
    encoding = "JSON" if kind in JSON_TYPES or kind.endswith("+json") else "CSV" if kind == "text/csv" else "TEXT"
    return {"observedContentType": content_type, "data": redact(text), "encoding": encoding}


class CaptureWriter:
    """Appends capture events to hourly JSON Lines files; thread-safe."""

    def __init__(self, directory: str | os.PathLike[str], *, name: str = "capture", sampling_percentage: float = 100.0,
                 seed: int = 0, max_file_bytes: int = 64 << 20, max_file_seconds: float = 3600.0,
                 fsync_every: int = 64):
        if not 0 <= sampling_percentage <= 100:
            raise UserError(f"sampling_percentage must be within 0..100, got {sampling_percentage}")
        if not name or "/" in name or name.startswith("."):
            raise UserError(f"a capture name must be a plain folder name, got {name!r}")
        if max_file_bytes <= 0 or max_file_seconds <= 0:
            raise UserError(f"a capture file's size and age limits must be positive, got {max_file_bytes} bytes "
                            f"and {max_file_seconds} s")
        self.root = Path(directory) / name
        try:  # now, not at the first event: a directory that cannot be made is refused before any traffic
            self.root.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise UserError(f"the capture directory {directory} is a file (or inside one); give a directory") from None
        except OSError as exc:
            raise UserError(f"cannot make the capture directory {self.root}: {exc.strerror}") from None
        self.sampling = sampling_percentage / 100.0
        self.max_file_bytes, self.max_file_seconds, self.fsync_every = max_file_bytes, max_file_seconds, fsync_every
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._handle: Any = None
        self._hour: str | None = None
        self._opened_at = 0.0
        self._unsynced = self._files = 0
        self.written = self.sampled_out = 0

    def sampled(self) -> bool:
        """Whether the next event is kept (decided in event order, from the seed)."""
        with self._lock:
            keep = self._rng.random() < self.sampling
            if not keep:
                self.sampled_out += 1
            return keep

    def write(self, *, request: dict[str, str], response: dict[str, str], latency_ms: float,
              model: dict[str, Any] | None = None, attributes: dict[str, Any] | None = None,
              event_id: str | None = None, when: dt.datetime | None = None) -> str:
        """Write one event (already sampled in); return its event id."""
        when = when or dt.datetime.now(dt.timezone.utc)
        event_id = event_id or str(uuid.uuid4())
        metadata: dict[str, Any] = {"eventId": event_id, "inferenceTime": when.isoformat(timespec="milliseconds")
                                    .replace("+00:00", "Z"), "latencyMs": round(latency_ms, 3)}
        if model:
            metadata["model"] = model
        if attributes:
            metadata["customAttributes"] = attributes
        event = {"captureData": {"endpointInput": {**request, "mode": "INPUT"},
                                 "endpointOutput": {**response, "mode": "OUTPUT"}},
                 "eventMetadata": metadata, "eventVersion": "0"}
        line = redact(json.dumps(event, ensure_ascii=False)) + "\n"
        with self._lock:
            handle = self._file(when)
            handle.write(line)
            handle.flush()  # in the OS before the response returns: a crashed process loses nothing
            self._unsynced += 1
            self.written += 1
            if self._unsynced >= self.fsync_every:
                os.fsync(handle.fileno())
                self._unsynced = 0
        return event_id

    def _file(self, when: dt.datetime) -> Any:
        hour = f"{when:%Y/%m/%d/%H}"
        handle = self._handle
        if handle is not None and (hour != self._hour or handle.tell() >= self.max_file_bytes
                                   or time.monotonic() - self._opened_at >= self.max_file_seconds):
            self._close_file()
        if self._handle is None:
            folder = self.root / hour
            folder.mkdir(parents=True, exist_ok=True)
            # minute, second, millisecond and this writer's file count first: names sort in time order
            self._files += 1
            path = folder / f"{when:%M-%S}-{when.microsecond // 1000:03d}-{self._files:06d}-{secrets.token_hex(4)}.jsonl"
            self._handle = open(path, "a", encoding="utf-8")
            self._hour, self._opened_at = hour, time.monotonic()
        return self._handle

    def _close_file(self) -> None:
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None
            self._unsynced = 0

    def close(self) -> None:
        with self._lock:
            self._close_file()


# -- reading -----------------------------------------------------------------------------------------
@dataclass
class ReadStats:
    events: int = 0
    skipped: list[str] = field(default_factory=list)
    """file:line of each line skipped (torn or corrupt), with the reason."""


def capture_files(directory: str | os.PathLike[str]) -> list[Path]:
    """Every capture file under `directory` (fmeval's or SageMaker's), in time order."""
    root = Path(directory)
    if not root.exists():
        raise UserError(f"no capture at {root}")
    return sorted(root.rglob("*.jsonl"))


def read_events(directory: str | os.PathLike[str], stats: ReadStats | None = None) -> Iterator[dict[str, Any]]:
    """The capture events under `directory`; bad lines are skipped and counted in `stats`."""
    return read_files(capture_files(directory), stats)


def read_files(paths: Sequence[Path], stats: ReadStats | None = None) -> Iterator[dict[str, Any]]:
    """The capture events of these files, in order; bad lines are skipped and counted in `stats`."""
    stats = stats if stats is not None else ReadStats()
    for path in paths:
        with open(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:  # never read with replacement characters: 'caf\ufffd' is no category
                    stats.skipped.append(f"{path}:{number}: not UTF-8 (byte {raw[exc.start]:#04x} at {exc.start})")
                    continue
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                    event["captureData"]["endpointInput"]  # noqa: B018  (the layout is checked)
                    event["eventMetadata"]["eventId"]  # noqa: B018
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    torn = not line.endswith("\n")
                    stats.skipped.append(f"{path}:{number}: {'torn last line' if torn else f'not a capture event ({exc})'}")
                    continue
                stats.events += 1
                yield event


def csv_value(text: str) -> Any:
    """A CSV field as the number it spells (int or float), else the text."""
    try:
        return float(text) if any(c in text for c in ".eEn") else int(text)
    except ValueError:
        return text


def decoded(part: dict[str, Any]) -> Any:
    """An endpointInput/endpointOutput's data: parsed JSON, text, or bytes."""
    data, encoding = part.get("data", ""), part.get("encoding", "JSON")
    if encoding == "BASE64":
        return base64.b64decode(data)
    if encoding == "JSON":
        try:
            return json.loads(data)
        except json.JSONDecodeError:
            return data
    return data


# -- capturing a runner ------------------------------------------------------------------------------
class CapturingRunner(ModelRunner):
    """A model runner whose generations are captured (see `capture`); it can do what its runner can."""

    def __init__(self, runner: ModelRunner, writer: CaptureWriter, attributes: dict[str, Any] | None):
        self.runner, self.writer, self.attributes = runner, writer, attributes
        self.capabilities = runner.capabilities
        self.max_new_tokens = runner.max_new_tokens

    def identity(self, kind: str = "generate") -> dict[str, Any]:
        return self.runner.identity(kind)  # type: ignore[arg-type]

    def load(self) -> None:
        self.runner.load()

    def prompt_lengths(self, prompts: Sequence[str]) -> list[int]:
        return self.runner.prompt_lengths(prompts)

    def text_lengths(self, texts: Sequence[str]) -> list[int]:
        return self.runner.text_lengths(texts)

    def log_probability(self, texts: Sequence[str]) -> list[ModelOutput]:
        return self.runner.log_probability(texts)

    async def alog_probability(self, text: str) -> ModelOutput:
        return await self.runner.alog_probability(text)

    def should_retry(self, exc: BaseException) -> bool:
        return self.runner.should_retry(exc)

    async def aclose(self) -> None:
        await self.runner.aclose()

    def _record(self, prompt: str, answer: ModelOutput, latency_ms: float) -> None:
        if not self.writer.sampled():
            return
        body = {"output": answer.output} if answer.error is None else {"error": answer.error}
        self.writer.write(request=encode_body(json.dumps({"prompt": prompt}).encode(), "application/json"),
                          response=encode_body(json.dumps(body).encode(), "application/json"),
                          latency_ms=latency_ms, model=self.runner.identity("generate"), attributes=self.attributes)

    def predict(self, prompts: Sequence[str]) -> list[ModelOutput]:
        started = time.perf_counter()
        answers = self.runner.predict(prompts)
        per_prompt = (time.perf_counter() - started) * 1000 / max(1, len(prompts))  # a batch's time, shared
        for prompt, answer in zip(prompts, answers):
            self._record(prompt, answer, per_prompt)
        return answers

    async def agenerate(self, prompt: str) -> ModelOutput:
        started = time.perf_counter()
        answer = await self.runner.agenerate(prompt)
        self._record(prompt, answer, (time.perf_counter() - started) * 1000)
        return answer

    def close(self) -> None:
        self.writer.close()


def capture(runner: Any, directory: str | os.PathLike[str], *, name: str = "capture",
            sampling_percentage: float = 100.0, seed: int = 0, attributes: dict[str, Any] | None = None,
            max_file_bytes: int = 64 << 20, max_file_seconds: float = 3600.0) -> CapturingRunner:
    """Wrap any model runner so that each generation is captured under `directory`/`name`."""
    writer = CaptureWriter(directory, name=name, sampling_percentage=sampling_percentage, seed=seed,
                           max_file_bytes=max_file_bytes, max_file_seconds=max_file_seconds)
    return CapturingRunner(runner, writer, attributes)
