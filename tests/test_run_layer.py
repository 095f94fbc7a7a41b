"""The run layer: typed configuration, one run directory per run, locking, durability, resume.

Each test here reproduces a defect found by trying fmeval as a new user would; each fails on
the code before the run layer existed.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fmeval import evaluate
from fmeval.cli import main
from fmeval.cli import run as run_command
from fmeval.runs.config import GROUPS, RunConfig
from fmeval.runs.directory import RunDirectory
from fmeval.testing import FakeOpenAIServer

FMEVAL = str(Path(sys.executable).parent / "fmeval")
REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def write_dataset(path, n):
    path.write_text("".join(json.dumps({"model_input": f"q{i}", "target_output": f"q{i}"}) + "\n" for i in range(n)))
    return path


def record_ids(out):
    return [json.loads(line)["record_id"] for line in (out / "records.jsonl").read_text().splitlines()]


def hosted(data, out, server, *extra):
    return [FMEVAL, "run", "-e", "factual_knowledge", "-d", str(data), "-m", "openai:fake", "--base-url", server.url,
            "--api-key-env", "", "--max-concurrency", "4", "--max-retries", "0", "--no-progress", "-o", str(out), *extra]


def wait_for(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.01)


# -- the configuration ---------------------------------------------------------------------------
def test_yaml_values_of_the_wrong_type_are_errors_that_name_key_and_value(tmp_path, capsys):
    data = write_dataset(tmp_path / "d.jsonl", 3)
    base = f"evaluation: factual_knowledge\ndataset: {data}\nmodel: function:tests.support:upper_model\n"
    for line, message in (
        ('skip_bad_records: "false"', "skip_bad_records: Input should be a valid boolean (got 'false')"),
        ("num_records: 2.5", "num_records: Input should be a valid integer (got 2.5)"),
        ("model_options:\n  temperature: hot", "model_options.temperature: Input should be a valid number (got 'hot')"),
        ("engine_options:\n  max_concurrency: 0", "engine_options.max_concurrency: Input should be greater than or "
                                                   "equal to 1 (got 0)"),
        ("evaluation_options:\n  rouge_type: rouge9", "evaluation_options.rouge_type: Input should be 'rouge1', "
                                                      "'rouge2' or 'rougeL' (got 'rouge9')"),
    ):
        config = tmp_path / "run.yaml"
        config.write_text(base + line + "\n")
        assert main(["run", "--config", str(config), "-o", str(tmp_path / "never")]) == 2
        assert f"{config}: {message}" in capsys.readouterr().err
    assert not (tmp_path / "never" / "run.json").exists()


def test_every_run_option_is_a_flag_and_a_yaml_key(tmp_path):
    """Flags are generated from RunConfig: each field has one, documented with the field's docstring."""
    parser = run_command.parser()
    by_dest = {action.dest: action for action in parser._actions}
    fields = [(name, info, "") for name, info in RunConfig.model_fields.items() if name not in GROUPS]
    for group in GROUPS:
        fields += [(name, info, f"{group}.") for name, info in RunConfig.model_fields[group].annotation.model_fields.items()]
    flagged = 0
    for name, info, prefix in fields:
        if (info.json_schema_extra or {}).get("cli") is False:
            continue
        action = by_dest[prefix + name]
        assert info.description and action.help == info.description.replace("%", "%%"), name
        flagged += 1
    assert flagged >= 60
    assert {"--no-cache", "--cache", "--top-p", "--dtype", "--model-seed", "--seed", "--mime-type"} <= set(
        parser._option_string_actions)
    # A YAML file may hold every group; flags win over it.
    config = tmp_path / "run.yaml"
    data = write_dataset(tmp_path / "d.jsonl", 4)
    config.write_text(f"evaluation: factual_knowledge\ndataset: {data}\nmodel: function:tests.support:upper_model\n"
                      f"evaluation_options:\n  metrics: factual_knowledge\n  normalization: squad\n"
                      f"engine_options:\n  max_retries: 1\noutput: {tmp_path / 'a'}\n")
    assert main(["run", "--config", str(config), "--normalization", "aws", "-o", str(tmp_path / "b"), "--no-progress"]) == 0
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["config"]["evaluation"] == {"metrics": ["factual_knowledge"], "logical_operator": "OR",
                                               "normalization": "aws"}
    assert summary["config"]["engine"] == {"max_retries": 1} and not (tmp_path / "a").exists()


