"""Seeded bootstrap: confidence intervals of means, and of differences between runs."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

CONFIDENCE = 0.95
# Resample indices in blocks so memory stays near this many integers, whatever the dataset size.
_BLOCK_ELEMENTS = 4_000_000
# With at most this many distinct values, resample counts of values (multinomial) instead of
# indices: the same bootstrap distribution, at a cost that does not grow with the data.
_FEW_LEVELS = 512


def _resample_blocks(n: int, n_bootstrap: int, rng: np.random.Generator):
    rows_per_block = max(1, _BLOCK_ELEMENTS // max(n, 1))
    for start in range(0, n_bootstrap, rows_per_block):
        rows = min(rows_per_block, n_bootstrap - start)
        yield rng.integers(0, n, size=(rows, n))


def bootstrap_means(values: Sequence[float] | np.ndarray, *, n_bootstrap: int, rng: np.random.Generator) -> np.ndarray:
    """Means of `n_bootstrap` resamples (with replacement, same size) of `values`."""
    data = np.asarray(values, dtype=float)
    levels, counts = np.unique(data, return_counts=True)
    if levels.size <= _FEW_LEVELS:
        resampled = rng.multinomial(data.size, counts / data.size, size=n_bootstrap)
        return resampled @ levels / data.size
    return np.concatenate([data[indices].mean(axis=1) for indices in _resample_blocks(data.size, n_bootstrap, rng)])


def percentile_interval(samples: np.ndarray) -> tuple[float, float]:
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.nanpercentile(samples, [tail, 100 - tail])  # a resample may leave a statistic undefined
    return float(low), float(high)


def bootstrap_mean_ci(values: Sequence[float], *, n_bootstrap: int = 1000, seed: int = 0) -> tuple[float, float] | None:
    """95% percentile-bootstrap interval of the mean; None for fewer than 2 values."""
    if len(values) < 2 or n_bootstrap < 1:
        return None
    return percentile_interval(bootstrap_means(values, n_bootstrap=n_bootstrap, rng=np.random.default_rng(seed)))


def bootstrap_statistic_ci(
    statistic: Callable[[np.ndarray], float], n: int, *, n_bootstrap: int = 1000, seed: int = 0
) -> tuple[float, float] | None:
    """95% percentile-bootstrap interval of `statistic(indices)` over resamples of range(n)."""
    if n < 2 or n_bootstrap < 1:
        return None
    rng = np.random.default_rng(seed)
    values = [statistic(row) for indices in _resample_blocks(n, n_bootstrap, rng) for row in indices]
    return percentile_interval(np.asarray(values, dtype=float))


def bootstrap_p_value(samples: np.ndarray) -> float:
    """Two-sided p-value that the statistic is 0: twice the smaller tail of the bootstrap
    distribution on either side of 0 (1.0 when every resample is exactly 0)."""
    if samples.size == 0 or np.all(samples == 0):
        return 1.0
    below, above = np.mean(samples <= 0), np.mean(samples >= 0)
    return float(min(1.0, 2 * min(below, above)))


def krippendorff_alpha(matrix: np.ndarray, level: str) -> float:
    """Krippendorff's alpha of a raters x units matrix (NaN where a rater gave no value), at the
    `nominal`, `ordinal` or `interval` level, over the values observed; NaN when undefined (no
    unit with two values, or a single value throughout). Through the coincidence matrix, as in
    Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability"."""
    data = np.asarray(matrix, dtype=float)
    data = data[:, (~np.isnan(data)).sum(axis=0) >= 2]  # pairable units only
    values = np.unique(data[~np.isnan(data)])
    if values.size < 2:
        return float("nan")
    counts = np.stack([(data == value).sum(axis=0) for value in values])  # values x units
    pairable = counts.sum(axis=0)
    coincidences = (counts / (pairable - 1)) @ counts.T - np.diag((counts / (pairable - 1)).sum(axis=1))
    totals = coincidences.sum(axis=1)
    if level == "nominal":
        distances = 1.0 - np.eye(values.size)
    elif level == "interval":
        distances = (values[:, None] - values[None, :]) ** 2
    elif level == "ordinal":
        cumulative = np.cumsum(totals)
        between = cumulative[None, :] - cumulative[:, None] + totals[:, None]  # sum of n_g for c <= g <= k
        distances = np.triu(between - (totals[:, None] + totals[None, :]) / 2) ** 2
        distances = distances + distances.T
    else:
        raise ValueError(f"level must be nominal, ordinal or interval, got {level!r}")
    expected = totals @ distances @ totals
    if expected == 0:
        return float("nan")
    return float(1 - (totals.sum() - 1) * (coincidences * distances).sum() / expected)
