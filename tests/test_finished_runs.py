"""A finished run is immutable: running the same command again prints its summary, sends nothing
and rewrites nothing; its `.lock` is gone once the writing process is done (issue 22)."""
import json

from fmeval.cli import main
from fmeval.runs.directory import LOCK_FILE, RunDirectory
from fmeval.testing import FakeOpenAIServer


def test_running_a_finished_run_again_keeps_its_summary_and_sends_nothing(tmp_path, capsys):
    data, out = tmp_path / "d.jsonl", tmp_path / "run"
    data.write_text("".join(json.dumps({"model_input": f"q{i}", "target_output": f"q{i}"}) + "\n" for i in range(5)))
    with FakeOpenAIServer() as server:
        command = ["run", "-e", "factual_knowledge", "-d", str(data), "-m", "openai:fake", "--base-url", server.url,
                   "--api-key-env", "", "--no-cache", "--no-progress", "-o", str(out)]
        assert main(command) == 0
        first = capsys.readouterr().out
        summary = (out / "summary.json").read_bytes()
        assert json.loads(summary)["engine"]["requests"] == 5 and server.requests == 5
        assert not (out / LOCK_FILE).exists()  # the README: it exists while the run is going
        assert main([*command, "--max-concurrency", "1"]) == 0  # engine options are not the run's identity
        assert server.requests == 5  # nothing was sent again
        assert (out / "summary.json").read_bytes() == summary  # request counts and timings unchanged
        assert capsys.readouterr().out == first  # the same summary is printed
        assert not (out / LOCK_FILE).exists()
        assert main([*command, "--overwrite"]) == 0 and server.requests == 10  # unless asked to start again
    assert json.loads((out / "summary.json").read_text())["engine"]["requests"] == 5


def test_the_lock_file_is_removed_on_release_and_can_be_taken_again(tmp_path):
    directory = RunDirectory(tmp_path / "run")
    with directory.lock():
        assert (tmp_path / "run" / LOCK_FILE).read_text().strip().isdigit()  # the holder's pid
    assert not (tmp_path / "run" / LOCK_FILE).exists()
    with directory.lock():  # and it can be taken again
        assert (tmp_path / "run" / LOCK_FILE).exists()
