"""Partial dependence: the mean model output as one feature moves over a grid, the others as observed."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from fmeval.errors import UserError

# Rows sent to the model in one call: the whole grid for a feature goes in few, large batches.
BATCH_ROWS = 100_000


def partial_dependence(
    predict: Callable[[np.ndarray], Any],
    data: np.ndarray,
    feature: int,
    *,
    grid_resolution: int = 15,
    label_headers: Sequence[str] | None = None,
) -> dict[str, Any]:
    """{"grid": [...], "values": {label: [mean output at each grid value]}} for one feature.

    The grid is the feature's distinct values when there are at most `grid_resolution` of
    them, else `grid_resolution` evenly spaced values from its minimum to its maximum.
    """
    data = np.asarray(data, dtype=float)
    if grid_resolution < 2:
        raise UserError(f"grid_resolution must be >= 2, got {grid_resolution}")
    column = data[:, feature]
    distinct = np.unique(column)
    grid = distinct if distinct.size <= grid_resolution else np.linspace(column.min(), column.max(), grid_resolution)
    stacked = np.repeat(data[None, :, :], grid.size, axis=0)
    stacked[:, :, feature] = grid[:, None]
    flat = stacked.reshape(-1, data.shape[1])
    outputs = np.concatenate([
        np.asarray(predict(flat[start : start + BATCH_ROWS]), dtype=float).reshape(min(BATCH_ROWS, len(flat) - start), -1)
        for start in range(0, len(flat), BATCH_ROWS)
    ])
    means = outputs.reshape(grid.size, len(data), -1).mean(axis=1)  # (grid, labels)
    labels = list(label_headers) if label_headers else [f"label{i}" for i in range(means.shape[1])]
    return {"grid": grid.tolist(), "values": {label: means[:, i].tolist() for i, label in enumerate(labels)}}
