"""2,000 prompts to the loopback OpenAI-compatible server (200 ms per request) through Ray: 4
workers under one global concurrency limit of 64, the driver writing the run.

Reference: the ideal bound, 2,000 x 0.2 s / 64 = 6.25 s. Ray itself is started first, untimed
(as a cluster is already up); the timed run includes starting its 4 workers. A second line
reports the local backend on the same work. Both runs start with no cache (cache_hits must be
0), every record must be answered, and the server must never see more than 64 requests at once.
Last line: {"name", "ours_s", "reference_s", "ratio", "cache_hits", "local_s", "workers_start_s", "model_s"}.
Goal: ratio <= 1.3.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import ray
from common import result_line

from fmeval import evaluate
from fmeval.testing import FakeOpenAIServer

N, LATENCY_S, CONCURRENCY, WORKERS = 2000, 0.2, 64, 4


def timed_run(server: FakeOpenAIServer, data: Path, output: Path, **backend: object) -> tuple[float, object]:
    started = time.perf_counter()
    summary = evaluate(evaluation="factual_knowledge", dataset=data, model="openai:bench", cache=False,
                       model_options={"base_url": server.url, "api_key_env": "", "timeout": 5.0},
                       engine_options={"max_concurrency": CONCURRENCY}, output=output, progress=False, **backend)
    seconds = time.perf_counter() - started
    assert summary.num_records == N and summary.num_errors == 0 and summary.engine["cache_hits"] == 0
    return seconds, summary


def main() -> None:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = tmp / "prompts.jsonl"
        data.write_text("".join(json.dumps({"model_input": f"prompt {i}", "target_output": f"{i}"}) + "\n"
                                for i in range(N)))
        with FakeOpenAIServer(latency_s=LATENCY_S) as server:
            ours, summary = timed_run(server, data, tmp / "ray", backend="ray", ray_workers=WORKERS)
            peak = server.peak_in_flight
            local, _ = timed_run(server, data, tmp / "local")
        assert peak <= CONCURRENCY, f"{peak} requests in flight: the global limit did not hold"
    ideal = N * LATENCY_S / CONCURRENCY
    start_s, model_s = summary.timings["load_s"], summary.timings["model_s"]
    print(f"ray workers started in {start_s:.2f} s (Ray's process start); model calls took {model_s:.2f} s, "
          f"{model_s / (N * LATENCY_S / CONCURRENCY):.3f} of the bound")
    print(f"ray: {ours:.2f} s with {WORKERS} workers (peak {peak} requests in flight; {summary.engine['requests']} "
          f"requests); local backend on the same work: {local:.2f} s; ideal {ideal:.2f} s")
    ray.shutdown()
    result_line("ray_api_throughput", ours, ideal, cache_hits=0, local_s=round(local, 3),
                workers_start_s=round(start_s, 3), model_s=round(model_s, 3))


if __name__ == "__main__":
    main()
