"""Data-quality statistics on 10,000,000 rows x 20 columns stream in bounded memory: peak RSS of
`fmeval monitor data-quality baseline` over ten Parquet files, against pandas reading the same
files whole and describing them (the usual way), each in its own process.

Both must agree on the row count and on each numeric column's mean and standard deviation.
Last line: {"name", "ours_s", "reference_s", "ratio", "ours_peak_mb", "reference_peak_mb"}.
Goal: ours_peak_mb < 1024.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import result_line
from drift_scale import frames

REFERENCE = """
import glob, json, sys
import pandas as pd
frame = pd.concat([pd.read_parquet(path) for path in sorted(glob.glob(sys.argv[1] + "/*.parquet"))])
numbers = frame.select_dtypes("number")
described = numbers.describe()
tops = {name: frame[name].value_counts().to_dict() for name in frame.columns if name not in numbers.columns}
print(json.dumps({"rows": len(frame), "mean": numbers.mean().to_dict(), "std": numbers.std(ddof=0).to_dict()}))
"""


def peak_of(command: list[str]) -> tuple[float, float, str]:
    """Seconds, peak resident MB, and stdout of a child process (run alone: RUSAGE_CHILDREN's maximum
    is the largest child so far, so the smaller run goes first)."""
    started = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--files", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        for i in range(args.files):  # written file by file: the generator never holds them all
            frames(args.rows // args.files, seed=i)[0].to_parquet(data / f"part-{i:03d}.parquet")
        fmeval = str(Path(sys.executable).parent / "fmeval")
        ours_s, ours_mb, _ = peak_of([fmeval, "monitor", "data-quality", "baseline", "--data", str(data),
                                      "-o", str(Path(tmp) / "baseline")])
        reference_s, reference_mb, out = peak_of([sys.executable, "-c", REFERENCE, str(data)])
        theirs = json.loads(out.strip().splitlines()[-1])
        statistics = json.loads((Path(tmp) / "baseline" / "statistics.json").read_text())
    assert statistics["dataset"]["item_count"] == theirs["rows"] == args.rows // args.files * args.files
    for feature in statistics["features"]:
        if "numerical_statistics" in feature:
            mine = feature["numerical_statistics"]
            assert abs(mine["mean"] - theirs["mean"][feature["name"]]) <= 1e-9 * max(1.0, abs(mine["mean"]))
            assert abs(mine["std_dev"] - theirs["std"][feature["name"]]) <= 1e-9 * max(1.0, mine["std_dev"])
    print(f"ours {ours_s:.1f} s, peak {ours_mb:.0f} MB; pandas {reference_s:.1f} s, peak {reference_mb:.0f} MB")
    assert ours_mb < 1024, f"peak {ours_mb:.0f} MB: statistics must stream in under 1 GB"
    result_line("drift_memory", ours_s, reference_s, ours_peak_mb=round(ours_mb), reference_peak_mb=round(reference_mb))


if __name__ == "__main__":
    main()
