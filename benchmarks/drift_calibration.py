"""The false-alarm rate and the power of the data-quality monitor's verdicts, against Evidently's
DataDriftPreset on the same windows, on synthetic data whose truth is known.

The population has five columns: `num` (normal), `skewed` (log-normal), `category` (five values
of unequal shares), `flag` (an integer 0/1 at 30%) and `patchy` (normal, 2% missing). The
baseline is 50,000 rows of it. Windows of 200, 2,000 and 100,000 rows are drawn:
- from the same population (200 windows per size): every alarm is a false alarm;
- with a planted change (30 per size): `num` shifted by 0.1, 0.3 and 0.5 of its
  standard deviation; a new category at 2% and at 10% (the others' shares scaled down); `num`
  missing in 5% of rows (none in the baseline).

Ours alarms on a window when it has any violation (completeness, domain, type, drift checks) or
dataset drift (the calibrated default: any column whose Holm-adjusted p-value is below alpha =
0.01). Evidently alarms when it marks any column drifted (the `drifted_columns >= 1` alarm); its
own dataset verdict (at least half of the columns) is printed too. Both sides get the same frames:
Evidently runs in its own environment (`.bench/evidently`, as drift_scale's), where this script
draws the same windows from the same seeds. Evidently takes 2 to 5 s a window on a 2-core machine,
so it checks the first 20 same-population windows of each size and the first 5 of each change.

Last line: {"name", "ours_s", "reference_s", "ratio", "false_alarm_rate" (the largest over the sizes;
goal <= 0.015), "false_alarm_rates", "evidently_false_alarm_rate", "evidently_false_alarm_rates",
"power_100000_shift_0.3" (goal >= 0.99), "power", "evidently_power"}. Times are each side's checks
of the windows both checked (profiling ours included), data generation left out.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

SIZES = (200, 2000, 100_000)
NULL_WINDOWS = 200
WINDOWS_PER_SHIFT = 30
EVIDENTLY_NULL_WINDOWS = 20  # Evidently takes 2 to 5 s a window here: it checks the first of each kind
EVIDENTLY_PER_SHIFT = 5
BASELINE_ROWS = 50_000
SHIFTS = ("mean_shift_0.1sd", "mean_shift_0.3sd", "mean_shift_0.5sd", "new_category_2%", "new_category_10%",
          "missing_0_to_5%")
CATEGORIES, SHARES = np.array(["a", "b", "c", "d", "e"], dtype=object), np.array([0.4, 0.25, 0.15, 0.12, 0.08])
VENV = Path(__file__).resolve().parent.parent / ".bench" / "evidently"
EVIDENTLY = ["evidently==0.7.23", "pandas<2.3", "pyarrow"]


def draw(rows: int, scenario: str, seed: int) -> pd.DataFrame:
    """`rows` rows of the population, with `scenario`'s change planted ("same": none)."""
    rng = np.random.default_rng(seed)
    shift = float(scenario.split("_")[-1][:-2]) if scenario.startswith("mean_shift") else 0.0
    new_share = float(scenario.split("_")[-1][:-1]) / 100 if scenario.startswith("new_category") else 0.0
    values = np.append(CATEGORIES, "new")
    shares = np.append(SHARES * (1 - new_share), new_share)
    num = rng.normal(shift, 1.0, rows)
    if scenario == "missing_0_to_5%":
        num[rng.random(rows) < 0.05] = np.nan
    patchy = rng.normal(10.0, 2.0, rows)
    patchy[rng.random(rows) < 0.02] = np.nan
    return pd.DataFrame({"num": num, "skewed": rng.lognormal(0.0, 1.0, rows),
                         "category": rng.choice(values, rows, p=shares),
                         "flag": (rng.random(rows) < 0.3).astype(np.int64), "patchy": patchy})


def windows(null_windows: int, per_shift: int) -> list[tuple[str, int, int]]:
    """(scenario, size, seed) of every window, in order."""
    plan = []
    for size in SIZES:
        plan += [("same", size, 1_000_000 + size * 1000 + i) for i in range(null_windows)]
        for k, scenario in enumerate(SHIFTS):
            plan += [(scenario, size, 2_000_000 + size * 1000 + k * 100 + i) for i in range(per_shift)]
    return plan


