"""The run layer: every evaluation is a run, and everything after an evaluation reads runs here.

- `RunConfig`: a run's options, typed and documented (the CLI flags and YAML keys come from it);
- `evaluate`: run one evaluation into a run directory;
- `RunDirectory`: the run's files (lock, start or resume, append, read);
- `EvalOutput`: what a run's summary holds;
- `RunStore`, `load_run`, `load_runs`, `LoadedRun`: finished runs, by id or directory;
- `aggregate`: per-record scores to dataset scores with bootstrap intervals.

Names import lazily, so that `import fmeval.runs` stays cheap.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RunConfig": "fmeval.runs.config",
    "evaluate": "fmeval.runs.evaluate",
    "RunDirectory": "fmeval.runs.directory",
    "EvalOutput": "fmeval.runs.summary",
    "RunStore": "fmeval.runs.store",
    "LoadedRun": "fmeval.runs.loaded",
    "load_run": "fmeval.runs.loaded",
    "load_runs": "fmeval.runs.loaded",
    "aggregate": "fmeval.runs.aggregate",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'fmeval.runs' has no attribute {name!r}")
