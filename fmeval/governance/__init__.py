"""Governance: model cards (SageMaker's content, versioned, with a review lifecycle and events)."""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"ModelCard": "fmeval.governance.cards", "CardStore": "fmeval.governance.store"}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'fmeval.governance' has no attribute {name!r}")
