"""How many records per second the single writer of a run can take: 200,000 records through
`evaluate` (factual_knowledge) with a model that answers instantly, so that everything timed is
the driver's own work (reading the dataset twice, rendering prompts, the journal of answers,
scoring, writing records.jsonl, the summary with its bootstrap), against the reference of
writing the same record lines with `json.dumps`, nothing else.

This is the ceiling of a Ray run's throughput whatever the cluster (docs/scaling.md).
Last line: {"name", "ours_s", "reference_s", "ratio", "records_per_s", "cache_hits"}.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from common import result_line

from fmeval import evaluate
from fmeval.model_runners.function import FunctionRunner

N = 200_000


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = tmp / "prompts.jsonl"
        data.write_text("".join(json.dumps({"model_input": f"The capital of country {i} is",
                                            "target_output": f"city {i}"}) + "\n" for i in range(N)))
        model = FunctionRunner(lambda prompts: [f"{p} city {p.split()[-2]}" for p in prompts], batched=True,
                               batch_size=256)
        started = time.perf_counter()
        summary = evaluate(evaluation="factual_knowledge", dataset=data, model=model, cache=False,
                           output=tmp / "run", progress=False, store=False)
        ours = time.perf_counter() - started
        assert summary.num_records == N and summary.num_errors == 0 and summary.engine["cache_hits"] == 0
        assert summary.score("factual_knowledge").value == 1.0
        lines = (tmp / "run" / "records.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines]

        started = time.perf_counter()
        with open(tmp / "reference.jsonl", "w", encoding="utf-8") as sink:
            for record in records:
                sink.write(json.dumps(record, ensure_ascii=False) + "\n")
        reference = time.perf_counter() - started
        assert (tmp / "reference.jsonl").read_text().splitlines() == lines  # the same bytes, written plainly
    print(f"{N} records in {ours:.1f} s: {N / ours:,.0f} records/s through the whole run; "
          f"writing the lines alone: {N / reference:,.0f} records/s")
    result_line("driver_write_rate", ours, reference, records_per_s=round(N / ours), cache_hits=0)


if __name__ == "__main__":
    main()
