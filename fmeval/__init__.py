"""fmeval: evaluate foundation models and classic ML models.

The public API is imported lazily, so `import fmeval` stays fast:

    import fmeval
    summary = fmeval.evaluate(evaluation="factual_knowledge", dataset="trex", num_records=100)
"""
from __future__ import annotations

import importlib
from typing import Any

from fmeval.version import __version__

_EXPORTS = {
    "evaluate": "fmeval.runs.evaluate",
    "RunConfig": "fmeval.runs.config",
    "DataConfig": "fmeval.datasets.config",
    "EvalOutput": "fmeval.runs.summary",
    "EvalScore": "fmeval.scores",
    "CategoryScore": "fmeval.scores",
    "MetricSpec": "fmeval.scores",
    "load_run": "fmeval.runs.loaded",
    "RunStore": "fmeval.runs.store",
    "ModelRunner": "fmeval.model_runners.base",
    "ModelOutput": "fmeval.model_runners.base",
    "Capabilities": "fmeval.model_runners.base",
    "FunctionRunner": "fmeval.model_runners.function",
    "HuggingFaceRunner": "fmeval.model_runners.huggingface",
    "load_runner": "fmeval.model_runners",
    "get_algorithm": "fmeval.algorithms",
    "register_evaluation": "fmeval.algorithms",
    "register_metric": "fmeval.algorithms",
    "register_runner": "fmeval.model_runners",
    "Algorithm": "fmeval.algorithms.base",
    "GenerationAlgorithm": "fmeval.algorithms.base",
    "RecordResult": "fmeval.algorithms.base",
    "Record": "fmeval.datasets.record",
    "Request": "fmeval.engine.engine",
    "RetryableError": "fmeval.retry",
    "UserError": "fmeval.errors",
    "DataError": "fmeval.errors",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'fmeval' has no attribute {name!r}")
