"""Data capture: the runner wrapper and the reverse proxy (real loopback servers), SageMaker's
layout, sampling, rotation, a SIGKILLed proxy, planted secrets, and ground truth by event id."""
import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from fmeval import evaluate
from fmeval.cli import main
from fmeval.datasets import DataConfig
from fmeval.model_runners.function import FunctionRunner
from fmeval.monitoring import capture
from fmeval.monitoring.data_capture import CaptureWriter, ReadStats, decoded, encode_body, read_events
from fmeval.monitoring.ground_truth import add_ground_truth, merge
from tests.support import serve_in_thread

REPO = Path(__file__).resolve().parent.parent
KEY = "sk-capture-PLANTED-5f1e9a7c3b"
LAYOUT = re.compile(r"/m/\d{4}/\d{2}/\d{2}/\d{2}/\d{2}-\d{2}-\d{3}-\d{6}-[0-9a-f]{8}\.jsonl$")


def test_the_wrapper_captures_each_generation_in_sagemakers_layout(tmp_path):
    rows = [{"question": f"q{i}", "answer": f"Q{i}"} for i in range(12)]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    wrapped = capture(FunctionRunner(str.upper, name="upper"), tmp_path / "capture", name="m",
                      attributes={"release": "v2"})
    summary = evaluate(evaluation="factual_knowledge", dataset=DataConfig(
        dataset_name="d", dataset_uri=str(data), model_input="question", target_output="answer"),
        model=wrapped, prompt_template="$model_input", output=tmp_path / "run", progress=False, n_bootstrap=20,
        cache=False)
    wrapped.close()
    assert summary.score("factual_knowledge").value == 1.0
    files = list((tmp_path / "capture").rglob("*.jsonl"))
    assert files and all(LAYOUT.search(str(f)) for f in files)
    events = list(read_events(tmp_path / "capture"))
    assert len(events) == 12
    pairs = {decoded(e["captureData"]["endpointInput"])["prompt"]: decoded(e["captureData"]["endpointOutput"])["output"]
             for e in events}
    assert pairs == {f"q{i}": f"Q{i}" for i in range(12)}
    first = events[0]
    assert first["captureData"]["endpointInput"]["mode"] == "INPUT" and first["eventVersion"] == "0"
    assert first["eventMetadata"]["customAttributes"] == {"release": "v2"}
    assert first["eventMetadata"]["model"]["model"] == "upper" and first["eventMetadata"]["latencyMs"] >= 0
    assert re.match(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$", first["eventMetadata"]["inferenceTime"])


def test_sampling_is_seeded_and_rotation_splits_files(tmp_path):
    def kept(seed, folder=None):
        writer = CaptureWriter(tmp_path / (folder or f"again{seed}"), sampling_percentage=30, seed=seed,
                               max_file_bytes=4000)
        chosen = []
        for i in range(1000):
            if writer.sampled():
                writer.write(request=encode_body(json.dumps({"i": i}).encode(), "application/json"),
                             response=encode_body(b'{"ok": 1}', "application/json"), latency_ms=1.0)
                chosen.append(i)
        writer.close()
        return chosen, writer

    chosen, writer = kept(1, "s1")
    assert chosen == kept(1)[0] != kept(2)[0]
    assert 250 <= len(chosen) <= 350 and writer.sampled_out == 1000 - len(chosen)
    files = sorted((tmp_path / "s1").rglob("*.jsonl"))
    assert len(files) > 5 and all(f.stat().st_size < 4000 + 400 for f in files)
    assert [decoded(e["captureData"]["endpointInput"])["i"] for e in read_events(tmp_path / "s1")] == chosen


def test_torn_and_corrupt_lines_are_skipped_with_their_place(tmp_path):
    writer = CaptureWriter(tmp_path)
    for i in range(3):
        writer.write(request=encode_body(b'{"x": 1}', "application/json"), response=encode_body(b"\xff\x00", "image/png"),
                     latency_ms=2.0)
    writer.close()
    (path,) = list(tmp_path.rglob("*.jsonl"))
    with open(path, "a") as handle:
        handle.write('{"not": "an event"}\n{"captureData": {"endpointInput"')
    stats = ReadStats()
    events = list(read_events(tmp_path, stats))
    assert len(events) == 3 and decoded(events[0]["captureData"]["endpointOutput"]) == b"\xff\x00"
    assert stats.skipped == [f"{path}:4: not a capture event ('captureData')", f"{path}:5: torn last line"]


# -- the proxy -----------------------------------------------------------------------------------------
def upstream_app():
    """A model server: JSON answers that echo the request (and its Authorization header, as a
    careless server might), and a server-sent-event stream sent a word at a time."""
    from aiohttp import web

    async def answer(request):
        body = await request.json()
        return web.json_response({"echo": body, "auth_seen": request.headers.get("Authorization", "")[:6]})

    async def stream(request):
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for word in ("one", "two", "three"):
            await response.write(f"data: {word}\n\n".encode())
            await asyncio.sleep(0.05)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/invocations", answer)
    app.router.add_post("/stream", stream)
    return app


def post(url, body, headers=None):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={
        "Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read(), dict(response.headers)


def test_the_proxy_passes_answers_through_and_captures_them_without_secrets(tmp_path):
    from fmeval.monitoring.proxy import build_proxy

    upstream, stop_upstream = serve_in_thread(upstream_app())
    writer = CaptureWriter(tmp_path / "capture", name="endpoint")
    proxy, stop_proxy = serve_in_thread(build_proxy(upstream, writer, redact_headers=["X-Tenant-Secret"],
                                                    attribute_headers=["X-Request-Source"]))
    try:
        headers = {"Authorization": f"Bearer {KEY}", "X-Tenant-Secret": "tenant-SECRET-value-123",
                   "X-Request-Source": "checkout", "X-Amzn-SageMaker-Custom-Attributes": "trace=7"}
        direct = post(f"{upstream}/invocations?v=1", {"inputs": "hello"}, headers)
        through = post(f"{proxy}/invocations?v=1", {"inputs": "hello"}, headers)
        assert through[:2] == direct[:2]  # the same status and body

        started, arrivals = time.perf_counter(), []
        request = urllib.request.Request(f"{proxy}/stream", data=b"{}", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            for line in response:
                if line.strip():
                    arrivals.append((line.strip(), time.perf_counter() - started))
        assert [line for line, _ in arrivals] == [b"data: one", b"data: two", b"data: three"]
        assert arrivals[-1][1] - arrivals[0][1] > 0.08  # passed through as they came, not all at the end
    finally:
        stop_proxy()
        stop_upstream()
    events = list(read_events(tmp_path / "capture"))
    assert len(events) == 2
    json_event, stream_event = events
    assert decoded(json_event["captureData"]["endpointInput"]) == {"inputs": "hello"}
    assert decoded(json_event["captureData"]["endpointOutput"])["echo"] == {"inputs": "hello"}
    assert json_event["eventMetadata"]["customAttributes"] == {"x-amzn-sagemaker-custom-attributes": "trace=7",
                                                               "x-request-source": "checkout"}
    assert stream_event["captureData"]["endpointOutput"]["data"] == "data: one\n\ndata: two\n\ndata: three\n\n"
    for path in (tmp_path / "capture").rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert KEY not in text and "tenant-SECRET" not in text


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_killed_proxy_loses_no_answered_request(tmp_path):
    upstream, stop_upstream = serve_in_thread(upstream_app())
    port = free_port()
    proxy = subprocess.Popen([sys.executable, "-m", "fmeval", "capture", "serve", "--upstream", upstream,
                              "--port", str(port), "--output", str(tmp_path / "capture")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        for i in range(25):
            assert post(f"http://127.0.0.1:{port}/invocations", {"inputs": i})[0] == 200
        proxy.send_signal(signal.SIGKILL)
        proxy.wait()
    finally:
        proxy.kill()
        stop_upstream()
    inputs = [decoded(e["captureData"]["endpointInput"])["inputs"] for e in read_events(tmp_path / "capture")]
    assert inputs == list(range(25))


def test_ground_truth_is_merged_by_event_id_and_unknown_ids_are_reported(tmp_path, capsys):
    writer = CaptureWriter(tmp_path / "capture")
    ids = [writer.write(request=encode_body(json.dumps({"x": i}).encode(), "application/json"),
                        response=encode_body(json.dumps({"score": i / 10}).encode(), "application/json"),
                        latency_ms=1.0) for i in range(4)]
    writer.close()
    labels = tmp_path / "labels.csv"
    labels.write_text(f"eventId,label\n{ids[0]},1\n{ids[2]},0\nno-such-event,1\n")
    assert main(["monitor", "ground-truth", "add", str(labels), "--ground-truth", str(tmp_path / "truth"),
                 "--capture", str(tmp_path / "capture")]) == 0
    out, err = capsys.readouterr()
    assert "2 captured event(s) have a label, 2 have none" in out
    assert "1 label(s) name event ids the capture does not hold (first: no-such-event)" in err
    merged = merge(tmp_path / "capture", tmp_path / "truth")
    assert [(decoded(e["captureData"]["endpointInput"])["x"], label) for e, label in merged.pairs] == [(0, 1), (2, 0)]  # CSV numbers read as numbers
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"label": 1}\n')
    with pytest.raises(Exception, match=r"bad.jsonl:1: each row needs an eventId"):
        add_ground_truth(bad, tmp_path / "truth")


def held_upstream():
    """A model server that holds each request until the test releases it (an event, not a sleep)."""
    import threading

    from aiohttp import web

    arrived, release = threading.Event(), threading.Event()

    async def answer(request):
        arrived.set()
        await asyncio.to_thread(release.wait, 30)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/invocations", answer)
    return app, arrived, release


def test_a_slow_upstream_is_said_to_have_timed_out_and_the_timeout_is_configurable(tmp_path):
    import urllib.error

    from fmeval.monitoring.proxy import build_proxy

    app, arrived, release = held_upstream()
    upstream, stop_upstream = serve_in_thread(app)
    writer = CaptureWriter(tmp_path / "capture")
    proxy, stop_proxy = serve_in_thread(build_proxy(upstream, writer, timeout_s=0.3))
    try:
        with pytest.raises(urllib.error.HTTPError) as failed:
            post(f"{proxy}/invocations", {"inputs": 1})
        assert arrived.is_set()  # the upstream had the request and was still holding it
        assert failed.value.code == 504
        assert json.loads(failed.value.read()) == {"error": "upstream timed out after 0.3 s"}  # today: 502, unreachable
    finally:
        release.set()
        stop_proxy()
        stop_upstream()
    with pytest.raises(Exception, match="must be a positive number of seconds"):
        build_proxy(upstream, writer, timeout_s=0)


def test_the_proxy_has_no_timeout_of_its_own_by_default(tmp_path):
    """Held upstream, released only once the proxy's session is known to carry no total timeout."""
    from fmeval.monitoring.proxy import build_proxy

    app, arrived, release = held_upstream()
    upstream, stop_upstream = serve_in_thread(app)
    proxy_app = build_proxy(upstream, CaptureWriter(tmp_path / "capture"))
    proxy, stop_proxy = serve_in_thread(proxy_app)
    try:
        import threading

        answers = []
        client = threading.Thread(target=lambda: answers.append(post(f"{proxy}/invocations", {"inputs": 1})))
        client.start()
        assert arrived.wait(10)
        assert proxy_app["session"].timeout.total is None  # today: 300 s
        release.set()
        client.join(10)
        assert answers and answers[0][0] == 200
    finally:
        release.set()
        stop_proxy()
        stop_upstream()


@pytest.mark.parametrize("flags, message", [
    (["--output", "FILE"], "is a file (or inside one)"),
    (["--upstream", "not-a-url"], "--upstream must be an http(s) URL"),
    (["--max-file-mb", "-1"], "--max-file-mb and --rotate-seconds must be positive"),
    (["--rotate-seconds", "0"], "--max-file-mb and --rotate-seconds must be positive"),
])
def test_capture_serve_refuses_bad_options_before_it_starts(tmp_path, capsys, flags, message):
    (tmp_path / "FILE").write_text("not a directory")
    with socket.socket() as taken:  # a port in use: a proxy that got as far as serving fails (exit 3), never hangs
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        options = {"--upstream": "http://127.0.0.1:9", "--output": str(tmp_path / "capture"),
                   "--port": str(taken.getsockname()[1])}
        for flag, value in zip(flags[::2], flags[1::2]):
            options[flag] = str(tmp_path / value) if value == "FILE" else value
        # today --output FILE starts, then answers every request 500; the others start as well
        assert main(["capture", "serve", *[item for pair in options.items() for item in pair]]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_capture_line_that_is_not_utf8_is_skipped_with_its_place(tmp_path):
    writer = CaptureWriter(tmp_path)
    for city in ("paris", "café"):
        writer.write(request=encode_body(json.dumps({"city": city}, ensure_ascii=False).encode(), "application/json"),
                     response=encode_body(b'{"ok": 1}', "application/json"), latency_ms=1.0)
    writer.close()
    (path,) = list(tmp_path.rglob("*.jsonl"))
    data = path.read_bytes().replace("café".encode(), b"caf\xe9")  # Latin-1 bytes inside the second line
    path.write_bytes(data)
    stats = ReadStats()
    events = list(read_events(tmp_path, stats))
    assert [decoded(e["captureData"]["endpointInput"])["city"] for e in events] == ["paris"]  # today: also 'caf\ufffd'
    assert stats.skipped == [f"{path}:2: not UTF-8 (byte 0xe9 at {data.splitlines()[1].index(b'caf') + 3})"]


def test_a_stream_cut_by_the_upstream_timeout_ends_and_is_not_captured(tmp_path):
    import threading

    from aiohttp import web

    from fmeval.monitoring.proxy import build_proxy

    release = threading.Event()

    async def stream(request):
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: one\n\n")
        await asyncio.to_thread(release.wait, 30)  # holds the rest until the test lets go
        await response.write(b"data: two\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/stream", stream)
    upstream, stop_upstream = serve_in_thread(app)
    proxy, stop_proxy = serve_in_thread(build_proxy(upstream, CaptureWriter(tmp_path / "capture"), timeout_s=0.3))
    try:
        request = urllib.request.Request(f"{proxy}/stream", data=b"{}", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200 and response.read() == b"data: one\n\n"  # the stream ends at the timeout
    finally:
        release.set()
        stop_proxy()
        stop_upstream()
    assert list(read_events(tmp_path / "capture")) == []
