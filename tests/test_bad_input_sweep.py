"""The reliability sweep's bad inputs (issue 22): each exits 2 with one line that names the problem,
never 3 ("a bug in fmeval") and never a misleading message."""
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from fmeval.cli import main

REPO = Path(__file__).resolve().parent.parent
UPPER = "function:tests.support:upper_model"
CONFIG = {"dataset_type": "text/csv", "label": "y", "label_values_or_threshold": ["yes"],
          "facet": [{"name_or_index": "x"}], "methods": {"pre_training_bias": {"methods": "all"}}}


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err


def fmeval_without_file_permissions(*args):
    """fmeval in a subprocess that file permissions bind: as root (the tests run as root) the
    capabilities that bypass them are dropped, as setpriv does; otherwise as it is."""
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: no way to make a file unreadable")
        prefix = ["setpriv", "--inh-caps=-all", "--bounding-set=-all"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([*prefix, sys.executable, "-m", "fmeval", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=120)


def unreadable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0)
    return path


def assert_one_line(done, expected):
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert expected in done.stderr, done.stderr


def test_an_unreadable_dataset_exits_2_naming_the_file(tmp_path):
    data = unreadable(tmp_path / "locked.jsonl", '{"model_input": "q", "target_output": "Q"}\n')
    done = fmeval_without_file_permissions("run", "-e", "factual_knowledge", "-d", data, "-m", UPPER, "--no-progress",
                                           "-o", tmp_path / "run")
    assert_one_line(done, f"{data}: cannot read the dataset: Permission denied")


def test_analyze_stream_on_an_unreadable_file_exits_2_naming_it(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    data = unreadable(tmp_path / "locked.csv", "x,y\nM,yes\nF,no\n")
    done = fmeval_without_file_permissions("analyze", "--config", tmp_path / "config.json", "--data", data, "--stream",
                                           "-o", tmp_path / "out")
    assert_one_line(done, f"{data}: cannot be read: Permission denied")


def test_analyze_output_that_is_a_file_and_data_that_is_a_directory(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    (tmp_path / "data.csv").write_text("x,y\nM,yes\nF,no\nM,no\n")
    args = ["analyze", "--config", str(tmp_path / "config.json")]
    assert main([*args, "--data", str(tmp_path / "data.csv"), "-o", str(tmp_path / "data.csv")]) == 2
    assert f"--output {tmp_path / 'data.csv'}: exists and is not a directory" in one_line_error(capsys)
    assert main([*args, "--data", str(tmp_path / "data.csv"), "-o", str(tmp_path / "data.csv" / "below")]) == 2
    assert "cannot make the directory" in one_line_error(capsys)
    assert main([*args, "--data", str(tmp_path), "-o", str(tmp_path / "out")]) == 2
    message = one_line_error(capsys)
    assert "is a directory" in message and "--stream" in message and "not found" not in message


@pytest.mark.parametrize("command", [["serve", UPPER], ["capture", "serve", "--upstream", "http://127.0.0.1:9", "-o", "cap"]])
def test_serving_on_a_port_in_use_or_out_of_range_exits_2(command, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main([*command, "--port", str(port)]) == 2
        assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in one_line_error(capsys)
    assert main([*command, "--port", "99999"]) == 2
    assert "--port must be between 0 and 65535, got 99999" in one_line_error(capsys)


def test_dataset_messages_say_what_is_wrong(tmp_path, capsys):
    base = ["run", "-e", "factual_knowledge", "-m", UPPER, "--no-progress", "-o", str(tmp_path / "run")]
    assert main([*base, "-d", "trex", "--model-input", "question"]) == 2
    message = one_line_error(capsys)
    assert "'trex' is built in, with fixed fields: --model-input apply only to a dataset file" in message
    assert "neither" not in message
    assert main([*base, "-d", str(tmp_path)]) == 2
    message = one_line_error(capsys)
    assert "is a directory: give one .jsonl, .json, .csv or .parquet file" in message and "neither" not in message


def test_an_option_for_another_kind_of_model_names_the_flag_and_who_takes_it(tmp_path, capsys):
    (tmp_path / "model.gguf").write_bytes(b"")  # refused before anything is loaded
    (tmp_path / "d.jsonl").write_text('{"model_input": "q", "target_output": "Q"}\n')
    assert main(["run", "-e", "factual_knowledge", "-d", str(tmp_path / "d.jsonl"), "-m", str(tmp_path / "model.gguf"),
                 "--base-url", "http://127.0.0.1:1/v1", "--no-progress", "-o", str(tmp_path / "run")]) == 2
    message = one_line_error(capsys)
    assert "does not take base_url (--base-url), which is for openai:... models" in message
    assert "__init__" not in message and "HuggingFaceRunner" not in message


def test_report_examples_must_not_be_negative(tmp_path, capsys):
    with pytest.raises(SystemExit) as refused:
        main(["report", "some-run", "-o", str(tmp_path / "r.html"), "--examples", "-3"])
    assert refused.value.code == 2
    assert "argument --examples: expected a whole number >= 0, got -3" in capsys.readouterr().err


def test_the_store_flag_is_accepted_after_the_runs_action_too(tmp_path, capsys):
    after, before = tmp_path / "after.sqlite", tmp_path / "before.sqlite"
    assert main(["runs", "list", "--store-url", str(after), "--create"]) == 0
    assert f"no runs in sqlite:///{after}" in capsys.readouterr().out
    assert main(["runs", "--store-url", str(before), "--create", "list"]) == 0  # the old place still works
    assert f"no runs in sqlite:///{before}" in capsys.readouterr().out
    assert main(["runs", "show", "nope", "--store-url", str(after)]) == 2
    assert f"no run with id 'nope' in the run store sqlite:///{after};" in one_line_error(capsys)


@pytest.mark.parametrize("evaluation", ["qa_accuracy", "qa_accuracy_semantic_robustness"])
def test_an_evaluation_option_says_which_evaluations_take_it(evaluation, tmp_path, capsys):
    (tmp_path / "d.jsonl").write_text('{"model_input": "q", "target_output": "Q"}\n')
    assert main(["run", "-e", evaluation, "-d", str(tmp_path / "d.jsonl"), "-m", UPPER, "--judge-scale", "10",
                 "--no-progress", "-o", str(tmp_path / "run")]) == 2
    message = one_line_error(capsys)
    assert f"{evaluation} does not take --judge-scale (judge_scale); the evaluations that take it: model_graded" \
        in message
    assert "'scale'" not in message and "__init__" not in message


@pytest.mark.parametrize("value, problem", [
    (None, "sent_more_log_probability: the log-probability of sent_more must be a number, got None"),
    ("-1.5", "must be a number, got '-1.5'"),
    (float("nan"), "sent_more_log_probability: the log-probability of sent_more is NaN"),
    (0.5, "the model gave log-probability 0.5 > 0 for sent_more"),
])
def test_evaluate_sample_refuses_what_is_not_a_log_probability(value, problem):
    from fmeval import get_algorithm
    from fmeval.errors import UserError

    with pytest.raises(UserError) as refused:
        get_algorithm("prompt_stereotyping").evaluate_sample(sent_more_log_probability=value,
                                                             sent_less_log_probability=-2.0)
    assert problem in str(refused.value)
