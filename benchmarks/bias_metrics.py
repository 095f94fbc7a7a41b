"""All pre- and post-training bias metrics on 1,000,000 synthetic rows, against a straightforward
pandas groupby reference computed in the same run (checked to agree).
Last line: {"name", "ours_s", "reference_s", "ratio"}. Goal: seconds, not minutes.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd

from common import result_line

from fmeval.bias import metrics as bias

N = 1_000_000


def reference(frame: pd.DataFrame) -> dict[str, float]:
    """The group-difference metrics the plain way: one groupby, then the formulas."""
    frame = frame.assign(tp=frame.y & frame.p, fp=~frame.y & frame.p, tn=~frame.y & ~frame.p, fn=frame.y & ~frame.p)
    g = frame.groupby("d")[["y", "p", "tp", "fp", "tn", "fn"]].agg(["sum", "count"])
    a, d = g.loc[False], g.loc[True]
    n_a, n_d = a[("y", "count")], d[("y", "count")]
    q = lambda row, col: row[(col, "sum")] / row[(col, "count")]  # noqa: E731
    by_group = frame.groupby(["group", "y"])["d"].agg(["sum", "count"]).unstack(fill_value=0)
    share_rejected = (by_group[("sum", False)] / by_group[("count", False)]).fillna(0)
    share_accepted = (by_group[("sum", True)] / by_group[("count", True)]).fillna(0)
    sizes = frame.groupby("group").size()
    return {
        "CI": (n_a - n_d) / (n_a + n_d),
        "DPL": q(a, "y") - q(d, "y"),
        "DPPL": q(a, "p") - q(d, "p"),
        "DI": q(d, "p") / q(a, "p"),
        "RD": a[("tp", "sum")] / (a[("tp", "sum")] + a[("fn", "sum")]) - d[("tp", "sum")] / (d[("tp", "sum")] + d[("fn", "sum")]),
        "AD": (a[("tp", "sum")] + a[("tn", "sum")]) / n_a - (d[("tp", "sum")] + d[("tn", "sum")]) / n_d,
        "CDDL": float((sizes * (share_rejected - share_accepted)).sum() / sizes.sum()),
    }


def main() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "d": rng.random(N) < 0.3,
        "group": rng.integers(0, 50, N),
        "income": rng.normal(50, 15, N),
        "debt": rng.normal(20, 8, N),
    })
    frame["y"] = (0.05 * frame.income - 0.1 * frame.debt + rng.normal(0, 1, N) - 0.4 * frame.d) > 0
    frame["p"] = (0.05 * frame.income - 0.1 * frame.debt + rng.normal(0, 0.5, N) - 0.2 * frame.d) > 0
    d, y, p, group = frame.d.to_numpy(), frame.y.to_numpy(), frame.p.to_numpy(), frame.group.to_numpy()

    started = time.perf_counter()
    pre = bias.pre_training_metrics(d, y, y, group=group)
    post = bias.post_training_metrics(d, y, p, group=group)
    ours = time.perf_counter() - started
    started = time.perf_counter()
    features = frame[["income", "debt"]].to_numpy()
    flip = bias.flip_test(features, d, p)
    flip_s = time.perf_counter() - started

    started = time.perf_counter()
    expected = reference(frame)
    reference_s = time.perf_counter() - started
    merged = {**pre, **post}
    worst = max(abs(merged[name] - value) for name, value in expected.items())
    print(f"ours: {len(pre)} pre-training + {len(post)} post-training metrics on {N:,} rows in {ours:.2f} s; "
          f"flip test (kNN, k=5) {flip_s:.1f} s more, FT = {flip:.4f}")
    print(f"pandas groupby reference: {len(expected)} metrics in {reference_s:.2f} s; largest difference {worst:.2e}")
    result_line("bias_metrics", ours, reference_s)


if __name__ == "__main__":
    main()
