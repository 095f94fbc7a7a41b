"""Runs killed at random moments resume to exactly the full record set; secrets never land anywhere."""
import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from fmeval import evaluate
from fmeval.model_runners.openai_compatible import OpenAICompatibleRunner
from fmeval.testing import FakeOpenAIServer

REPO = Path(__file__).resolve().parent.parent
N = 300


def write_dataset(path, n=N):
    path.write_text("".join(json.dumps({"model_input": f"q{i}", "target_output": f"q{i}"}) + "\n" for i in range(n)))
    return path


def _saved_records(out):
    try:
        return (out / "records.jsonl").read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def command(data, out):
    return [sys.executable, "-m", "fmeval", "run", "-e", "factual_knowledge", "-d", str(data),
            "-m", "function:tests.support:logged_echo", "--no-cache", "--no-progress", "-o", str(out)]


def test_sigkill_at_random_points_then_resume_gives_each_record_once(tmp_path):
    """A local (batch) model: each answer is saved as its batch completes, so across four kills at
    most the batch in flight (one prompt) is asked again, and no record is lost or written twice.
    Each kill waits for a random number of new saved records, never for a time, so a loaded machine
    neither kills a run before it starts nor lets it finish."""
    n = 600
    data, out, log = write_dataset(tmp_path / "d.jsonl", n), tmp_path / "run", tmp_path / "calls.log"
    env = {**os.environ, "PYTHONPATH": str(REPO), "FMEVAL_TEST_CALL_LOG": str(log)}
    rng = random.Random(2024)
    for _ in range(4):
        saved = _saved_records(out)
        kill_at = saved + rng.randint(20, 80)
        process = subprocess.Popen(command(data, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while _saved_records(out) < kill_at:
            assert process.poll() is None, "the run ended before it could be killed"
            time.sleep(0.005)  # polls the records file: what is awaited is its progress, not a time
        process.send_signal(signal.SIGKILL)
        process.wait()
    kills = 4
    written_before = len((out / "records.jsonl").read_text().splitlines())
    assert 0 < written_before < n  # saved as records complete, not when a chunk of 256 ends
    final = subprocess.run(command(data, out), env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    ids = [json.loads(line)["record_id"] for line in (out / "records.jsonl").read_text().splitlines()]
    assert sorted(ids, key=int) == [str(i) for i in range(n)]  # every record, each exactly once
    calls = log.read_text().splitlines()
    assert n <= len(calls) <= n + kills  # at most the prompt in flight at each kill is asked twice
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_records"] == n and summary["dataset_scores"][0]["value"] == 1.0
    assert summary["engine"]["resumed_records"] >= written_before - 1  # a torn last line is redone


def test_a_line_cut_short_is_dropped_and_redone(tmp_path):
    data, out = write_dataset(tmp_path / "d.jsonl", 6), tmp_path / "run"
    calls = []

    def model(prompt):
        calls.append(prompt)
        return prompt

    from fmeval.model_runners.function import FunctionRunner

    evaluate(evaluation="factual_knowledge", dataset=data, model=FunctionRunner(model), output=out, progress=False)
    lines = (out / "records.jsonl").read_text().splitlines(keepends=True)
    (out / "records.jsonl").write_text("".join(lines[:3]) + lines[3][:25])  # killed while writing line 4
    summary = evaluate(evaluation="factual_knowledge", dataset=data, model=FunctionRunner(model), output=out,
                       progress=False)
    assert calls[6:] == ["q3", "q4", "q5"]
    assert summary.num_records == 6 and summary.engine["resumed_records"] == 3


def test_api_key_never_lands_in_any_artifact(tmp_path, monkeypatch, caplog, capsys):
    key = "sk-fmeval-PLANTED-7f3a9c2e51d04b8a"
    monkeypatch.setenv("FMEVAL_TEST_API_KEY", key)
    data = write_dataset(tmp_path / "d.jsonl", 12)
    caplog.set_level(logging.DEBUG)
    # The server puts the Authorization header it got into its error bodies, as careless servers do.
    script = ["500", "ok", "500", "429", "ok"] * 4
    with FakeOpenAIServer(script=script, echo_authorization_in_errors=True) as server:
        runner = OpenAICompatibleRunner("m", base_url=server.url, api_key_env="FMEVAL_TEST_API_KEY")
        summary = evaluate(evaluation="factual_knowledge", dataset=data, model=runner, output=tmp_path / "run",
                           cache_dir=tmp_path / "cache", engine_options={"max_retries": 0}, progress=False)
    assert f"Bearer {key}" in server.authorization_headers  # the key was really used...
    assert summary.num_errors > 0  # ...and errors that quoted it were recorded
    records = (tmp_path / "run" / "records.jsonl").read_text()
    assert "***" in records  # the quoted key was masked
    artifacts = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file() and path != data}
    assert any(p.suffix == ".sqlite" for p in artifacts) and any(p.name == "summary.json" for p in artifacts)
    for path, content in artifacts.items():
        assert key.encode() not in content, f"API key found in {path}"
    captured = capsys.readouterr()
    assert key not in caplog.text and key not in captured.out and key not in captured.err
    assert "FMEVAL_TEST_API_KEY" not in json.dumps(summary.model)  # not even the variable's name is needed


def test_a_key_in_the_base_urls_user_info_never_lands_in_any_output_or_stderr(tmp_path):
    """`http://user:KEY@host` is sent as `Authorization: Basic base64(user:KEY)`; a server that
    echoes that header in its errors must not carry the key, nor its base64 forms, into any output."""
    import base64

    key = "sk-userinfo-PLANTED-93be10c4"
    basic = base64.b64encode(f"tokenuser:{key}".encode()).decode()
    forbidden = [key, f"tokenuser:{key}", basic, basic.rstrip("="), base64.b64encode(key.encode()).decode().rstrip("=")]
    data = write_dataset(tmp_path / "d.jsonl", 6)
    env = {**os.environ, "FMEVAL_DEBUG": "1", "PYTHONPATH": str(REPO)}
    env.pop("OPENAI_API_KEY", None)
    with FakeOpenAIServer(script=["500", "400", "malformed_json", "ok"] * 2, echo_authorization_in_errors=True) as server:
        url = server.url.replace("http://", f"http://tokenuser:{key}@")
        done = subprocess.run(
            [sys.executable, "-m", "fmeval", "run", "-e", "factual_knowledge", "-d", str(data), "-m", "openai:m",
             "--base-url", url, "--max-retries", "0", "--no-cache", "--no-progress", "-o", str(tmp_path / "run")],
            capture_output=True, text=True, env=env, cwd=tmp_path)
    assert f"Basic {basic}" in server.authorization_headers  # the key was really sent, as a Basic header...
    records = (tmp_path / "run" / "records.jsonl").read_text()
    assert "injected 500" in records and "***" in records  # ...and errors that quoted it were recorded, masked
    outputs = {path: path.read_text(errors="replace") for path in tmp_path.rglob("*") if path.is_file() and path != data}
    outputs["stdout"], outputs["stderr"] = done.stdout, done.stderr
    for where, text in outputs.items():
        for form in forbidden:
            assert form not in text, f"{form!r} found in {where}"


def test_authorization_values_are_masked_in_every_form():
    import base64

    from fmeval.secrets import redact, register_authorization, register_url_credentials

    register_authorization("Basic " + base64.b64encode(b"alice:s3cret-basic-pw").decode())
    register_authorization("Bearer tok-bearer-1234567")
    register_url_credentials("https://bob:p%40ss-in-url-99@example.com/v1")
    text = ("alice:s3cret-basic-pw s3cret-basic-pw tok-bearer-1234567 p%40ss-in-url-99 p@ss-in-url-99 "
            + base64.b64encode(b"bob:p@ss-in-url-99").decode() + " " + base64.b64encode(b"tok-bearer-1234567").decode())
    assert redact(text) == " ".join(["***"] * 7)
