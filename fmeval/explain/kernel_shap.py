"""KernelSHAP through the `shap` package, deterministic and spread over CPU cores.

Each row is explained with its own seed, derived from (seed, row index), so the values do not
depend on how rows are split between processes: `shap.KernelExplainer` called on one row after
another with those seeds gives the same numbers. A row whose model calls fail (an endpoint that
keeps erroring) gets NaN values and its error in `ShapResult.errors`; the other rows are kept.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from fmeval.errors import PredictionFailed, UserError

AGG_METHODS = ("mean_abs", "median", "mean_sq")
# Below this many model evaluations (rows x samples x baseline rows), starting worker processes
# (each imports shap) costs more than it saves.
PARALLEL_MIN_EVALUATIONS = 1_000_000


@dataclass
class ShapResult:
    """Local values per row and label, expected values, and global importance per label."""

    labels: list[str]
    feature_names: list[str]
    local: np.ndarray  # (rows, labels, features); NaN for a row in `errors`
    expected_value: np.ndarray  # (labels,)
    errors: dict[int, str]  # row -> why it has no explanation

    def global_importance(self, agg_method: str = "mean_abs") -> dict[str, dict[str, float]]:
        if agg_method not in AGG_METHODS:
            raise UserError(f"agg_method must be one of {AGG_METHODS}, got {agg_method!r}")
        aggregate = {
            "mean_abs": lambda v: np.nanmean(np.abs(v), axis=0),
            "median": lambda v: np.nanmedian(v, axis=0),
            "mean_sq": lambda v: np.nanmean(v**2, axis=0),
        }[agg_method]
        return {label: dict(zip(self.feature_names, map(float, aggregate(self.local[:, i, :]))))
                for i, label in enumerate(self.labels)}


def row_seed(seed: int, row: int) -> int:
    return (seed * 1_000_003 + row) % (2**32)


def _outputs_2d(predict: Callable[[np.ndarray], Any]) -> Callable[[np.ndarray], np.ndarray]:
    def call(matrix: np.ndarray) -> np.ndarray:
        values = np.asarray(predict(matrix), dtype=float)
        return values.reshape(len(matrix), -1)

    return call


def _explain_rows(predict: Callable, background: np.ndarray, rows: np.ndarray, first_row: int, *, num_samples: Any,
                  use_logit: bool, seed: int) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    import shap

    explainer = shap.KernelExplainer(_outputs_2d(predict), background, link="logit" if use_logit else "identity")
    expected = np.atleast_1d(np.asarray(explainer.expected_value, dtype=float))
    values, errors = [], {}
    for offset, row in enumerate(rows):
        np.random.seed(row_seed(seed, first_row + offset))  # shap samples coalitions from numpy's global RNG
        try:
            # `explain` is what `shap_values` runs for each row, without its per-call overhead
            values.append(np.asarray(explainer.explain(row[None, :], nsamples=num_samples)).T)  # (outputs, features)
        except PredictionFailed as failed:
            errors[first_row + offset] = str(failed)
            values.append(np.full((len(expected), rows.shape[1]), np.nan))
    return np.stack(values), expected, errors


def kernel_shap(
    predict: Callable[[np.ndarray], Any],
    data: np.ndarray,
    *,
    background: np.ndarray | None = None,
    num_clusters: int | None = 10,
    num_samples: int | str = "auto",
    use_logit: bool = False,
    seed: int = 0,
    feature_names: Sequence[str] | None = None,
    label_headers: Sequence[str] | None = None,
    n_jobs: int | None = None,
    backend: str = "local",
) -> ShapResult:
    """SHAP values of `predict` (rows -> outputs, one column per label) for every row of `data`.

    The baseline is `background` rows, or a k-means summary of `data` with `num_clusters`
    centres. `n_jobs` processes share the rows (default: all cores when the job is big enough to
    pay for starting them). `backend="ray"` spreads them over Ray's workers instead (`n_jobs`
    default: the cluster's CPUs); the values are the same.
    """
    import shap

    data = np.asarray(data, dtype=float)
    if data.ndim != 2 or not len(data):
        raise UserError("SHAP needs a non-empty 2-D table of numeric features")
    if background is None:
        if not num_clusters or num_clusters < 1:
            raise UserError("give baseline rows, or num_clusters >= 1 for a k-means baseline")
        np.random.seed(seed)
        background = shap.kmeans(data, min(num_clusters, len(data))).data
    background = np.asarray(background, dtype=float)
    if background.ndim != 2 or background.shape[1] != data.shape[1]:
        raise UserError(f"the baseline has shape {background.shape}, but the data has {data.shape[1]} features")
    samples = num_samples if isinstance(num_samples, int) else 2 * data.shape[1] + 2048  # shap's "auto"
    if n_jobs is None and len(data) * samples * len(background) < PARALLEL_MIN_EVALUATIONS:
        n_jobs = 1
    workers = os.cpu_count() or 1
    if backend == "ray":
        import ray
        from ray.util.joblib import register_ray

        if not ray.is_initialized():
            ray.init(ignore_reinit_error=True, log_to_driver=False)
        register_ray()
        workers = int(ray.cluster_resources().get("CPU", 1))
    jobs = max(1, min(n_jobs or workers, len(data)))
    chunks = np.array_split(np.arange(len(data)), jobs)
    options = {"num_samples": num_samples, "use_logit": use_logit, "seed": seed}
    if jobs == 1:
        parts = [_explain_rows(predict, background, data, 0, **options)]
    else:
        from joblib import Parallel, delayed

        parts = Parallel(n_jobs=jobs, backend="ray" if backend == "ray" else "loky")(
            delayed(_explain_rows)(predict, background, data[chunk], int(chunk[0]), **options) for chunk in chunks
        )
    local = np.concatenate([values for values, _, _ in parts])  # (rows, labels, features)
    expected = parts[0][1]
    errors = {row: error for _, _, part_errors in parts for row, error in part_errors.items()}
    labels = list(label_headers) if label_headers else [f"label{i}" for i in range(local.shape[1])]
    if len(labels) != local.shape[1]:
        raise UserError(f"{len(labels)} label_headers for a model with {local.shape[1]} outputs")
    names = list(feature_names) if feature_names else [f"feature_{i}" for i in range(data.shape[1])]
    return ShapResult(labels=labels, feature_names=names, local=local, expected_value=expected, errors=errors)
