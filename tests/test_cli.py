"""The `fmeval` command: exit codes, messages, config files, and start-up time."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fmeval.cli import main

FMEVAL = str(Path(sys.executable).parent / "fmeval")
REPO = Path(__file__).resolve().parent.parent


def run_cli(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([FMEVAL, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def best_of(times, command):
    best = float("inf")
    for _ in range(times):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        best = min(best, time.perf_counter() - started)
    return best


def test_import_and_help_are_fast_and_light():
    assert best_of(3, [sys.executable, "-c", "import fmeval"]) < 0.5
    assert best_of(3, [FMEVAL, "--help"]) < 0.5
    heavy = subprocess.run(
        [sys.executable, "-c", "import sys, fmeval, fmeval.cli; print(sorted({'torch', 'transformers', 'numpy', "
         "'pandas', 'sklearn'} & set(sys.modules)))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert heavy == "[]"


def test_usage_errors_exit_2(capsys):
    assert main(["run", "--dataset", "trex"]) == 2
    assert "evaluation is required (--evaluation" in capsys.readouterr().err
    assert main(["run", "-e", "factual_knowledge", "-d", "no_such_dataset"]) == 2
    assert "neither a built-in dataset" in capsys.readouterr().err
    assert main(["run", "-e", "nope", "-d", "trex"]) == 2
    assert "unknown evaluation 'nope'" in capsys.readouterr().err
    assert main(["datasets", "show", "nope"]) == 2
    with pytest.raises(SystemExit) as info:
        main(["run", "--num-records", "many"])
    assert info.value.code == 2


def test_bad_record_exit_2_with_location(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text('{"model_input": "a", "target_output": "b"}\n{"model_input": "c", "target_output": 7.5e}\n')
    code = main(["run", "-e", "factual_knowledge", "-d", str(data), "-m", "function:tests.support:echo_answer",
                 "-o", str(tmp_path / "run")])
    assert code == 2
    assert f"{data}:2: invalid JSON" in capsys.readouterr().err


def test_yaml_config_run_prints_scores_and_path(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in [
        {"q": "The capital of France is Paris", "a": "Paris"},
        {"q": "Who knows", "a": "Rome"},
    ]))
    config = tmp_path / "run.yaml"
    config.write_text(
        f"evaluation: factual_knowledge\ndataset: {data}\nmodel: function:tests.support:echo_answer\n"
        f"dataset_fields:\n  model_input: q\n  target_output: a\noutput: {tmp_path / 'run'}\nn_bootstrap: 200\n"
    )
    result = run_cli("run", "--config", str(config), cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "factual_knowledge  " in result.stdout and "0.5000" in result.stdout
    assert f"Results: {tmp_path / 'run'}" in result.stdout
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["dataset_scores"][0]["value"] == 0.5
    # flags override the config file
    result = run_cli("run", "--config", str(config), "--output", str(tmp_path / "run2"), "--json", cwd=REPO)
    assert json.loads(result.stdout)["output_path"] == str(tmp_path / "run2")


def test_config_with_unknown_key_exits_2(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("evaluation: factual_knowledge\ndatset: trex\n")
    assert main(["run", "--config", str(config)]) == 2
    assert "unknown key(s) datset" in capsys.readouterr().err


def test_datasets_and_evaluations_commands(mirror, capsys):
    assert main(["evaluations", "list"]) == 0
    assert "qa_accuracy" in capsys.readouterr().out
    assert main(["datasets", "list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in ("crows-pairs", "bold", "wikitext2", "gov_report", "trex"))
    assert main(["datasets", "show", "trex"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["files"][0]["sha256"] == "bca4b1cdd893a81ceed9500cf1dc20e56a4d6181109f16e569e8a282469aec9b"
    assert shown["fields"]["target_output"] == "answers"
    assert main(["datasets", "fetch", "trex", "--dataset-mirror", str(mirror)]) == 0
    assert str(mirror / "trex" / "fmeval_trex_sample.jsonl") in capsys.readouterr().out


def test_max_error_rate_turns_too_many_errors_into_exit_1(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"model_input": f"q{i}", "target_output": f"q{i}"}) + "\n" for i in range(10)))
    args = ["run", "-e", "factual_knowledge", "-d", str(data), "-m", "function:tests.support:fails_on_even_numbers",
            "--max-retries", "0", "--no-cache"]
    assert main([*args, "-o", str(tmp_path / "a"), "--max-error-rate", "0.3"]) == 1
    captured = capsys.readouterr()
    assert "5 of 10 records ended with a model error" in captured.err and "5 errors" in captured.out
    assert main([*args, "-o", str(tmp_path / "b"), "--max-error-rate", "0.6"]) == 0


def write_qa(path, n=4):
    path.write_text("".join(json.dumps({"model_input": f"q{i}", "target_output": f"a{i}"}) + "\n" for i in range(n)))
    return path


def test_cache_flags(tmp_path):
    """--cache-dir holds the answers and a second run replays them; --no-cache asks the model again."""
    from fmeval.testing import FakeOpenAIServer

    data = write_qa(tmp_path / "d.jsonl")
    with FakeOpenAIServer() as server:
        base = ["run", "-e", "factual_knowledge", "-d", str(data), "-m", "openai:m", "--base-url", server.url,
                "--api-key-env", "", "--no-progress", "--json"]
        assert main([*base, "--cache-dir", str(tmp_path / "cache"), "-o", str(tmp_path / "a")]) == 0
        assert (tmp_path / "cache" / "responses.sqlite").is_file() and server.requests == 4
        assert main([*base, "--cache-dir", str(tmp_path / "cache"), "-o", str(tmp_path / "b")]) == 0
        assert server.requests == 4
        assert json.loads((tmp_path / "b" / "summary.json").read_text())["engine"]["cache_hits"] == 4
        assert main([*base, "--cache-dir", str(tmp_path / "cache"), "--no-cache", "-o", str(tmp_path / "c")]) == 0
        assert server.requests == 8
    summary = json.loads((tmp_path / "c" / "summary.json").read_text())
    assert summary["engine"]["cache_hits"] == 0 and summary["engine"]["requests"] == 4


def test_generation_flags_reach_the_model(tmp_path, tiny_llama_dir):
    from fmeval.testing import FakeOpenAIServer

    data = write_qa(tmp_path / "d.jsonl", 2)
    with FakeOpenAIServer() as server:
        assert main(["run", "-e", "factual_knowledge", "-d", str(data), "-m", "openai:m", "--base-url", server.url,
                     "--api-key-env", "", "--top-p", "0.3", "--temperature", "0.5", "--max-new-tokens", "9",
                     "--system-prompt", "Hi", "--no-progress", "-o", str(tmp_path / "api")]) == 0
    assert {(body["top_p"], body["temperature"], body["max_tokens"], body["seed"], body["messages"][0]["content"])
            for _, body in server.bodies} == {(0.3, 0.5, 9, 0, "Hi")}
    assert main(["run", "-e", "factual_knowledge", "-d", str(data), "-m", f"hf:{tiny_llama_dir}", "--dtype", "bfloat16",
                 "--max-new-tokens", "3", "--no-progress", "-o", str(tmp_path / "hf")]) == 0
    summary = json.loads((tmp_path / "hf" / "summary.json").read_text())
    assert summary["model"]["dtype"] == "bfloat16" and summary["num_errors"] == 0
