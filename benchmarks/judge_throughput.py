"""200 outputs graded by a judge on the loopback OpenAI-compatible server (200 ms per request,
concurrency 16), through `fmeval run`'s model_graded evaluation (the outputs come with the data).
The server runs in its own process, as a provider does: in this one it would compete with the
run for the interpreter lock.

Reference: the ideal bound, 200 x 0.2 s / 16 = 2.5 s. The timer starts after the imports (fmeval's,
and aiohttp's, which alone takes about 0.25 s here, once per process), like the bound; everything
else is timed: planning the run, starting the judge's engine and its connections, grading,
writing the records and the summary. The run starts with an empty cache and
store, and the judge must receive every one of the 200 requests (no cache hits); every record
must get its grade. Last line: {"name", "ours_s", "reference_s", "ratio", "judge_requests"}.
Goal: ratio <= 1.15.
"""
from __future__ import annotations

import importlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import result_line

from fmeval import evaluate
from fmeval.datasets.config import DataConfig

N, LATENCY_S, CONCURRENCY = 200, 0.2, 16
# The judge server's process: prints its URL, serves until its stdin closes, then prints its counters.
SERVER = f"""
import json, sys
from fmeval.testing import FakeOpenAIServer

def grade(prompt):
    return "[[5]]" if "answer 7" in prompt else "[[3]]"

with FakeOpenAIServer(latency_s={LATENCY_S}, responder=grade) as server:
    print(server.url, flush=True)
    sys.stdin.read()
print(json.dumps({{"requests": server.requests, "peak_in_flight": server.peak_in_flight}}), flush=True)
"""


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = tmp / "outputs.jsonl"
        data.write_text("".join(json.dumps({"q": f"question {i}", "a": f"answer {i % 10}", "out": f"answer {i % 8}"})
                                + "\n" for i in range(N)))
        dataset = DataConfig(dataset_name="outputs", dataset_uri=str(data), model_input="q", target_output="a",
                             model_output="out")
        server = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True)
        url = server.stdout.readline().strip()
        importlib.import_module("aiohttp")  # once per process, before the timer (see above)

        options = {"judge_model": "openai:judge", "judge_model_options": {"base_url": url, "api_key_env": ""},
                   "judge_engine_options": {"max_concurrency": CONCURRENCY}}
        started = time.perf_counter()
        summary = evaluate(evaluation="model_graded", dataset=dataset, model=None, output=tmp / "run",
                           cache_dir=str(tmp / "cache"), progress=False, evaluation_options=options)
        ours = time.perf_counter() - started
        counters = json.loads(server.communicate("")[0].strip().splitlines()[-1])
    assert counters["requests"] == N, f"the judge must receive every request (no cache hits): got {counters}"
    assert summary.engine["judges"][0]["requests"] == N and summary.engine["judges"][0]["cache_hits"] == 0
    # outputs "answer i % 8" against targets "answer i % 10": 5 of 40 match (graded 5), the rest graded 3
    assert summary.num_errors == 0 and abs(summary.score("correctness").value - 0.6) < 1e-9
    print(f"graded {N} outputs in {ours:.2f} s, peak {counters['peak_in_flight']} judge requests in flight, "
          f"mean correctness {summary.score('correctness').value:.3f}")
    result_line("judge_throughput", ours, N * LATENCY_S / CONCURRENCY, judge_requests=N)


if __name__ == "__main__":
    main()
