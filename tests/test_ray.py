"""Evaluations on Ray (a local instance with 2 CPUs): the same records as the local backend,
global limits, a killed worker, credentials that stay in each process."""
import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from fmeval import evaluate
from fmeval.errors import UserError
from fmeval.model_runners.function import FunctionRunner
from fmeval.testing import FakeOpenAIServer

REPO = Path(__file__).resolve().parent.parent
KEY_ENV, KEY = "FMEVAL_RAY_TEST_KEY", "sk-ray-PLANTED-0d9c2b7e4f1a"


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    # Workers inherit the environment Ray starts with: the repo (for function: specs) and a key.
    saved = {name: os.environ.get(name) for name in ("PYTHONPATH", KEY_ENV)}
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), saved["PYTHONPATH"]]))
    os.environ[KEY_ENV] = KEY
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    try:
        yield ray
    finally:
        ray.shutdown()
        for name, value in saved.items():
            os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)


def write_dataset(path, n):
    path.write_text("".join(json.dumps({"model_input": f"q{i}", "target_output": f"q{i}"}) + "\n" for i in range(n)))
    return path


def lines_of(out):
    return {line["record_id"]: line for line in map(json.loads, (out / "records.jsonl").read_text().splitlines())}


def hosted(server, **options):
    return {"model": "openai:fake", "model_options": {"base_url": server.url, "api_key_env": "", **options}}


def test_hosted_model_on_ray_shares_one_concurrency_limit(ray_cluster, tmp_path):
    data = write_dataset(tmp_path / "d.jsonl", 240)
    with FakeOpenAIServer(latency_s=0.05) as server:
        summary = evaluate(evaluation="factual_knowledge", dataset=data, **hosted(server), backend="ray",
                           ray_workers=4, engine_options={"max_concurrency": 8}, cache=False,
                           output=tmp_path / "ray", progress=False)
        assert server.peak_in_flight <= 8 < 4 * 8  # four workers, one limit: not four times the quota
        assert server.peak_in_flight >= 6 and server.requests == 240
        local = evaluate(evaluation="factual_knowledge", dataset=data, **hosted(server), cache=False,
                         engine_options={"max_concurrency": 8}, output=tmp_path / "local", progress=False)
    assert summary.engine["backend"] == "ray" and summary.engine["workers"] == 4
    assert summary.engine["requests"] == 240 and summary.engine["max_concurrency"] == 8
    assert lines_of(tmp_path / "ray").keys() == lines_of(tmp_path / "local").keys()
    for record_id, line in lines_of(tmp_path / "ray").items():
        assert line["model_output"] == lines_of(tmp_path / "local")[record_id]["model_output"] == f"echo: q{record_id}"
    assert summary.dataset_scores == local.dataset_scores


