"""Seeded bootstrap confidence intervals."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

CONFIDENCE = 0.95
# Resample indices in blocks so memory stays near this many integers, whatever the dataset size.
_BLOCK_ELEMENTS = 4_000_000


def _resample_blocks(n: int, n_bootstrap: int, seed: int):
    rng = np.random.default_rng(seed)
    rows_per_block = max(1, _BLOCK_ELEMENTS // max(n, 1))
    for start in range(0, n_bootstrap, rows_per_block):
        rows = min(rows_per_block, n_bootstrap - start)
        yield rng.integers(0, n, size=(rows, n))


def bootstrap_mean_ci(values: Sequence[float], *, n_bootstrap: int = 1000, seed: int = 0) -> tuple[float, float] | None:
    """95% percentile-bootstrap interval of the mean; None for fewer than 2 values."""
    data = np.asarray(values, dtype=float)
    if data.size < 2 or n_bootstrap < 1:
        return None
    means = np.concatenate([data[indices].mean(axis=1) for indices in _resample_blocks(data.size, n_bootstrap, seed)])
    return _percentiles(means)


def bootstrap_statistic_ci(
    statistic: Callable[[np.ndarray], float], n: int, *, n_bootstrap: int = 1000, seed: int = 0
) -> tuple[float, float] | None:
    """95% percentile-bootstrap interval of `statistic(indices)` over resamples of range(n)."""
    if n < 2 or n_bootstrap < 1:
        return None
    values = [statistic(row) for indices in _resample_blocks(n, n_bootstrap, seed) for row in indices]
    return _percentiles(np.asarray(values, dtype=float))


def _percentiles(samples: np.ndarray) -> tuple[float, float]:
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)
