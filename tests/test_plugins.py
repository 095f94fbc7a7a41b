"""Open registries: evaluations, metrics and runners from outside fmeval, named by registered
names, `module:attribute` specs, or a pip-installed package's `fmeval` entry point, from the CLI,
YAML, `RunConfig` and Ray workers."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import fmeval
from fmeval.errors import UserError
from fmeval.model_runners import load_runner

REPO = Path(__file__).resolve().parent.parent

PLUGIN = '''
"""A tiny fmeval plugin: a runner, an evaluation and a metric."""
from fmeval import (Capabilities, GenerationAlgorithm, MetricSpec, ModelOutput, ModelRunner, register_evaluation,
                    register_metric, register_runner)


@register_runner("echo")
class EchoRunner(ModelRunner):
    """Answers each prompt with itself ("plain") or upper-cased ("loud")."""

    def __init__(self, style, *, batch_size=4):
        self.style = style
        self.capabilities = Capabilities(batch_size=batch_size)

    def identity(self, kind="generate"):
        return {"type": "echo", "model": self.style}

    def predict(self, prompts):
        return [ModelOutput(output=p.upper() if self.style == "loud" else p) for p in prompts]


@register_evaluation("echo_exact")
class EchoExact(GenerationAlgorithm):
    """1 where the output is the first target exactly."""

    name = "echo_exact"
    METRICS = (MetricSpec("echo_exact", higher_is_better=True),)

    def score_outputs(self, records, outputs):
        return [({"echo_exact": float(out == rec.target_output[0])}, {}) for rec, out in zip(records, outputs)]


@register_metric("starts_with_target", higher_is_better=True)
def starts_with_target(model_output, target_output):
    """1 where the output starts with a target."""
    return float(any(model_output.startswith(t) for t in target_output))


def shout(prompt):
    return prompt.upper()


def loud_echo() -> EchoRunner:
    return EchoRunner("loud")
'''


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    """The plugin package, installed by pip (no dependencies, no index) into a directory of its own."""
    root = tmp_path_factory.mktemp("plugin")
    source = root / "src"
    (source / "fmeval_echo_plugin").mkdir(parents=True)
    (source / "fmeval_echo_plugin" / "__init__.py").write_text(PLUGIN)
    (source / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "fmeval-echo-plugin"
        version = "0.1.0"

        [project.entry-points.fmeval]
        echo = "fmeval_echo_plugin"

        [tool.setuptools]
        packages = ["fmeval_echo_plugin"]
    """))
    site = root / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(site), str(source)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    assert (site / "fmeval_echo_plugin" / "__init__.py").exists()
    return site


def fmeval_cli(site, *arguments, cwd):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), str(site), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "fmeval", *arguments], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def write_dataset(path):
    rows = [("alpha", "ALPHA"), ("beta", "beta"), ("gamma", "GAMMA"), ("delta", "DEL")]
    path.write_text("".join(json.dumps({"model_input": i, "target_output": t}) + "\n" for i, t in rows))
    return path


def scores_of(out):
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    return {r["model_input"]: r["scores"] for r in records}, json.loads((out / "summary.json").read_text())


