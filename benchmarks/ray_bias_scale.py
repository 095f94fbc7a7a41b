"""Pre-training bias metrics on 20,000,000 rows in 20 Parquet files: on Ray Data (a local instance,
2 CPUs) against the local streaming path, each in a fresh process whose peak memory (the
driver's, ru_maxrss) is reported. Both read the same files block by block; their metrics must be
identical (asserted). Goal: the driver's peak memory under 1 GB.

Last line: {"name", "ours_s" (Ray), "reference_s" (local streaming), "ratio", "ray_driver_peak_mb",
"local_peak_mb", "rows"}.

    .venv/bin/python benchmarks/ray_bias_scale.py [--rows 20000000]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from common import result_line

FILES = 20
CONFIG = {
    "label": "outcome", "label_values_or_threshold": ["approved"], "group_variable": "region",
    "facet": [{"name_or_index": "sex", "value_or_threshold": ["female"]}, {"name_or_index": "age", "value_or_threshold": [40.0]},
              {"name_or_index": "plan"}],
    "methods": {"pre_training_bias": {"methods": "all"}},
}
# One side, in its own process: the time of the analysis, and the process's peak memory.
SIDE = """
import json, resource, sys, time
from fmeval.bias.scale import streamed_bias
config, data, backend = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
if backend == "ray":
    import ray
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
started = time.perf_counter()
report = streamed_bias(config, data, backend=backend)
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "report": report}))
"""


def write_files(folder: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    for index, size in enumerate(np.diff(np.linspace(0, rows, FILES + 1).astype(int))):
        sex = rng.choice(np.array(["female", "male"], dtype=object), size, p=[0.45, 0.55])
        approved = rng.random(size) < np.where(sex == "female", 0.32, 0.41)
        pd.DataFrame({
            "sex": sex, "age": rng.normal(42, 12, size).round(1),
            "plan": rng.choice(np.array(["basic", "plus", "pro"], dtype=object), size),
            "region": rng.choice(np.array(["north", "south", "east", "west"], dtype=object), size),
            "outcome": np.where(approved, "approved", rng.choice(np.array(["rejected", "withdrawn"], dtype=object), size)),
        }).to_parquet(folder / f"part-{index:02d}.parquet", index=False)


def run_side(folder: Path, backend: str) -> dict:
    done = subprocess.run([sys.executable, "-c", SIDE, json.dumps(CONFIG), str(folder), backend],
                          check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    rows = parser.parse_args().rows
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_files(folder, rows)
        local = run_side(folder, "local")
        on_ray = run_side(folder, "ray")
    if on_ray["report"] != local["report"]:
        Path("ray_bias_scale.mismatch.json").write_text(json.dumps({"ray": on_ray["report"], "local": local["report"]}))
        raise AssertionError("Ray and the local streaming path disagree: see ray_bias_scale.mismatch.json")
    groups = on_ray["report"]["pre_training_bias_metrics"]["facets"]
    assert [g["value_or_threshold"] for g in groups["plan"]] == ["basic", "plus", "pro"]
    print(f"local streaming: {local['seconds']:.1f} s, peak {local['peak_mb']:.0f} MB; "
          f"Ray Data: {on_ray['seconds']:.1f} s, driver peak {on_ray['peak_mb']:.0f} MB")
    result_line("ray_bias_scale", on_ray["seconds"], local["seconds"], ray_driver_peak_mb=round(on_ray["peak_mb"]),
                local_peak_mb=round(local["peak_mb"]), rows=rows)


if __name__ == "__main__":
    main()
