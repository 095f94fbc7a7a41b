"""`RunDirectory`: the only code that knows a run directory's files.

- `run.json`: the run's id and identity (everything that changes its results), written first;
- `records.jsonl`: one line per finished record, appended and flushed as records complete;
- `summary.json`: an `EvalOutput`, written when the run finishes;
- `responses.sqlite`: the run's own journal of model answers, when the shared response cache
  is off (so that a killed run never pays twice); removed when the run finishes;
- `.lock`: held (an OS file lock, released even when the process is killed) while a process
  writes the run, holding its pid; removed when that process is done (one killed leaves it, unheld).

Every file carries `schema_version`. Running again into the same directory with the same
identity resumes: finished records are kept, a line cut short by a crash is dropped, records
whose error was transient are run again (all errored ones with `retry_errors`), and each
record ends up in `records.jsonl` exactly once. A finished run with nothing to run again is
left as it is: its summary is never rewritten (`finished`). A different identity is refused
unless no record was finished yet.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from fmeval.errors import DataError, UserError
from fmeval.runs.summary import SCHEMA_VERSION, EvalOutput

RUN_FILE = "run.json"
RECORDS_FILE = "records.jsonl"
SUMMARY_FILE = "summary.json"
JOURNAL_FILE = "responses.sqlite"
LOCK_FILE = ".lock"
RUN_FILES = (RUN_FILE, RECORDS_FILE, SUMMARY_FILE, JOURNAL_FILE)
RECORD_FIELDS = ("record_id", "location", "category", "model_input", "prompt", "model_output", "target_output",
                 "scores", "error", "error_retryable", "context", "sent_more_input", "sent_less_input")


def new_run_id() -> str:
    return f"{dt.datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(str(path), f"not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise DataError(str(path), "not a JSON object")
    return data


def _write_atomically(path: Path, text: str) -> None:
    staging = path.with_name(f".{path.name}.tmp")
    with open(staging, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(staging, path)


@dataclass
class RunWriter:
    """A run being written: what was already done when it started, and `append` for the rest."""

    directory: RunDirectory
    run_id: str
    done: set[str]
    """Ids of the records already finished (kept from an earlier attempt)."""
    retried: int = 0
    """Errored records of an earlier attempt that this attempt runs again."""
    written: int = 0
    _sink: Any = field(default=None, repr=False)

    def append(self, lines: list[dict[str, Any]]) -> None:
        """Save finished records; they survive the process being killed right after."""
        if self._sink is None:
            self._sink = open(self.directory.records_path, "a", encoding="utf-8")
        self._sink.writelines(json.dumps({"schema_version": SCHEMA_VERSION, **line}, ensure_ascii=False) + "\n"
                              for line in lines)
        self._sink.flush()
        self.written += len(lines)

    def close(self) -> None:
        if self._sink is not None:
            self._sink.flush()
            os.fsync(self._sink.fileno())
            self._sink.close()
            self._sink = None

    def finish(self, summary: EvalOutput) -> None:
        """Write the summary (atomically) and drop the response journal: the run is complete."""
        self.close()
        _write_atomically(self.directory.summary_path, summary.to_json() + "\n")
        self.directory.journal_path.unlink(missing_ok=True)


class RunDirectory:
    """A run's files: start or resume one (`writing`), or read a finished one."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDirectory({str(self.path)!r})"

    @property
    def run_path(self) -> Path:
        return self.path / RUN_FILE

    @property
    def records_path(self) -> Path:
        return self.path / RECORDS_FILE

    @property
    def summary_path(self) -> Path:
        return self.path / SUMMARY_FILE

    @property
    def journal_path(self) -> Path:
        return self.path / JOURNAL_FILE

    def owns(self, path: str | os.PathLike[str]) -> bool:
        """Whether `path` is one of this run's own files (which starting a run may rewrite or delete)."""
        target = Path(path).resolve()
        return any(target == (self.path / name).resolve() for name in RUN_FILES)

    def check_writable(self) -> None:
        """Create the directory and a file in it, or say why it cannot be (before anything is written)."""
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"the output {self.path} is a file, not a directory; choose another --output")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise UserError(f"cannot write the run directory {self.path}: {exc.strerror or exc}") from exc

    # -- reading -----------------------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        """run.json: schema_version, run_id, created_at and identity."""
        data = _read_json(self.run_path)
        if not isinstance(data.get("schema_version"), int) or data["schema_version"] > SCHEMA_VERSION:
            raise DataError(str(self.run_path), f"run schema {data.get('schema_version')!r} is not one this fmeval "
                                                f"reads (up to {SCHEMA_VERSION})")
        return data

    def summary(self) -> EvalOutput:
        """The finished run's summary."""
        if not self.summary_path.is_file():
            raise UserError(f"{self.path} is not a finished run: it has no {SUMMARY_FILE}")
        try:
            return EvalOutput.from_dict(_read_json(self.summary_path))
        except (TypeError, KeyError, ValueError) as exc:
            raise DataError(str(self.summary_path), f"not an fmeval summary ({exc})") from exc

    def records(self) -> Iterator[dict[str, Any]]:
        """The record lines, streamed; a line that is not a record is a `DataError` with file:line."""
        if not self.records_path.is_file():
            raise UserError(f"{self.records_path} is missing: the run's records were deleted or moved")
        with open(self.records_path, encoding="utf-8", errors="strict") as handle:
            try:
                for number, line in enumerate(handle, start=1):
                    if line.strip():
                        yield self._record(line, number)
            except UnicodeDecodeError as exc:
                raise DataError(str(self.records_path), f"not valid UTF-8 ({exc.reason})") from exc

    def _record(self, line: str, number: int) -> dict[str, Any]:
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{self.records_path}:{number}", f"not a record line: {exc.msg}") from exc
        if not isinstance(record, dict) or "record_id" not in record or not isinstance(record.get("scores"), dict):
            raise DataError(f"{self.records_path}:{number}", "not a record line: it needs record_id and scores")
        return record

    # -- writing -----------------------------------------------------------------------------------
    def finished(self, identity: dict[str, Any], *, retry_errors: bool = False) -> EvalOutput | None:
        """The summary of a finished run of this identity that running again would not change
        (no record to run again), else None."""
        identity = json.loads(json.dumps(identity, default=str))
        if not self.summary_path.is_file() or not self.run_path.is_file() or not self.records_path.is_file():
            return None
        if self.manifest().get("identity") != identity:
            return None
        _, retried, rewrite = self._kept_lines(retry_errors)
        return None if retried or rewrite else self.summary()

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run directory for this process; another process gets a clear error with our pid.
        The lock file is removed on release, so it exists only while a process writes the run."""
        self.path.mkdir(parents=True, exist_ok=True)
        path = self.path / LOCK_FILE
        while True:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "unknown"
                os.close(descriptor)
                raise UserError(f"{self.path} is being written by another fmeval process (pid {holder}); wait for "
                                f"it to finish, or choose another --output") from None
            try:
                if os.stat(path).st_ino == os.fstat(descriptor).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(descriptor)  # its holder removed the file after we opened it: lock the current one
        try:
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
            yield
        finally:
            path.unlink(missing_ok=True)  # while still held, so no other process holds the removed file
            os.close(descriptor)  # closing releases the lock

    @contextlib.contextmanager
    def writing(self, identity: dict[str, Any], *, overwrite: bool = False,
                retry_errors: bool = False) -> Iterator[RunWriter]:
        """Start the run, or resume it (see the module docstring), holding the lock throughout."""
        identity = json.loads(json.dumps(identity, default=str))  # as it reads back from disk
        with self.lock():
            writer = self._start(identity, overwrite=overwrite, retry_errors=retry_errors)
            try:
                yield writer
            finally:
                writer.close()

    def _start(self, identity: dict[str, Any], *, overwrite: bool, retry_errors: bool) -> RunWriter:
        if overwrite:
            for name in RUN_FILES:
                (self.path / name).unlink(missing_ok=True)
        kept = self._kept_lines(retry_errors) if self.records_path.exists() else None
        if kept is not None and not self.run_path.exists():
            raise UserError(f"{self.path} holds {RECORDS_FILE} but no {RUN_FILE}; choose another --output, or "
                            f"--overwrite to start again")
        run_id = new_run_id()
        if self.run_path.exists():
            saved = self.manifest()
            if saved.get("identity") != identity and kept and kept[0]:
                previous = saved.get("identity") or {}
                changed = sorted(k for k in identity.keys() | previous.keys() if identity.get(k) != previous.get(k))
                raise UserError(
                    f"{self.path} holds a run with a different configuration (changed: {', '.join(changed)}); "
                    f"use another output directory, or overwrite to start again"
                )
            if saved.get("identity") == identity:
                run_id = saved["run_id"]
            else:  # nothing was finished (e.g. the first attempt failed to start): start afresh
                kept = None
                self.records_path.unlink(missing_ok=True)
                self.journal_path.unlink(missing_ok=True)
        self.summary_path.unlink(missing_ok=True)
        done: set[str] = set()
        retried = 0
        if kept is not None:
            lines, retried, rewrite = kept
            done = {line["record_id"] for line in lines}
            if rewrite:
                _write_atomically(self.records_path, "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
        manifest = {"schema_version": SCHEMA_VERSION, "run_id": run_id,
                    "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "identity": identity}
        _write_atomically(self.run_path, json.dumps(manifest, indent=2) + "\n")
        return RunWriter(self, run_id, done, retried)

    def _kept_lines(self, retry_errors: bool) -> tuple[list[dict[str, Any]], int, bool]:
        """The finished records to keep, how many errored ones will run again, and whether the file
        must be rewritten (a torn last line, records to retry, or a record written twice)."""
        content = self.records_path.read_bytes()
        torn = bool(content) and not content.endswith(b"\n")
        if torn:
            content = content[: content.rfind(b"\n") + 1]
        kept, seen, retried, rewrite = [], set(), 0, torn
        for number, raw in enumerate(content.decode("utf-8").splitlines(), start=1):
            if not raw.strip():
                continue
            line = self._record(raw, number)
            if line["record_id"] in seen:
                rewrite = True
                continue
            seen.add(line["record_id"])
            if line.get("error") is not None and (retry_errors or line.get("error_retryable")):
                retried += 1
                rewrite = True
                continue
            kept.append(line)
        return kept, retried, rewrite
