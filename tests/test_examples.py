"""The documented examples work as documented."""
import shlex
from pathlib import Path

import yaml

from fmeval.cli import main, parser
from fmeval.cli import run as run_command

REPO = Path(__file__).resolve().parent.parent
FIELDS = ["--model-input", "question", "--target-output", "answers", "--context", "context", "--category", "topic",
          "--record-id", "id"]
METRICS = ["--metrics", "f1_score,exact_match_score,quasi_exact_match_score,recall_over_words"]


def test_rag_example_shows_the_gain_from_context(tmp_path, capsys):
    data = str(REPO / "examples" / "rag" / "questions.jsonl")
    model = ["-m", "function:tests.support:context_reader"]
    assert main(["run", "-e", "qa_accuracy", "-d", data, *FIELDS, *METRICS, *model, "--prompt-template",
                 "Answer in a few words. Question: $model_input", "-o", str(tmp_path / "none")]) == 0
    assert main(["run", "-e", "qa_accuracy", "-d", data, *FIELDS, *METRICS, *model, "--prompt-template",
                 "Answer in a few words, using the context. Context: $context Question: $model_input",
                 "-o", str(tmp_path / "context")]) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "none"), str(tmp_path / "context"), "--max-drop", "recall_over_words=0.0"]) == 0
    summary = capsys.readouterr().out
    assert "paired bootstrap" in summary and "| recall_over_words | 0.0000 | 1.0000 | +1.0000 |" in summary
    # the other way round, the same gate catches the loss of context
    assert main(["compare", str(tmp_path / "context"), str(tmp_path / "none"), "--max-drop", "recall_over_words=0.0"]) == 1
    assert main(["report", str(tmp_path / "none"), str(tmp_path / "context"), "--labels", "no context,with context",
                 "-o", str(tmp_path / "rag.html")]) == 0


def test_github_actions_workflow_uses_real_commands_and_flags():
    workflow = yaml.safe_load((REPO / "examples" / "github-actions" / "fmeval-regression.yml").read_text())
    eval_args = shlex.split(workflow["env"]["EVAL_ARGS"].replace("${{ vars.MODEL_BASE_URL }}", "http://x/v1"))
    commands = []
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            script = step.get("run", "").replace("\\\n", " ")
            for line in script.splitlines():
                line = line.strip().replace("$EVAL_ARGS", shlex.join(eval_args))
                if line.startswith("fmeval "):
                    commands.append(shlex.split(line)[1:])
    assert {command[0] for command in commands} == {"run", "compare"}
    top, _ = parser()
    for command in commands:  # parse_args raises SystemExit on an unknown flag
        run_command.parser().parse_args(command[1:]) if command[0] == "run" else top.parse_args(command)
