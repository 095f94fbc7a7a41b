"""`fmeval report` and `fmeval compare` on 2 runs of 100,000 records each, against the reference:
reading the two records.jsonl files with json.loads. Both runs come from the real pipeline
(untimed). Report and compare run in a child process so that their peak memory is measured.
Last line: {"name", "ours_s", "reference_s", "ratio"}. Goal: seconds, memory well under 1 GB.
"""
from __future__ import annotations

import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import result_line

from fmeval import DataConfig, evaluate

N = 100_000


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        rng = random.Random(0)
        data = tmp / "data.jsonl"
        with open(data, "w") as handle:
            for i in range(N):
                a, b = rng.random() < 0.70, rng.random() < 0.68
                handle.write(json.dumps({"id": f"r{i}", "q": f"question {i} " * 3, "a": "Paris<OR>paris",
                                         "out_a": "It is Paris." if a else "Lyon", "out_b": "Paris" if b else "Rome",
                                         "cat": f"c{i % 7}"}) + "\n")
        runs = []
        for column in ("out_a", "out_b"):
            config = DataConfig(dataset_name="scale", dataset_uri=str(data), model_input="q", target_output="a",
                                model_output=column, record_id="id", category="cat")
            started = time.perf_counter()
            evaluate(evaluation="factual_knowledge", dataset=config, model=None, output=tmp / column, progress=False,
                     store=False)
            print(f"built run {column}: {N} records in {time.perf_counter() - started:.1f} s (untimed)")
            runs.append(str(tmp / column))

        started = time.perf_counter()
        for run in runs:
            with open(Path(run) / "records.jsonl") as handle:
                lines = [json.loads(line) for line in handle]
        reference = time.perf_counter() - started
        del lines

        script = (
            "import sys; from fmeval.cli import main\n"
            f"assert main(['report', {runs[0]!r}, {runs[1]!r}, '-o', {str(tmp / 'report.html')!r}]) == 0\n"
            f"assert main(['report', {runs[0]!r}, {runs[1]!r}, '-o', {str(tmp / 'report.md')!r}]) == 0\n"
            f"code = main(['compare', {runs[0]!r}, {runs[1]!r}, '--max-drop', 'factual_knowledge=0.01', "
            f"'--markdown', {str(tmp / 'pr.md')!r}])\n"
            "assert code in (0, 1), code\n"
        )
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", script], check=True, stdout=subprocess.DEVNULL)
        ours = time.perf_counter() - started
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        size_mib = (tmp / "report.html").stat().st_size / 2**20
        print(f"report (HTML + Markdown) and compare: {ours:.2f} s, peak memory {peak_mib:.0f} MiB "
              f"(goal: seconds, well under 1024 MiB); HTML {size_mib:.2f} MiB")
        print((tmp / "pr.md").read_text().splitlines()[6])
    result_line("report_scale", ours, reference)


if __name__ == "__main__":
    main()
