"""Data-quality statistics and drift on 1,000,000 rows x 20 columns (10 numeric, 10 string), against
Evidently's DataDriftPreset on the same data frames in the same run. Evidently runs in its own
environment (`.bench/evidently`, made on first use: evidently 0.7.23 needs pandas < 2.3), and is
not a dependency of fmeval.

Both sides get the reference and current frames in memory, with their libraries imported (SciPy
and DataSketches for ours), and are timed from there: ours
profiles both (one streaming pass over blocks of 100,000 rows each, KLL sketches and value
counts) and checks the current against the reference with the calibrated method (the default:
each column's p-value from its bootstrap null at these sizes); Evidently runs its report. Drift
planted in 6 of the 20 columns. With `--drift-method evidently` on the same profiles, the
decisions must agree with Evidently's on every column (asserted), and the scores are printed side
by side with the calibrated ones.

Last line: {"name", "ours_s", "reference_s", "ratio", "columns_agreeing", "calibrated_drifted"}.
Goal: ratio <= 0.2.
"""
from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from common import result_line

from fmeval.monitoring import data_quality as dq
from fmeval.monitoring.options import DataQualityOptions

VENV = Path(__file__).resolve().parent.parent / ".bench" / "evidently"
EVIDENTLY = ["evidently==0.7.23", "pandas<2.3", "pyarrow"]
METHODS = {"Wasserstein distance (normed)": "wasserstein_normed", "Jensen-Shannon distance": "jensen_shannon"}
REFERENCE = """
import json, sys, time
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
reference, current = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
started = time.perf_counter()
snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
seconds = time.perf_counter() - started
columns = {m["config"]["column"]: {"method": m["config"]["method"], "value": m["value"],
                                   "threshold": m["config"]["threshold"]}
           for m in snapshot.dict()["metrics"] if m["config"]["type"].endswith("ValueDrift")}
print(json.dumps({"seconds": seconds, "columns": columns}))
"""


def frames(rows: int, *, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A reference frame and a current one with drift planted in six columns."""
    rng = np.random.default_rng(seed)

    def make(shifts: dict[str, float], skew: dict[str, float]) -> pd.DataFrame:
        data = {}
        for i in range(10):
            name = f"num{i}"
            data[name] = rng.normal(10 * i + shifts.get(name, 0.0), 1 + i / 5, rows)
            if i % 3 == 0:
                data[name] = np.round(data[name])  # some integral columns
        for i in range(10):
            name, size = f"cat{i}", 3 + 2 * i
            weights = np.linspace(1, 2, size) ** (1 + skew.get(name, 0.0))
            labels = np.array([f"v{i}_{j}" for j in range(size)], dtype=object)
            data[name] = rng.choice(labels, rows, p=weights / weights.sum())
        return pd.DataFrame(data)

    reference = make({}, {})
    current = make({"num1": 0.5, "num4": 0.05, "num7": 0.4}, {"cat2": 3.0, "cat5": 0.05, "cat8": 2.0})
    return reference, current


def ensure_venv() -> None:
    if not (VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", *EVIDENTLY], check=True)


def ours(reference: pd.DataFrame, current: pd.DataFrame) -> tuple[dict, dq.Profile, dq.Profile]:
    def blocks(frame: pd.DataFrame):
        return (frame.iloc[i:i + 100_000] for i in range(0, len(frame), 100_000))

    baseline, window = dq.profile(blocks(reference)), dq.profile(blocks(current))
    return dq.check(baseline, dq.constraints_json(baseline), window), baseline, window


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    rows = parser.parse_args().rows
    ensure_venv()
    reference, current = frames(rows)
    with tempfile.TemporaryDirectory() as tmp:
        reference.to_parquet(Path(tmp) / "reference.parquet")
        current.to_parquet(Path(tmp) / "current.parquet")
        importlib.import_module("scipy.stats")  # Evidently's imports, SciPy's among them, come before its timer too

        started = time.perf_counter()
        calibrated, baseline, window = ours(reference, current)
        ours_s = time.perf_counter() - started
        result = dq.check(baseline, dq.constraints_json(baseline), window,
                          options=DataQualityOptions(drift_method="evidently"))
        done = subprocess.run([str(VENV / "bin" / "python"), "-c", REFERENCE, str(Path(tmp) / "reference.parquet"),
                               str(Path(tmp) / "current.parquet")], check=True, capture_output=True, text=True)
        evidently = json.loads(done.stdout.strip().splitlines()[-1])
    compared, disagreements = 0, []
    for column, theirs in sorted(evidently["columns"].items()):
        mine, ours_calibrated = result["drift"]["columns"][column], calibrated["drift"]["columns"][column]
        theirs_drifted = theirs["value"] >= theirs["threshold"]
        same_test = METHODS.get(theirs["method"]) == mine["test"]
        print(f"{column:6} calibrated {ours_calibrated['score']:.4f} p={ours_calibrated['p_adjusted']:.2g} "
              f"{'drift' if ours_calibrated['drifted'] else '-':5}  ours-evidently {mine['test']:18} {mine['score']:.4f} "
              f"{'drift' if mine['drifted'] else '-':5}  "
              f"evidently {theirs['method']:30} {theirs['value']:.4f} {'drift' if theirs_drifted else '-'}")
        if same_test:
            compared += 1
            if mine["drifted"] != theirs_drifted:
                disagreements.append(column)
    assert compared == len(evidently["columns"]) == 20, f"both sides must use the same tests: {compared} compared"
    assert not disagreements, f"drift decisions differ on {disagreements}"
    drifted = calibrated["drift"]["dataset"]["drifted_columns"]
    print(f"ours (calibrated) {ours_s:.2f} s, Evidently {evidently['seconds']:.2f} s; "
          f"{result['drift']['dataset']['drifted_columns']} of 20 columns drifted on both sides by Evidently's rules, "
          f"{drifted} by the calibrated test")
    result_line("drift_scale", ours_s, evidently["seconds"], columns_agreeing=compared, calibrated_drifted=drifted)


if __name__ == "__main__":
    main()
