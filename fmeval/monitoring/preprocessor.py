"""A record preprocessor: the user's Python function that turns one captured event into rows of
features before the data-quality check, as SageMaker's `record_preprocessor_script` does.

The file defines `preprocess_handler(inference_record)` (or `(inference_record, logger)`), as
SageMaker's does. `inference_record` has SageMaker's attributes: `event_metadata` (eventId,
inferenceTime, ...), `event_version`, and `event_data.endpointInput` / `.endpointOutput`, each
with `data` (the captured text), `encoding`, `mode` and `observedContentType`. It returns a dict
of flat features (one row), a list of them (several rows), or `[]` / None to drop the event.

The code runs only when the user says they trust it (`--trust-code`), and a baseline records the
file's SHA-256: a check (by hand or in the scheduler) refuses to run a file that changed since.
"""
from __future__ import annotations

import hashlib
import importlib.util
import inspect
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

from fmeval.errors import UserError

HANDLER = "preprocess_handler"
ERR_UNTRUSTED = ("--preprocessor {path} is Python code that fmeval would run on every captured event; "
                 "pass --trust-code for a file you trust")
Preprocess = Callable[[dict[str, Any]], list[dict[str, Any]]]


def digest(path: str | Path) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        raise UserError(f"--preprocessor {path}: cannot be read ({exc.strerror})") from None


def inference_record(event: dict[str, Any]) -> SimpleNamespace:
    """An event as SageMaker hands it to a preprocessor."""
    capture = event.get("captureData", {})

    def part(key: str) -> SimpleNamespace:
        fields = capture.get(key) or {}
        return SimpleNamespace(data=fields.get("data"), encoding=fields.get("encoding"), mode=fields.get("mode"),
                               observedContentType=fields.get("observedContentType"))

    return SimpleNamespace(event_metadata=SimpleNamespace(**event.get("eventMetadata", {})),
                           event_version=event.get("eventVersion"),
                           event_data=SimpleNamespace(endpointInput=part("endpointInput"),
                                                      endpointOutput=part("endpointOutput")))


def load_preprocessor(path: str | Path, *, trusted: bool, sha256: str | None = None) -> Preprocess:
    """The file's handler as `rows(event)`; refused unless `trusted`, or when the file's digest is
    no longer `sha256` (the one the baseline trusted)."""
    if not trusted:
        raise UserError(ERR_UNTRUSTED.format(path=path))
    if sha256 is not None and digest(path) != sha256:
        raise UserError(f"--preprocessor {path} changed since the baseline trusted it (SHA-256 {sha256[:12]}...); "
                        f"make the baseline again to trust the new code")
    spec = importlib.util.spec_from_file_location(f"fmeval_preprocessor_{digest(path)[:12]}", path)
    if spec is None or spec.loader is None or not Path(path).is_file():
        raise UserError(f"--preprocessor {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's code: its failure is their input, said plainly
        raise UserError(f"--preprocessor {path}: importing it raised {type(exc).__name__}: {exc}") from None
    handler = getattr(module, HANDLER, None)
    if not callable(handler):
        raise UserError(f"--preprocessor {path} defines no {HANDLER}(inference_record) function")
    takes_logger = len(inspect.signature(handler).parameters) >= 2
    logger = logging.getLogger("fmeval.preprocessor")

    def rows(event: dict[str, Any]) -> list[dict[str, Any]]:
        where = f"--preprocessor {path} on event {event.get('eventMetadata', {}).get('eventId')}"
        record = inference_record(event)
        try:
            result = handler(record, logger) if takes_logger else handler(record)
        except Exception as exc:
            raise UserError(f"{where}: raised {type(exc).__name__}: {exc}") from None
        if result is None:
            return []
        result = [result] if isinstance(result, dict) else result
        if not isinstance(result, list) or not all(isinstance(row, dict) for row in result):
            raise UserError(f"{where}: returned {type(result).__name__}; it must return a dict of features, "
                            f"a list of them, or [] to drop the event")
        return result

    return rows
