"""`fmeval analyze` KernelSHAP on 200 rows against `shap.KernelExplainer` called directly with the
same model, baseline and number of samples. Ours spreads rows over the CPU cores.
Last line: {"name", "ours_s", "reference_s", "ratio"}. Goal: ratio <= 1.05, below 1.0 with parallelism.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import shap
from sklearn.linear_model import LogisticRegression

from common import result_line

from fmeval.bias.analyze import analyze

ROWS, FEATURES, SAMPLES, CLUSTERS = 200, 8, 200, 10


def main() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(ROWS, FEATURES))
    y = (X @ rng.normal(size=FEATURES) + rng.normal(0, 0.5, ROWS)) > 0
    model = LogisticRegression().fit(X, y)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(FEATURES)]).assign(label=y.astype(int))
    background = shap.kmeans(X, CLUSTERS).data
    config = {"label": "label", "methods": {"shap": {"baseline": background.tolist(), "num_samples": SAMPLES,
                                                     "save_local_shap_values": True}}}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = analyze(config, frame, Path(tmp) / "out", model=model)
        ours = time.perf_counter() - started

    predict = lambda rows: model.predict_proba(rows)[:, 1]  # noqa: E731
    started = time.perf_counter()
    explainer = shap.KernelExplainer(predict, background)
    direct = explainer.shap_values(X, nsamples=SAMPLES, silent=True)
    reference = time.perf_counter() - started
    ours_global = result["explanations"]["kernel_shap"]["label0"]["global_shap_values"]
    theirs_global = np.mean(np.abs(direct), axis=0)
    gap = max(abs(ours_global[f"f{i}"] - theirs_global[i]) for i in range(FEATURES))
    print(f"fmeval analyze (SHAP, {ROWS} rows, {SAMPLES} samples): {ours:.2f} s; shap direct: {reference:.2f} s; "
          f"largest difference in global importance {gap:.2e}")
    result_line("shap_overhead", ours, reference)


if __name__ == "__main__":
    main()
