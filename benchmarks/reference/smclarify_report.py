"""Runs in smclarify's own virtual environment (pandas < 2.3, numpy < 2): times smclarify 0.5's
bias_report on a Parquet file and prints one JSON object with the seconds and the reports.

usage: smclarify_report.py DATA.parquet JOB.json   (JOB: facets, label, stages, rounds, flip test columns)
"""
import json
import sys
import time

import pandas as pd
from smclarify.bias.metrics import FT
from smclarify.bias.report import FacetColumn, LabelColumn, StageType, bias_report


def main() -> None:
    frame = pd.read_parquet(sys.argv[1])
    job = json.loads(open(sys.argv[2]).read())
    label, positive = job["label"], job["positive"]
    seconds = {"pre_training": [], "post_training": []}
    reports = {}
    for _ in range(job["rounds"]):
        for stage, metrics in (("pre_training", ["all"]), ("post_training", job["post_training_metrics"])):
            started = time.perf_counter()
            for facet, value in job["facets"]:
                reports[f"{stage}/{facet}"] = bias_report(
                    frame, FacetColumn(facet, value), LabelColumn(label, frame[label], positive), StageType(stage),
                    LabelColumn(job["predicted"], frame[job["predicted"]], positive), metrics=metrics,
                    group_variable=frame[job["group"]])
            seconds[stage].append(time.perf_counter() - started)
    flip = job["flip_test"]
    started = time.perf_counter()
    ft = FT(frame[flip["features"]], frame[flip["facet"]] == flip["value"], frame[job["predicted"]].isin(positive))
    seconds["FT"] = [time.perf_counter() - started]
    print(json.dumps({"seconds": seconds, "reports": reports, "FT": ft}))


if __name__ == "__main__":
    main()
