"""The latency the capture proxy adds: requests at 200 per second to a loopback
OpenAI-compatible server, directly and through `fmeval capture serve` (each in its own
process), alternating in rounds so that load on the machine hits both alike. Every request
through the proxy must be captured (asserted).

Last line: {"name", "ours_s" (median latency through the proxy), "reference_s" (median direct),
"ratio", "added_ms_median", "requests"}. Goal: added_ms_median <= 2.
"""
from __future__ import annotations

import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from common import result_line

from fmeval.monitoring.data_capture import read_events

RATE, SECONDS_PER_ROUND, ROUNDS = 200, 4.0, 3
BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "How far is the moon?"}]}).encode()
SERVER = """
import sys
from fmeval.testing import FakeOpenAIServer
with FakeOpenAIServer(latency_s=0.0) as server:
    print(server.url, flush=True)
    sys.stdin.read()
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def paced(url: str, count: int) -> list[float]:
    """`count` requests at RATE per second (open loop: each starts on schedule); their latencies."""
    import aiohttp

    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def one() -> None:
            started = time.perf_counter()
            async with session.post(url, data=BODY, headers={"Content-Type": "application/json",
                                                             "Authorization": "Bearer sk-bench-not-a-real-key"}) as r:
                await r.read()
                assert r.status == 200
            latencies.append(time.perf_counter() - started)

        tasks, begin = [], time.perf_counter()
        for i in range(count):
            await asyncio.sleep(max(0.0, begin + i / RATE - time.perf_counter()))
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return latencies


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        upstream = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    text=True)
        base = upstream.stdout.readline().strip()
        port = free_port()
        proxy = subprocess.Popen([sys.executable, "-m", "fmeval", "capture", "serve", "--upstream", base.rsplit("/v1", 1)[0],
                                  "--port", str(port), "--output", tmp], stdout=subprocess.DEVNULL)
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            direct_url = f"{base}/chat/completions"
            proxy_url = f"http://127.0.0.1:{port}/v1/chat/completions"
            asyncio.run(paced(direct_url, 50))  # warm both paths (connections, first imports)
            asyncio.run(paced(proxy_url, 50))
            direct, through = [], []
            count = int(RATE * SECONDS_PER_ROUND)
            for _ in range(ROUNDS):
                direct += asyncio.run(paced(direct_url, count))
                through += asyncio.run(paced(proxy_url, count))
        finally:
            proxy.terminate()
            proxy.wait()
            upstream.communicate("")
        captured = sum(1 for _ in read_events(tmp))
    assert captured == len(through) + 50, f"every proxied request must be captured: {captured}"
    ours, reference = statistics.median(through), statistics.median(direct)
    added_ms = (ours - reference) * 1000
    p95 = lambda values: sorted(values)[int(0.95 * len(values))] * 1000  # noqa: E731
    print(f"{len(through)} requests each way at {RATE}/s: median {reference * 1000:.2f} ms direct, "
          f"{ours * 1000:.2f} ms through the proxy (+{added_ms:.2f} ms); p95 {p95(direct):.2f} vs {p95(through):.2f} ms")
    result_line("capture_overhead", ours, reference, added_ms_median=round(added_ms, 3), requests=len(through))


if __name__ == "__main__":
    main()
