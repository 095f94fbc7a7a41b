"""The documented examples work as documented."""
import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
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


def test_rag_example_graded_for_faithfulness(tmp_path, capsys):
    """Without context the model makes answers up: the judge finds them unsupported by the passage."""
    data = str(REPO / "examples" / "rag" / "questions.jsonl")
    judge = ["--judge-model", "function:tests.support:supported_by_context_judge", "--judge-criterion", "faithfulness"]
    model = ["-m", "function:tests.support:guesses_without_context"]
    assert main(["run", "-e", "model_graded", "-d", data, *FIELDS, *model, *judge, "--prompt-template",
                 "Answer in a few words. Question: $model_input", "-o", str(tmp_path / "none")]) == 0
    assert main(["run", "-e", "model_graded", "-d", data, *FIELDS, *model, *judge, "--prompt-template",
                 "Answer in a few words, using the context. Context: $context Question: $model_input",
                 "-o", str(tmp_path / "context")]) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "none"), str(tmp_path / "context"), "--max-drop", "faithfulness=0.0"]) == 0
    assert "| faithfulness | 0.0000 | 1.0000 | +1.0000 |" in capsys.readouterr().out
    assert main(["compare", str(tmp_path / "context"), str(tmp_path / "none"), "--max-drop", "faithfulness=0.0"]) == 1


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


def test_vision_bias_example_on_real_digits(tmp_path):
    """The example's metrics are the rates of its own predictions, and it writes overlays."""
    import json
    import runpy

    import numpy as np
    import pandas as pd
    from PIL import Image

    example = runpy.run_path(str(REPO / "examples" / "vision-bias" / "digits.py"), run_name="example")
    result = example["main"](tmp_path, limit=200, explained=1)
    manifest = pd.read_json(tmp_path / "images" / "manifest.jsonl", lines=True)
    assert len(manifest) == 200 and set(manifest.stroke) == {"thick", "thin"}
    digits = example["load_digits"]()
    model = example["DigitClassifier"](digits.images[::2], digits.target[::2])
    images = [np.asarray(Image.open(tmp_path / "images" / ref)) for ref in manifest["source-ref"]]
    predicted = model(images).argmax(axis=1) == 7
    thin = (manifest.stroke == "thin").to_numpy()
    metrics = {m["name"]: m["value"] for m in result["post_training_bias_metrics"]["facets"]["stroke"][0]["metrics"]}
    assert metrics["DPPL"] == pytest.approx(predicted[~thin].mean() - predicted[thin].mean())
    accuracy = model(images).argmax(axis=1) == manifest.digit.to_numpy()
    assert accuracy.mean() > 0.9  # a real classifier, not a toy
    line = json.loads((tmp_path / "explanations" / "explanations_shap" / "out.jsonl").read_text())
    assert line["labels"] == [str(d) for d in range(10)] and len(line["attributions"]) == 10
    assert len(list((tmp_path / "explanations" / "explanations_shap" / "images").glob("00000_*.png"))) == 11


def test_text_explain_example_on_the_clothing_reviews(tmp_path, mirror, monkeypatch):
    """Each review's token values add up to the model's output minus its all-<UNK> output."""
    import json
    import runpy

    monkeypatch.setenv("FMEVAL_DATASET_MIRROR", str(mirror))
    example = runpy.run_path(str(REPO / "examples" / "text-explain" / "reviews.py"), run_name="example")
    result = example["main"](tmp_path, explained=2)
    block = result["explanations"]["kernel_shap"]["label0"]
    assert len(block["global_top_shap_text"]["review"]) == 10
    lines = [json.loads(line) for line in (tmp_path / "explanations_shap" / "out.jsonl").read_text().splitlines()]
    assert len(lines) == 2
    model = example["train"](example["reviews"]())
    for line in lines:
        units = [a["description"]["partial_text"] for a in line["explanations"][0]["attributions"]]
        total = sum(a["attribution"][0] for a in line["explanations"][0]["attributions"])
        full, masked = model.predict_proba([" ".join(units), " ".join(["<UNK>"] * len(units))])[:, 1]
        assert total == pytest.approx(full - masked, abs=1e-6)
    assert "<script" not in (tmp_path / "text_heatmap.html").read_text()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_monitoring_walkthrough_raises_the_alarm_and_writes_the_report(tmp_path):
    """README's five-minute walkthrough, with a stand-in model (the bundled SmolLM2 is the default)."""
    env = {**os.environ, "MODEL": "function:tests.support:echo_answer", "SERVE_OPTIONS": "", "WORK": str(tmp_path / "demo"),
           "SERVE_PORT": str(free_port()), "PROXY_PORT": str(free_port()), "BIN": str(Path(sys.executable).parent),
           "PYTHONPATH": str(REPO)}
    done = subprocess.run(["bash", "examples/monitoring/walkthrough.sh"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "fmeval monitor run exited with 1 (1: the alarm is in ALARM)" in done.stdout
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    checks = {v["metric_name"]: v for v in report["violations"]}
    assert "prompt_language" in " ".join(checks) and "prompt_words" in checks  # the drift injected, found
    assert report["alarms"][0]["state"] == "ALARM"
    events = list((tmp_path / "demo" / "capture" / "smollm2").rglob("*.jsonl"))
    assert sum(len(path.read_text().splitlines()) for path in events) == 80  # the chats; the GET probes pass uncaptured


def test_the_walkthrough_never_removes_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    done = subprocess.run(["bash", "examples/monitoring/walkthrough.sh"], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "WORK": str(tmp_path)}, timeout=60)
    assert done.returncode == 2 and "is not a walkthrough's folder" in done.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"