def test_a_pip_installed_plugin_adds_evaluations_metrics_and_runners_to_the_cli(plugin_site, tmp_path):
    data = write_dataset(tmp_path / "d.jsonl")
    listed = fmeval_cli(plugin_site, "evaluations", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "echo_exact" in listed.stdout and "starts_with_target" in listed.stdout

    common = ["-d", str(data), "--prompt-template", "$model_input", "--no-progress", "--no-cache"]
    run = fmeval_cli(plugin_site, "run", "-e", "echo_exact", "-m", "echo:loud", "-o", str(tmp_path / "a"), *common,
                     cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    scores, summary = scores_of(tmp_path / "a")
    assert scores == {"alpha": {"echo_exact": 1.0}, "beta": {"echo_exact": 0.0}, "gamma": {"echo_exact": 1.0},
                      "delta": {"echo_exact": 0.0}}
    assert summary["model"] == {"type": "echo", "model": "loud"}

    # The metric by its registered name, its direction in the summary; module:attribute specs too.
    run = fmeval_cli(plugin_site, "run", "-e", "fmeval_echo_plugin:starts_with_target",
                     "-m", "fmeval_echo_plugin:loud_echo",
                     "-o", str(tmp_path / "b"), *common, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    scores, summary = scores_of(tmp_path / "b")
    assert {key: s["starts_with_target"] for key, s in scores.items()} == {"alpha": 1.0, "beta": 0.0, "gamma": 1.0,
                                                                          "delta": 1.0}
    assert {"name": "starts_with_target", "higher_is_better": True}.items() <= summary["metrics"][0].items()

    # function: takes a plain function; a runner factory is refused before anything runs.
    run = fmeval_cli(plugin_site, "run", "-e", "fmeval_echo_plugin:EchoExact", "-m",
                     "function:fmeval_echo_plugin:shout", "-o", str(tmp_path / "c"), *common, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert scores_of(tmp_path / "c")[0]["alpha"] == {"echo_exact": 1.0}
    refused = fmeval_cli(plugin_site, "run", "-e", "echo_exact", "-m", "function:fmeval_echo_plugin:loud_echo",
                         "-o", str(tmp_path / "d"), *common, cwd=tmp_path)
    assert refused.returncode == 2 and "give the spec 'fmeval_echo_plugin:loud_echo'" in refused.stderr
    assert not (tmp_path / "d" / "records.jsonl").exists()


@pytest.mark.slow
def test_a_plugin_runner_runs_on_ray_workers_found_by_its_entry_point(plugin_site, tmp_path):
    pytest.importorskip("ray")
    data = write_dataset(tmp_path / "d.jsonl")
    run = fmeval_cli(plugin_site, "run", "-e", "echo_exact", "-m", "echo:loud", "-d", str(data), "--prompt-template",
                     "$model_input", "--backend", "ray", "--ray-workers", "1", "--no-progress", "--no-cache",
                     "-o", str(tmp_path / "ray"), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    scores, summary = scores_of(tmp_path / "ray")
    assert {key: s["echo_exact"] for key, s in scores.items()} == {"alpha": 1.0, "beta": 0.0, "gamma": 1.0,
                                                                   "delta": 0.0}
    assert summary["engine"]["backend"] == "ray" and summary["engine"]["worker_failures"] == 0


# -- in one process --------------------------------------------------------------------------------

def test_function_spec_refuses_a_class_and_a_runner_factory_at_load_time():
    with pytest.raises(UserError, match=r"FunctionRunner is a class; for a ModelRunner subclass give the spec "
                                        r"'fmeval.model_runners.function:FunctionRunner'"):
        load_runner("function:fmeval.model_runners.function:FunctionRunner")
    with pytest.raises(UserError, match=r"load_runner builds a model runner; give the spec "
                                        r"'fmeval.model_runners:load_runner'"):
        load_runner("function:fmeval.model_runners:load_runner")
    with pytest.raises(UserError, match="is the class UserError, not a ModelRunner subclass"):
        load_runner("fmeval.errors:UserError")
    with pytest.raises(UserError, match="cannot import 'fmeval.nope'"):
        load_runner("fmeval.nope:Runner")


def test_a_registered_prefix_and_the_public_base_classes():
    @fmeval.register_runner("reverse_test")
    class Reverse(fmeval.ModelRunner):
        capabilities = fmeval.Capabilities(batch_size=2)

        def __init__(self, name):
            self.name = name

        def identity(self, kind="generate"):
            return {"type": "reverse", "model": self.name}

        def predict(self, prompts):
            return [fmeval.ModelOutput(output=p[::-1]) for p in prompts]

    runner = load_runner("reverse_test:r1")
    assert isinstance(runner, Reverse) and runner.name == "r1"
    assert [o.output for o in runner.predict(["ab"])] == ["ba"]
    assert runner.prompt_lengths(["abc"]) == [3] and runner.should_retry(TypeError()) is False  # the defaults
    with pytest.raises(ValueError, match="built-in model spec prefix"):
        fmeval.register_runner("openai")
    with pytest.raises(ValueError, match="built-in evaluation"):
        fmeval.register_evaluation("qa_accuracy")
    assert issubclass(fmeval.GenerationAlgorithm, fmeval.Algorithm) and fmeval.Record.__name__ == "Record"


def test_run_config_refuses_an_object_that_is_not_a_model_runner(tmp_path):
    class DuckTyped:  # the contract is the base class, not whatever has a predict method
        def predict(self, prompts):
            return prompts

    with pytest.raises(UserError, match="a subclass of fmeval.ModelRunner"):
        fmeval.evaluate(evaluation="qa_accuracy", dataset=str(tmp_path / "x.jsonl"), model=DuckTyped(),
                        output=tmp_path / "out", progress=False)
