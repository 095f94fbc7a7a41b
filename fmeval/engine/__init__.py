"""The evaluation engine: batching, concurrency, retries and the response store behind one seam.

Names import lazily: Ray workers import parts of this package and need none of the rest.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"Engine": "fmeval.engine.engine", "EngineOptions": "fmeval.engine.engine", "Request": "fmeval.engine.engine"}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'fmeval.engine' has no attribute {name!r}")
