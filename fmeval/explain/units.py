"""KernelSHAP over units that are either kept or masked: the words of a text, the superpixels of
an image. SageMaker Clarify's NLP and computer-vision explanations work this way.

A coalition is a 0/1 row over the units. `score` gets a matrix of coalitions and returns the
model's outputs on the inputs they make (the text with the masked units replaced by the
baseline, the image with the masked segments filled). `shap.KernelExplainer` explains the
all-kept row against the all-masked one, so the values add up exactly: their sum is
score(all kept) - score(all masked). Each item is explained with its own seed (see `row_seed`),
so the values do not depend on which items are explained together.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from fmeval.explain.kernel_shap import row_seed


@dataclass
class UnitValues:
    """One item's SHAP values, per output (label) and unit."""

    values: np.ndarray  # (outputs, units)
    masked_output: np.ndarray  # (outputs,): the model's output with every unit masked (the expected value)
    full_output: np.ndarray  # (outputs,): the output on the item itself


def explain_units(score: Callable[[np.ndarray], np.ndarray], num_units: int, *, num_samples: int | str = "auto",
                  seed: int = 0, item: int = 0) -> UnitValues:
    """SHAP values of `num_units` units under `score` (coalitions (m, units) -> outputs (m, k))."""
    import shap

    def outputs(coalitions: np.ndarray) -> np.ndarray:
        values = np.asarray(score(np.asarray(coalitions) > 0.5), dtype=float)
        return values.reshape(len(coalitions), -1)

    kept, masked = np.ones((1, num_units)), np.zeros((1, num_units))
    explainer = shap.KernelExplainer(outputs, masked)
    np.random.seed(row_seed(seed, item))  # shap samples coalitions from numpy's global RNG
    samples = num_samples if isinstance(num_samples, int) else 2 * num_units + 2048  # shap's "auto"
    values = np.asarray(explainer.explain(kept, nsamples=samples), dtype=float).T  # (outputs, units)
    masked_output = np.atleast_1d(np.asarray(explainer.expected_value, dtype=float))
    return UnitValues(values=values, masked_output=masked_output, full_output=masked_output + values.sum(axis=1))