def test_the_run_seed_reaches_sampled_generation(tiny_llama_dir, tmp_path):
    data = write_dataset(tmp_path / "d.jsonl", 6)

    def outputs(name, run_seed, **model_options):
        evaluate(evaluation="factual_knowledge", dataset=data, model=f"hf:{tiny_llama_dir}", seed=run_seed, cache=False,
                 model_options={"max_new_tokens": 10, **model_options}, output=tmp_path / name, progress=False)
        lines = [json.loads(line) for line in (tmp_path / name / "records.jsonl").read_text().splitlines()]
        return {line["record_id"]: line["model_output"] for line in lines}

    sampled = {"temperature": 1.5}
    assert outputs("a", 1, **sampled) == outputs("b", 1, **sampled)
    assert outputs("a", 1, **sampled) != outputs("c", 2, **sampled)
    assert outputs("d", 1, **sampled, seed=2) == outputs("c", 2, **sampled)  # the model's own seed wins
    assert outputs("e", 1) == outputs("f", 2) == outputs("g", 3, temperature=0.0)  # greedy: the seed is moot
    assert RunDirectory(tmp_path / "c").summary().model["seed"] == 2
    assert "seed" not in RunDirectory(tmp_path / "e").summary().model


# -- one writer, nothing lost, nothing twice ---------------------------------------------------------
def test_a_second_process_on_the_same_output_is_refused_with_the_holders_pid(tmp_path):
    """The first run is held at its first answer until the second has been refused: on a loaded
    machine it could otherwise finish first, and the second would resume a finished run."""
    data, out, gate = write_dataset(tmp_path / "d.jsonl", 120), tmp_path / "run", tmp_path / "gate"
    command = [FMEVAL, "run", "-e", "factual_knowledge", "-d", str(data), "-m", "function:tests.support:gated_echo",
               "--no-progress", "-o", str(out)]
    first = subprocess.Popen(command, env={**ENV, "FMEVAL_TEST_GATE": str(gate)}, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (out / "run.json").exists())
        second = subprocess.run(command, env={**ENV, "FMEVAL_TEST_GATE": str(gate)}, capture_output=True, text=True,
                                timeout=120)
        assert second.returncode == 2, second.stderr
        assert f"being written by another fmeval process (pid {first.pid})" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        gate.touch()
        assert first.wait(timeout=120) == 0, first.stderr.read()
    assert sorted(record_ids(out), key=int) == [str(i) for i in range(120)]  # each record once


@pytest.mark.parametrize("cache", ["--no-cache", "--cache"])
def test_sigkill_loses_no_answered_request_and_resume_asks_none_again(tmp_path, cache):
    n = 150
    data, out = write_dataset(tmp_path / "d.jsonl", n), tmp_path / "run"
    with FakeOpenAIServer(latency_s=0.04) as server:
        command = hosted(data, out, server, cache, "--cache-dir", str(tmp_path / "cache"))
        process = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: server.answered >= 40)
        process.send_signal(signal.SIGKILL)
        process.wait()
        answered, sent = server.answered, server.requests
        saved = len(record_ids(out))
        # Records are saved as they complete, not when a chunk of 1,024 ends.
        assert answered - 8 <= saved <= answered
        final = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
        assert final.returncode == 0, final.stderr
        asked_again = server.requests - sent
    # At most the requests in flight when the process died (4) are asked twice.
    assert n - answered <= asked_again <= n - answered + 4
    assert sorted(record_ids(out), key=int) == [str(i) for i in range(n)]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_records"] == n and summary["num_errors"] == 0
    assert not (out / "responses.sqlite").exists()  # the run's journal goes when the run is complete


