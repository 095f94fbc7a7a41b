"""Bad input gets exit 2 and one line naming the file, line, field or value; never a traceback.
Silent wrong answers are made loud. Each case was found by trying fmeval as a new user would."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fmeval import evaluate
from fmeval.cli import main
from fmeval.errors import DataError
from fmeval.model_runners.function import FunctionRunner
from fmeval.testing import FakeOpenAIServer

FMEVAL = str(Path(sys.executable).parent / "fmeval")
REPO = Path(__file__).resolve().parent.parent
UPPER = "function:tests.support:upper_model"


def run(*args):
    return main(["run", "-e", "factual_knowledge", *map(str, args), "--no-progress"])


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err


def a_run(tmp_path, name="run", n=4):
    data = tmp_path / f"{name}.jsonl"
    data.write_text("".join(json.dumps({"model_input": f"q{i}", "target_output": "Q"}) + "\n" for i in range(n)))
    assert run("-d", data, "-m", UPPER, "-o", tmp_path / name) == 0
    return tmp_path / name


# -- files -------------------------------------------------------------------------------------------
def test_latin1_csv_and_jsonl_name_their_line_and_can_be_skipped(tmp_path, capsys):
    csv_file = tmp_path / "reviews.csv"
    csv_file.write_bytes("model_input,target_output\nnice,yes\ncaf\xe9 cr\xe8me,no\nfine,yes\n".encode("latin-1"))
    jsonl_file = tmp_path / "reviews.jsonl"
    jsonl_file.write_bytes(b'{"model_input": "nice", "target_output": "yes"}\n'
                           + '{"model_input": "caf\xe9", "target_output": "no"}\n'.encode("latin-1"))
    for data, line in ((csv_file, 3), (jsonl_file, 2)):
        assert run("-d", data, "-m", UPPER, "-o", tmp_path / f"out-{data.suffix}") == 2
        err = one_line_error(capsys)
        assert f"{data}:{line}: not valid UTF-8" in err and "save the file as UTF-8" in err
        assert run("-d", data, "-m", UPPER, "-o", tmp_path / f"skip-{data.suffix}", "--skip-bad-records") == 0
        summary = json.loads((tmp_path / f"skip-{data.suffix}" / "summary.json").read_text())
        assert summary["num_skipped_records"] == 1 and f"{data}:{line}" in summary["dataset"]["skipped_examples"][0]
    capsys.readouterr()


def test_a_parquet_file_that_is_text_is_named(tmp_path, capsys):
    fake = tmp_path / "data.parquet"
    fake.write_text("model_input,target_output\na,b\n")
    assert run("-d", fake, "-m", UPPER, "-o", tmp_path / "out") == 2
    assert f"{fake}: not a readable Parquet file" in one_line_error(capsys)


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    rows = [{"model_input": "What is the capital of France?", "target_output": "WHAT"}]
    jsonl_file = tmp_path / "bom.jsonl"
    jsonl_file.write_bytes("\ufeff".encode() + json.dumps(rows[0]).encode() + b"\n")
    csv_file = tmp_path / "bom.csv"
    csv_file.write_bytes("\ufeffmodel_input,target_output\n".encode() + b"What is the capital of France?,WHAT\n")
    for data in (jsonl_file, csv_file):
        summary = evaluate(evaluation="factual_knowledge", dataset=data, model=FunctionRunner(str.upper),
                           output=tmp_path / data.suffix[1:], progress=False)
        assert summary.score("factual_knowledge").value == 1.0 and summary.num_skipped_records == 0


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_damaged_safetensors_exit_2_with_one_line(tiny_llama_dir, tmp_path, damage, capsys):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_llama_dir, model)
    weights = model / "model.safetensors"
    content = weights.read_bytes()
    weights.write_bytes(content[: len(content) // 2] if damage == "truncated" else b"\x07" * 64 + content[64:])
    data = tmp_path / "d.jsonl"
    data.write_text('{"model_input": "a", "target_output": "b"}\n')
    assert run("-d", data, "-m", f"hf:{model}", "-o", tmp_path / "out") == 2
    assert f"could not load the Hugging Face model '{model}'" in one_line_error(capsys)
    assert not (tmp_path / "out" / "run.json").exists()


def test_duplicate_record_ids_are_found_before_any_model_call(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"id": i, "model_input": "x", "target_output": "y"}) + "\n"
                            for i in (1, 2, 3, 2, 4)))
    calls = []
    with pytest.raises(DataError, match=rf"{data}:4: duplicate record_id '2' \(first at {data}:2\)"):
        evaluate(evaluation="factual_knowledge", dataset=data, model=FunctionRunner(lambda p: calls.append(p) or p),
                 dataset_fields={"record_id": "id"}, output=tmp_path / "out", progress=False)
    assert calls == []


def test_empty_target_alternatives_are_dropped_not_matched_by_everything(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"model_input": "capital of Japan?", "target_output": "Tokyo<OR>"}) + "\n"
                    + json.dumps({"model_input": "capital of Italy?", "target_output": ["", "Rome"]}) + "\n")
    summary = evaluate(evaluation="factual_knowledge", dataset=data, model=FunctionRunner(lambda p: "Osaka"),
                       output=tmp_path / "out", progress=False)
    assert summary.score("factual_knowledge").value == 0.0  # "" is in every string: it used to score 1
    lines = [json.loads(line) for line in (tmp_path / "out" / "records.jsonl").read_text().splitlines()]
    assert [line["target_output"] for line in lines] == [["Tokyo"], ["Rome"]]
    data.write_text(json.dumps({"model_input": "q", "target_output": " "}) + "\n")
    with pytest.raises(DataError, match=rf"{data}:1: field target_output .* has no non-empty target"):
        evaluate(evaluation="factual_knowledge", dataset=data, model=FunctionRunner(str), output=tmp_path / "o2",
                 progress=False)


def test_a_prompt_longer_than_the_context_is_an_error_on_its_record(tiny_llama_dir, tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"model_input": "The capital of France is", "target_output": "x"}) + "\n"
                    + json.dumps({"model_input": "The capital of France is Paris. " * 60, "target_output": "x"}) + "\n")
    args = ["-d", data, "-m", f"hf:{tiny_llama_dir}", "--max-new-tokens", "4", "--no-cache"]
    assert run(*args, "-o", tmp_path / "strict") == 0
    lines = {json.loads(line)["record_id"]: json.loads(line) for line in (tmp_path / "strict" / "records.jsonl").read_text().splitlines()}
    assert lines["0"]["error"] is None
    assert "does not fit the model's context of 256 tokens (truncate_prompts keeps the last 252 tokens)" in lines["1"]["error"]
    assert lines["1"]["error_retryable"] is False
    assert "1 of 2 records ended with a model error" in capsys.readouterr().err
    assert run(*args, "--truncate-prompts", "-o", tmp_path / "cut") == 0
    summary = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert summary["num_errors"] == 0 and summary["model"]["truncate_prompts"] is True


# -- finished runs ---------------------------------------------------------------------------------------
def test_report_and_compare_on_missing_or_corrupt_records_exit_2(tmp_path, capsys):
    missing, corrupt = a_run(tmp_path, "missing"), a_run(tmp_path, "corrupt")
    (missing / "records.jsonl").unlink()
    assert main(["report", str(missing), "-o", str(tmp_path / "r.html")]) == 2
    assert f"{missing / 'records.jsonl'} is missing" in one_line_error(capsys)
    with open(corrupt / "records.jsonl", "a") as handle:
        handle.write("{not json\n")
    assert main(["compare", str(corrupt), str(corrupt)]) == 2
    assert f"{corrupt / 'records.jsonl'}:5: not a record line" in one_line_error(capsys)


def test_unwritable_report_and_markdown_paths_exit_2(tmp_path, capsys):
    finished = a_run(tmp_path)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert main(["report", str(finished), "-o", str(a_file / "r.html")]) == 2
    assert f"cannot write the report {a_file / 'r.html'}" in one_line_error(capsys)
    assert main(["compare", str(finished), str(finished), "--markdown", str(a_file / "pr.md")]) == 2
    assert f"cannot write the Markdown summary {a_file / 'pr.md'}" in capsys.readouterr().err


def test_compare_never_exits_1_on_a_crash(tmp_path, capsys, monkeypatch):
    finished = a_run(tmp_path)

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("fmeval.reports.compare.compare_runs", broken)
    assert main(["compare", str(finished), str(finished)]) == 3  # 1 would read as "regression"
    assert "internal error: ZeroDivisionError: a bug (this is a bug in fmeval" in one_line_error(capsys)


def test_a_closed_output_pipe_ends_quietly():
    process = subprocess.Popen([FMEVAL, "datasets", "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # as `| head -0` does: the reader is gone before fmeval writes
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141 and stderr == ""


# -- hosted models ---------------------------------------------------------------------------------------
def test_an_unreachable_endpoint_fails_loudly(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text('{"model_input": "a", "target_output": "b"}\n{"model_input": "c", "target_output": "d"}\n')
    code = run("-d", data, "-m", "openai:x", "--base-url", "http://127.0.0.1:9/v1", "--api-key-env", "",
               "--max-retries", "0", "-o", tmp_path / "out")
    err = capsys.readouterr().err
    assert code == 1  # every record failed: exit 1 even without --max-error-rate
    assert "2 of 2 records ended with a model error (100.0%); first, at" in err and "connection failed" in err
    assert "every record failed" in err


def test_a_missing_api_key_variable_is_refused_remotely_and_warned_about_locally(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FMEVAL_NO_SUCH_KEY", raising=False)
    data = tmp_path / "d.jsonl"
    data.write_text('{"model_input": "a", "target_output": "b"}\n')
    args = ["-d", data, "-m", "openai:gpt", "--api-key-env", "FMEVAL_NO_SUCH_KEY"]
    assert run(*args, "--base-url", "https://api.example.com/v1", "-o", tmp_path / "remote") == 2
    assert "FMEVAL_NO_SUCH_KEY (--api-key-env) is not set" in one_line_error(capsys)
    with FakeOpenAIServer() as server:
        assert run(*args, "--base-url", server.url, "-o", tmp_path / "local") == 0
    assert "FMEVAL_NO_SUCH_KEY (--api-key-env) is not set" in capsys.readouterr().err
    assert server.authorization_headers == [None]


def test_a_long_echoed_token_is_masked_before_it_is_cut(tmp_path, monkeypatch, capsys):
    token = "eyJ" + "".join(f"{i:03d}" for i in range(200))[:597]  # a 600-character JWT-like secret
    monkeypatch.setenv("FMEVAL_LONG_TOKEN", token)
    data = tmp_path / "d.jsonl"
    data.write_text('{"model_input": "a", "target_output": "b"}\n{"model_input": "c", "target_output": "d"}\n')
    with FakeOpenAIServer(script=["500", "malformed_json"], echo_authorization_in_errors=True) as server:
        run("-d", data, "-m", "openai:m", "--base-url", server.url, "--api-key-env", "FMEVAL_LONG_TOKEN",
            "--max-retries", "0", "--cache-dir", tmp_path / "cache", "-o", tmp_path / "out")
    assert server.authorization_headers == [f"Bearer {token}"] * 2
    errors = [json.loads(line)["error"] for line in (tmp_path / "out" / "records.jsonl").read_text().splitlines()]
    assert any("HTTP 500" in e and "Bearer ***" in e for e in errors)
    assert any("not JSON" in e and "Bearer ***" in e for e in errors)
    pieces = {token[i : i + 24] for i in range(0, len(token) - 24, 24)}  # any 24 characters of it
    captured = capsys.readouterr()
    for path in [p for p in tmp_path.rglob("*") if p.is_file() and p != data]:
        content = path.read_bytes().decode(errors="replace")
        assert not any(piece in content for piece in pieces), path
    assert not any(piece in captured.out + captured.err for piece in pieces)