def evidently_side(plan: list[tuple[str, int, int]]) -> None:
    """Run in Evidently's environment: each window's decisions, one JSON line at the end."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    reference, decisions, seconds = draw(BASELINE_ROWS, "same", 0), [], 0.0
    for scenario, size, seed in plan:
        current = draw(size, scenario, seed)
        started = time.perf_counter()
        snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
        seconds += time.perf_counter() - started
        metrics = snapshot.dict()["metrics"]
        drifted = [m["config"]["column"] for m in metrics if m["config"]["type"].endswith("ValueDrift")
                   and (m["value"] < m["config"]["threshold"] if "p_value" in m["config"]["method"]
                        else m["value"] >= m["config"]["threshold"])]
        share = next(m["value"]["share"] for m in metrics if m["config"]["type"].endswith("DriftedColumnsCount"))
        decisions.append({"drifted": sorted(drifted), "dataset_drift": share >= 0.5})
    print(json.dumps({"seconds": seconds, "decisions": decisions}))


def ensure_venv() -> None:
    if not (VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", *EVIDENTLY], check=True)


def ours_side(plan: list[tuple[str, int, int]]) -> tuple[list[float], list[dict]]:
    from fmeval.monitoring import data_quality as dq

    baseline = dq.Profile.of(draw(BASELINE_ROWS, "same", 0))
    constraints = dq.constraints_json(baseline)
    decisions, seconds = [], []
    for scenario, size, seed in plan:
        current = draw(size, scenario, seed)
        started = time.perf_counter()
        result = dq.check(baseline, constraints, dq.Profile.of(current))
        seconds.append(time.perf_counter() - started)
        decisions.append({"violations": sorted({(v["feature_name"], v["constraint_check_type"])
                                                for v in result["violations"]}),
                          "drifted": sorted(n for n, c in result["drift"]["columns"].items() if c["drifted"]),
                          "dataset_drift": result["drift"]["dataset"]["dataset_drift"]})
    return seconds, decisions


def rates(plan: list[tuple[str, int, int]], alarms: list[bool]) -> dict[str, dict[int, float]]:
    """The share of windows that alarmed, by scenario and size."""
    table: dict[str, dict[int, list[bool]]] = {}
    for (scenario, size, _), alarm in zip(plan, alarms):
        table.setdefault(scenario, {}).setdefault(size, []).append(alarm)
    return {scenario: {size: float(np.mean(found)) for size, found in by_size.items()} for scenario, by_size in table.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--null-windows", type=int, default=NULL_WINDOWS, help="same-population windows per size")
    parser.add_argument("--windows-per-shift", type=int, default=WINDOWS_PER_SHIFT, help="windows per change and size")
    parser.add_argument("--evidently-null-windows", type=int, default=EVIDENTLY_NULL_WINDOWS,
                        help="of those, how many Evidently checks too (the first)")
    parser.add_argument("--evidently-windows-per-shift", type=int, default=EVIDENTLY_PER_SHIFT)
    parser.add_argument("--evidently-side", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    plan = windows(args.null_windows, args.windows_per_shift)
    evidently_null = min(args.null_windows, args.evidently_null_windows)
    evidently_shift = min(args.windows_per_shift, args.evidently_windows_per_shift)
    subset = windows(evidently_null, evidently_shift)
    if args.evidently_side:
        evidently_side(subset)
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import result_line

    ensure_venv()
    ours_times, mine = ours_side(plan)
    done = subprocess.run([str(VENV / "bin" / "python"), __file__, "--evidently-side",
                           *(f"--{name.replace('_', '-')}={value}" for name, value in vars(args).items()
                             if name != "evidently_side")], check=True, capture_output=True, text=True)
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    checked_by_both = set(subset)  # both sides timed on the same windows
    ours_s = sum(seconds for window, seconds in zip(plan, ours_times) if window in checked_by_both)
    ours_rates = rates(plan, [bool(d["violations"]) or d["dataset_drift"] for d in mine])
    evidently_rates = rates(subset, [bool(d["drifted"]) for d in theirs["decisions"]])
    evidently_dataset = rates(subset, [d["dataset_drift"] for d in theirs["decisions"]])
    print(f"ours: {args.null_windows} same-population windows per size and {args.windows_per_shift} per change; "
          f"Evidently: the first {evidently_null} and {evidently_shift} of them (both sides timed on those)")
    print(f"{'windows':18} " + "  ".join(f"{'n=' + str(size):>22}" for size in SIZES))
    print(f"{'':18} " + "  ".join(f"{'ours  evidently (dataset)':>22}" for _ in SIZES))
    for scenario in ("same", *SHIFTS):
        cells = [f"{ours_rates[scenario][size]:6.3f} {evidently_rates[scenario][size]:6.3f} "
                 f"({evidently_dataset[scenario][size]:.3f})" for size in SIZES]
        label = "false alarms" if scenario == "same" else scenario
        print(f"{label:18} " + "  ".join(f"{cell:>22}" for cell in cells))
    result_line("drift_calibration", ours_s, theirs["seconds"],
                false_alarm_rate=max(ours_rates["same"].values()), false_alarm_rates=ours_rates["same"],
                evidently_false_alarm_rate=max(evidently_rates["same"].values()),
                evidently_false_alarm_rates=evidently_rates["same"],
                **{"power_100000_shift_0.3": ours_rates["mean_shift_0.3sd"][100_000]},
                power={s: ours_rates[s] for s in SHIFTS}, evidently_power={s: evidently_rates[s] for s in SHIFTS})


if __name__ == "__main__":
    main()