def test_ctrl_c_saves_what_is_done_and_says_how_to_resume(tmp_path):
    n = 150
    data, out = write_dataset(tmp_path / "d.jsonl", n), tmp_path / "run"
    with FakeOpenAIServer(latency_s=0.04) as server:
        command = hosted(data, out, server, "--no-cache")
        process = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: server.answered >= 40)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 130
        saved = len(record_ids(out))
        assert f"interrupted: {saved} records are saved in {out}; run the same command again to resume" in stderr
        assert "Traceback" not in stderr and saved >= 40 - 8
        answered, sent = server.answered, server.requests
        assert subprocess.run(command, env=ENV, capture_output=True, timeout=300).returncode == 0
        assert server.requests - sent <= n - answered + 4
    assert sorted(record_ids(out), key=int) == [str(i) for i in range(n)]


def test_resume_runs_again_records_whose_error_was_transient(tmp_path, capsys):
    data, out = write_dataset(tmp_path / "d.jsonl", 6), tmp_path / "run"
    with FakeOpenAIServer(script=["503"] * 6) as server:  # an outage: every request fails, then it is over
        command = hosted(data, out, server)[1:]
        assert main(command) == 1  # every record failed: exit 1 whatever --max-error-rate says
        err = capsys.readouterr().err
        assert "6 of 6 records ended with a model error (100.0%); first, at" in err and "HTTP 503" in err
        assert all(json.loads(line)["error_retryable"] for line in (out / "records.jsonl").read_text().splitlines())
        assert main(command) == 0
        assert server.requests == 12
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_errors"] == 0 and summary["engine"]["retried_records"] == 6
    assert sorted(record_ids(out), key=int) == [str(i) for i in range(6)]


def test_permanent_errors_stay_unless_retry_errors_is_given(tmp_path, capsys):
    data, out = write_dataset(tmp_path / "d.jsonl", 4), tmp_path / "run"
    with FakeOpenAIServer(script=["400", "ok", "ok", "ok"]) as server:
        command = hosted(data, out, server)[1:]
        assert main(command) == 0
        assert main(command) == 0 and server.requests == 4  # a 400 is not transient: nothing is sent again
        assert main([*command, "--retry-errors"]) == 0 and server.requests == 5
    capsys.readouterr()
    assert json.loads((out / "summary.json").read_text())["num_errors"] == 0


# -- runs that replace runs ------------------------------------------------------------------------------
def test_overwrite_never_deletes_its_own_input(tmp_path, capsys):
    data, out = write_dataset(tmp_path / "d.jsonl", 3), tmp_path / "run"
    assert main(["run", "-e", "factual_knowledge", "-d", str(data), "-m", "function:tests.support:upper_model",
                 "-o", str(out), "--no-progress"]) == 0
    before = (out / "records.jsonl").read_bytes()
    # re-scoring a run in place: its own records.jsonl as the dataset
    code = main(["run", "-e", "factual_knowledge", "-d", str(out / "records.jsonl"), "--model-output", "model_output",
                 "--target-output", "target_output", "--overwrite", "-o", str(out)])
    assert code == 2 and "is one of the files of the run directory" in capsys.readouterr().err
    assert (out / "records.jsonl").read_bytes() == before