def test_local_model_on_ray_gives_the_local_records_exactly(ray_cluster, tiny_llama_dir, tmp_path):
    data = write_dataset(tmp_path / "d.jsonl", 16)
    common = {"evaluation": "qa_accuracy_semantic_robustness", "dataset": data, "model": f"hf:{tiny_llama_dir}",
              "model_options": {"max_new_tokens": 6, "batch_size": 4}, "cache": False, "progress": False,
              "evaluation_options": {"metrics": ["f1_score", "delta_f1_score"], "num_perturbations": 2}}
    on_ray = evaluate(**common, backend="ray", ray_workers=2, output=tmp_path / "ray")
    local = evaluate(**common, output=tmp_path / "local")
    ray_lines, local_lines = lines_of(tmp_path / "ray"), lines_of(tmp_path / "local")
    assert ray_lines.keys() == local_lines.keys() and len(ray_lines) == 16
    for record_id, line in ray_lines.items():
        expected = local_lines[record_id]
        assert line["model_output"] == expected["model_output"]  # greedy: the same outputs
        assert line["perturbed_model_outputs"] == expected["perturbed_model_outputs"]  # the same perturbations
        assert line["scores"] == expected["scores"]
    assert on_ray.dataset_scores == local.dataset_scores  # the same means and the same bootstrap intervals
    assert on_ray.engine["workers"] == 2 and on_ray.engine["worker_failures"] == 0


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(ray_cluster, tmp_path):
    data = write_dataset(tmp_path / "d.jsonl", 300)
    result = {}
    with FakeOpenAIServer(latency_s=0.05) as server:
        def run():
            result["summary"] = evaluate(evaluation="factual_knowledge", dataset=data, **hosted(server),
                                         backend="ray", ray_workers=3, engine_options={"max_concurrency": 6},
                                         cache=False, output=tmp_path / "run", progress=False)

        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 60
        while server.answered < 60:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        workers = [name for name in ray_cluster.util.list_named_actors() if name.startswith("fmeval-worker-")]
        victim = ray_cluster.get(ray_cluster.get_actor(sorted(workers)[0]).ready.remote())
        os.kill(victim, signal.SIGKILL)
        thread.join(timeout=120)
    summary = result["summary"]
    ids = [json.loads(line)["record_id"] for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    assert sorted(ids, key=int) == [str(i) for i in range(300)]  # every record, once
    assert summary.num_errors == 0 and summary.engine["worker_failures"] == 1
    assert summary.engine["resubmitted_batches"] >= 1  # its batches went to the others


def test_credentials_stay_in_each_worker_and_are_masked_there(ray_cluster, tmp_path):
    data = write_dataset(tmp_path / "d.jsonl", 8)
    with FakeOpenAIServer(script=["500", "ok"] * 4, echo_authorization_in_errors=True) as server:
        summary = evaluate(evaluation="factual_knowledge", dataset=data, **hosted(server, api_key_env=KEY_ENV),
                           backend="ray", ray_workers=2, engine_options={"max_retries": 0},
                           cache_dir=tmp_path / "cache", output=tmp_path / "run", progress=False)
    assert set(server.authorization_headers) == {f"Bearer {KEY}"}  # each worker read the key itself
    assert summary.num_errors == 4
    assert all("Bearer ***" in line["error"] for line in lines_of(tmp_path / "run").values() if line["error"])
    for path in tmp_path.rglob("*"):
        if path.is_file() and path != data:
            assert KEY.encode() not in path.read_bytes(), path


def test_the_ray_backend_needs_a_model_spec_and_checks_it_first(ray_cluster, tmp_path):
    data = write_dataset(tmp_path / "d.jsonl", 2)
    with pytest.raises(UserError, match="rebuilds the model on each worker from its spec"):
        evaluate(evaluation="factual_knowledge", dataset=data, model=FunctionRunner(str), backend="ray",
                 output=tmp_path / "object", progress=False)
    with pytest.raises(UserError, match="could not load the Hugging Face model '/nope'"):
        evaluate(evaluation="factual_knowledge", dataset=data, model="hf:/nope", backend="ray", ray_workers=1,
                 output=tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad" / "run.json").exists()


def test_a_killed_driver_resumes_like_a_local_run(tmp_path):
    """The driver is the only writer: SIGKILL it, run the command again, and every record is there once."""
    import subprocess
    import sys

    data, out = write_dataset(tmp_path / "d.jsonl", 200), tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    with FakeOpenAIServer(latency_s=0.05) as server:
        command = [sys.executable, "-m", "fmeval", "run", "-e", "factual_knowledge", "-d", str(data),
                   "-m", "openai:fake", "--base-url", server.url, "--api-key-env", "", "--backend", "ray",
                   "--ray-workers", "2", "--max-concurrency", "4", "--no-cache", "--no-progress", "-o", str(out)]
        driver = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not (out / "records.jsonl").exists() or len((out / "records.jsonl").read_text().splitlines()) < 40:
            assert time.monotonic() < deadline and driver.poll() is None
            time.sleep(0.05)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        saved = len((out / "records.jsonl").read_text().splitlines())
        final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert final.returncode == 0, final.stderr
    ids = [json.loads(line)["record_id"] for line in (out / "records.jsonl").read_text().splitlines()]
    assert sorted(ids, key=int) == [str(i) for i in range(200)]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["engine"]["backend"] == "ray" and summary["engine"]["resumed_records"] == saved >= 40


@pytest.mark.slow
def test_a_killed_driver_wastes_at_most_the_requests_in_flight(tmp_path):
    """SIGKILL the driver mid-run: its workers stop at once (they watch it) instead of finishing
    their batches, and every answer that came back was saved as it arrived, so the killed run and
    its resumption together send at most N + max_concurrency requests (the kill once cost about
    210 more per kill)."""
    import subprocess
    import sys

    n, concurrency = 600, 8
    data, out = write_dataset(tmp_path / "d.jsonl", n), tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    with FakeOpenAIServer(latency_s=0.02) as server:
        command = [sys.executable, "-m", "fmeval", "run", "-e", "factual_knowledge", "-d", str(data),
                   "-m", "openai:fake", "--base-url", server.url, "--api-key-env", "", "--backend", "ray",
                   "--ray-workers", "2", "--max-concurrency", str(concurrency), "--no-cache", "--no-progress",
                   "-o", str(out)]
        driver = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not (out / "records.jsonl").exists() or len((out / "records.jsonl").read_text().splitlines()) < 60:
            assert time.monotonic() < deadline and driver.poll() is None
            time.sleep(0.05)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert final.returncode == 0, final.stderr
        sent = server.requests
    ids = [json.loads(line)["record_id"] for line in (out / "records.jsonl").read_text().splitlines()]
    assert sorted(ids, key=int) == [str(i) for i in range(n)]
    assert n <= sent <= n + concurrency, f"{sent} requests for {n} prompts"


def test_bias_on_ray_data_equals_the_in_memory_analysis(ray_cluster, tmp_path):
    from tests.test_bias_scale import CONFIG, assert_same, table, write_parts

    from fmeval.bias.analyze import analyze

    frame = table(n=4000, seed=3)
    folder = write_parts(frame, tmp_path / "parts", parts=4)
    on_ray = analyze(CONFIG, folder, tmp_path / "ray", backend="ray")
    assert_same(on_ray, analyze(CONFIG, frame, tmp_path / "memory"))


def test_kernel_shap_rows_on_ray_workers_equal_the_local_values(ray_cluster):
    import numpy as np

    from fmeval.explain.kernel_shap import kernel_shap

    rng = np.random.default_rng(0)
    data = rng.normal(size=(6, 4))

    def predict(rows):
        return np.tanh(rows @ np.array([1.0, -2.0, 0.5, 0.0]) + rows[:, 0] * rows[:, 1])

    local = kernel_shap(predict, data, background=data[:3], num_samples=40, seed=4, n_jobs=1)
    on_ray = kernel_shap(predict, data, background=data[:3], num_samples=40, seed=4, n_jobs=2, backend="ray")
    np.testing.assert_array_equal(on_ray.local, local.local)


def test_monitoring_statistics_on_ray_equal_the_local_ones(ray_cluster, tmp_path):
    """A folder of Parquet files, and a capture's window, profiled as one Ray Data job each."""
    import datetime as dt

    import pandas as pd

    from fmeval.monitoring import data_quality as dq
    from fmeval.monitoring.data_capture import CaptureWriter, ReadStats, encode_body
    from fmeval.monitoring.windows import Window

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(5, 2, 30_000), "n": rng.integers(0, 9, 30_000),
                          "c": rng.choice(["a", "b", "c"], 30_000)})
    (tmp_path / "files").mkdir()
    for i, part in enumerate(np.array_split(np.arange(len(frame)), 3)):
        frame.iloc[part].to_parquet(tmp_path / "files" / f"part-{i}.parquet")
    start = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
    writer = CaptureWriter(tmp_path / "capture", name="m")
    for i, row in enumerate(frame.iloc[:3000].to_dict("records")):  # 3000 events over 5 hours
        writer.write(request=encode_body(json.dumps(row).encode(), "application/json"),
                     response=encode_body(b"{}", "application/json"), latency_ms=1.0,
                     when=start + dt.timedelta(seconds=6 * i))
    writer.close()
    with open(next((tmp_path / "capture" / "m" / "2026" / "03" / "01" / "01").glob("*.jsonl")), "a") as handle:
        handle.write("{torn")  # in an hour the window reads
    window = Window(start + dt.timedelta(hours=1), start + dt.timedelta(hours=3))
    for source, options in ((tmp_path / "files", {}), (tmp_path / "capture" / "m", {"window": window})):
        local_stats, ray_stats = ReadStats(), ReadStats()
        local = dq.profile_source(source, stats=local_stats, **options)
        on_ray = dq.profile_source(source, backend="ray", stats=ray_stats, **options)
        assert on_ray.rows == local.rows == (30_000 if not options else 1200)
        for name, column in local.columns.items():
            other = on_ray.columns[name]
            assert (other.kind, other.present, other.missing, other.counts) == (column.kind, column.present,
                                                                                column.missing, column.counts)
            if column.numeric:
                assert other.mean == pytest.approx(column.mean) and other.std == pytest.approx(column.std)
                assert other.sketch.get_quantile(0.5) == pytest.approx(column.sketch.get_quantile(0.5), abs=0.1)
    assert ray_stats.skipped and local_stats.skipped  # the torn line, counted on both paths
