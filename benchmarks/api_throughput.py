"""1,000 prompts against the loopback OpenAI-compatible server (200 ms per request, concurrency 16).

Reference: the ideal bound, 1,000 x 0.2 s / 16 = 12.5 s. The timed run starts with an empty
cache (cache_hits must be 0) and sends every request. Also reported: the same run with 20%
injected faults (every record completes, or is recorded as an error once retries run out),
and a cached re-run, which must be >= 50x faster than the first and send no request.
Last line: {"name", "ours_s", "reference_s", "ratio", "cache_hits"}. Goal: ratio <= 1.15.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from common import result_line

from fmeval import evaluate
from fmeval.model_runners.openai_compatible import OpenAICompatibleRunner
from fmeval.testing import FakeOpenAIServer

N, LATENCY_S, CONCURRENCY = 1000, 0.2, 16


def timed_run(server: FakeOpenAIServer, data: Path, output: Path, cache_dir: Path) -> tuple[float, object]:
    runner = OpenAICompatibleRunner("bench", base_url=server.url, api_key_env=None, max_concurrency=CONCURRENCY,
                                    timeout_s=1.0)
    started = time.perf_counter()
    summary = evaluate(evaluation="factual_knowledge", dataset=data, model=runner, output=output,
                       cache_dir=cache_dir, progress=False)
    return time.perf_counter() - started, summary


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = tmp / "prompts.jsonl"
        data.write_text("".join(json.dumps({"model_input": f"prompt {i}", "target_output": f"{i}"}) + "\n" for i in range(N)))

        with FakeOpenAIServer(latency_s=LATENCY_S) as server:
            ours, first = timed_run(server, data, tmp / "first", tmp / "cache")
            sent = server.requests
            cached, again = timed_run(server, data, tmp / "cached", tmp / "cache")
            cached_requests = server.requests - sent
        assert first.engine["cache_hits"] == 0 and sent == N, "the timed run must send every request"
        assert cached_requests == 0 and again.engine["cache_hits"] == N
        print(f"first run: {ours:.2f} s, {sent} requests, peak {server.peak_in_flight} in flight, "
              f"{first.num_errors} errors")
        print(f"cached re-run: {cached:.3f} s, {cached_requests} requests, {ours / cached:.0f}x faster "
              f"(goal >= 50x, 0 requests)")

        with FakeOpenAIServer(latency_s=LATENCY_S, fault_rate=0.2, timeout_delay_s=1.5, seed=1) as faulty:
            faulty_s, faulty_summary = timed_run(faulty, data, tmp / "faulty", tmp / "faulty-cache")
        lines = (tmp / "faulty" / "records.jsonl").read_text().splitlines()
        completed = sum(1 for line in lines if json.loads(line)["error"] is None)
        print(f"with 20% faults: {faulty_s:.2f} s, {faulty.requests} requests, injected {dict(faulty.injected)}; "
              f"{completed} records completed, {faulty_summary.num_errors} recorded as errors, "
              f"{len(lines)}/{N} records written; retries {faulty_summary.engine['retries']}, "
              f"lowest concurrency {faulty_summary.engine.get('lowest_concurrency')}")

        assert len(lines) == N, "with faults, every record must still be written (answered or with its error)"
    result_line("api_throughput", ours, N * LATENCY_S / CONCURRENCY, cache_hits=0)


if __name__ == "__main__":
    main()