def test_a_replaced_run_is_reported_missing_not_compared_with_itself(tmp_path, capsys):
    data, out = write_dataset(tmp_path / "d.jsonl", 5), tmp_path / "run"
    args = ["run", "-e", "factual_knowledge", "-d", str(data), "-m", "function:tests.support:upper_model",
            "-o", str(out), "--no-progress"]
    assert main(args) == 0
    old = json.loads((out / "summary.json").read_text())["run_id"]
    assert main([*args, "--overwrite", "--prompt-template", "Q: $model_input"]) == 0
    new = json.loads((out / "summary.json").read_text())["run_id"]
    capsys.readouterr()
    assert old != new
    assert main(["compare", old, new]) == 2
    assert f"run {old} is replaced by {new}" in capsys.readouterr().err
    assert main(["runs", "list"]) == 0
    assert f"[replaced by {new}]" in capsys.readouterr().out


def test_a_failed_first_attempt_does_not_block_the_corrected_command(tmp_path, capsys):
    data, out = write_dataset(tmp_path / "d.jsonl", 3), tmp_path / "run"
    assert main(["run", "-e", "factual_knowledge", "-d", str(data), "-m", "hf:/nope", "-o", str(out)]) == 2
    assert "could not load the Hugging Face model '/nope'" in capsys.readouterr().err
    assert not (out / "run.json").exists()
    fixed = ["run", "-e", "factual_knowledge", "-d", str(data), "-m", "function:tests.support:upper_model",
             "-o", str(out), "--no-progress"]
    assert main(fixed) == 0
    # A run that was started but finished no record is replaced without --overwrite too.
    with RunDirectory(tmp_path / "empty").writing({"evaluation": "something else"}):
        pass
    assert main([*fixed[:-3], "-o", str(tmp_path / "empty"), "--no-progress"]) == 0
    assert len(record_ids(tmp_path / "empty")) == 3


def test_the_metric_model_is_checked_before_any_generation(tmp_path, capsys):
    data = write_dataset(tmp_path / "d.jsonl", 3)
    with FakeOpenAIServer() as server:
        started = time.monotonic()
        code = main(hosted(data, tmp_path / "run", server, "-e", "qa_accuracy")[1:])
        assert code == 2 and server.requests == 0 and time.monotonic() - started < 60
    assert "cannot load the BERTScore model 'microsoft/deberta-xlarge-mnli'" in capsys.readouterr().err
    assert not (tmp_path / "run" / "run.json").exists()


def test_output_and_cache_locations_are_checked_first(tmp_path, capsys):
    data = write_dataset(tmp_path / "d.jsonl", 3)
    a_file = tmp_path / "file.txt"
    a_file.write_text("not a directory")
    base = ["run", "-e", "factual_knowledge", "-d", str(data), "-m", "function:tests.support:upper_model"]
    assert main([*base, "-o", str(a_file)]) == 2
    assert f"the output {a_file} is a file" in capsys.readouterr().err
    assert main([*base, "-o", str(a_file / "run")]) == 2
    assert f"cannot write the run directory {a_file / 'run'}" in capsys.readouterr().err
    cacheable = ["run", "-e", "factual_knowledge", "-d", str(data), "-m", "openai:x", "--base-url", "http://127.0.0.1:9/v1",
                 "--api-key-env", "", "-o", str(tmp_path / "run"), "--cache-dir", str(a_file / "cache")]
    assert main(cacheable) == 2
    assert "cannot open the response cache" in capsys.readouterr().err
    assert not (tmp_path / "run" / "run.json").exists()


def test_the_default_output_stays_inside_runs(tmp_path, monkeypatch):
    from fmeval.datasets import DataConfig
    from fmeval.model_runners.function import FunctionRunner

    monkeypatch.chdir(tmp_path)
    data = write_dataset(tmp_path / "d.jsonl", 2)
    config = DataConfig(dataset_name="../../escape/../x", dataset_uri=str(data), model_input="model_input",
                        target_output="target_output")
    summary = evaluate(evaluation="factual_knowledge", dataset=config, model=FunctionRunner(str), progress=False)
    output = Path(summary.output_path).resolve()
    assert output.parent == (tmp_path / "runs").resolve() and output.name.startswith("factual_knowledge-escape_x-")
