"""Model-graded evaluation (LLM-as-judge): robust parsing, errors on unreadable judgements,
position swapping, the engine's cache for the judge, and real judges (SmolLM2, a tiny Llama)."""
import json
import re

import numpy as np
import pytest

from fmeval import evaluate
from fmeval.algorithms.model_graded import ModelGraded, read_choice, read_grade
from fmeval.datasets.config import DataConfig
from fmeval.errors import UserError
from fmeval.model_runners.function import FunctionRunner
from fmeval.testing import FakeOpenAIServer


@pytest.mark.parametrize("answer, grade", [
    ("[[4]]", 4), ("Rating: 3", 3), ("I'd give it a score of 2 because...", 2), ("4/5", 4), ("5 out of 5", 5),
    ("The answer is 5.", 5), ("  1 ", 1), ("[[2.5]]", 2.5),
])
def test_grades_are_read_from_many_phrasings(answer, grade):
    assert read_grade(answer, 5) == grade


@pytest.mark.parametrize("answer", ["", "great answer!", "between 2 and 4", "[[7]]", "Rating: 9", "3 of the 4 facts"])
def test_no_grade_is_guessed(answer):
    with pytest.raises(ValueError, match="no grade from 1 to 5"):
        read_grade(answer, 5)


@pytest.mark.parametrize("answer, choice", [
    ("[[A]]", "A"), ("[[b]]", "B"), ("[[tie]]", "tie"), ("Response B is better.", "B"), ("A", "A"),
    ("Both are equally good.", "tie"),
])
def test_choices_are_read(answer, choice):
    assert read_choice(answer) == choice


@pytest.mark.parametrize("answer", ["[[A]] or maybe [[B]]", "Response A is fine, response B too", "no idea"])
def test_ambiguous_choices_are_errors(answer):
    with pytest.raises(ValueError, match="no choice of A, B or tie"):
        read_choice(answer)


ROWS = [
    {"id": "r1", "q": "Capital of France?", "a": "Paris", "out": "It is Paris.", "ctx": "Paris is the capital."},
    {"id": "r2", "q": "Capital of Japan?", "a": "Tokyo", "out": "Kyoto, I think.", "ctx": "Tokyo is the capital."},
    {"id": "r3", "q": "2+2?", "a": "4", "out": "four", "ctx": "2+2=4"},
]


def data(tmp_path, rows=ROWS, **fields):
    path = tmp_path / "outputs.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return DataConfig(dataset_name="graded", dataset_uri=str(path), model_input="q", target_output="a",
                      model_output="out", context="ctx", record_id="id", **fields)


def strict_judge(prompt: str) -> str:
    """Grades 5 when the reference appears in the response, 1 when not; mumbles for arithmetic."""
    reference = re.search(r"Reference answer: (.*)", prompt).group(1)
    response = re.search(r"Response: (.*)", prompt).group(1)
    if "2+2" in prompt:
        return "Hmm, hard to say."
    return "[[5]]" if reference in response else "Rating: 1"


def lines(run):
    return {line["record_id"]: line for line in map(json.loads, (run / "records.jsonl").read_text().splitlines())}


def test_correctness_graded_and_an_unreadable_judgement_is_an_error_not_a_zero(tmp_path):
    summary = evaluate(evaluation=ModelGraded(judge_model=FunctionRunner(strict_judge)), dataset=data(tmp_path),
                       model=None, output=tmp_path / "run", progress=False, n_bootstrap=50)
    records = lines(tmp_path / "run")
    assert records["r1"]["scores"]["correctness"] == 1.0 and records["r2"]["scores"]["correctness"] == 0.0
    assert records["r3"]["scores"]["correctness"] is None
    assert "unparseable judgement" in records["r3"]["error"] and "Hmm, hard to say." in records["r3"]["error"]
    assert summary.score("correctness").value == 0.5  # the mean of the two graded records
    assert summary.num_errors == 1
    assert summary.config["evaluation"]["criterion"] == "correctness"


def test_custom_template_and_sample(tmp_path):
    seen = []

    def judge(prompt):
        seen.append(prompt)
        return "Score: 3"

    graded = ModelGraded(judge_model=FunctionRunner(judge), criterion="concision", scale=3,
                         judge_template="Rubric: $rubric. Is '$model_output' concise for '$model_input'? 1-$scale",
                         rubric="short is good")
    scores = graded.evaluate_sample(model_output="Paris.", model_input="Capital of France?")
    assert [(s.name, s.value) for s in scores] == [("concision", 1.0)]
    assert seen == ["Rubric: short is good. Is 'Paris.' concise for 'Capital of France?'? 1-3"]
    with pytest.raises(UserError, match=r"unknown or malformed placeholder\(s\) \$answer"):
        ModelGraded(judge_model=FunctionRunner(judge), judge_template="$answer $model_output")
    with pytest.raises(UserError, match="needs a judge"):
        ModelGraded(criterion="helpfulness")


def test_pairwise_swaps_positions_and_catches_a_position_biased_judge(tmp_path):
    baseline_rows = [{**row, "out": "I don't know."} for row in ROWS]
    (tmp_path / "b").mkdir()
    evaluate(evaluation="factual_knowledge", dataset=data(tmp_path / "b", baseline_rows), model=None,
             output=tmp_path / "baseline", progress=False, n_bootstrap=50)

    def prefers_the_longer(prompt):
        a = re.search(r"Response A: (.*)", prompt).group(1)
        b = re.search(r"Response B: (.*)", prompt).group(1)
        return "[[A]]" if len(a) > len(b) else "[[B]]" if len(b) > len(a) else "[[tie]]"

    from fmeval.runs.loaded import load_run

    baseline = {line["record_id"]: line["model_output"] for line in load_run(tmp_path / "baseline").records()}
    graded = ModelGraded(judge_model=FunctionRunner(prefers_the_longer), criterion="pairwise",
                         baseline_outputs=baseline, baseline_run="baseline")
    summary = evaluate(evaluation=graded, dataset=data(tmp_path), model=None, output=tmp_path / "fair",
                       progress=False, n_bootstrap=50)
    records = lines(tmp_path / "fair")
    # against "I don't know." (13 characters): "It is Paris." (12) loses, "Kyoto, I think." (15) wins, "four" loses
    assert [records[r]["scores"]["win_rate"] for r in ("r1", "r2", "r3")] == [0.0, 1.0, 0.0]
    assert summary.score("position_consistency").value == 1.0
    assert records["r2"]["choices"] == ["A", "B"]  # ours was A first, then B: both orders counted

    with FakeOpenAIServer(responder=lambda prompt: "[[A]]") as server:  # always the first position
        options = {"judge_model": "openai:fake", "judge_model_options": {"base_url": server.url, "api_key_env": ""},
                   "judge_criterion": "pairwise", "judge_baseline_run": str(tmp_path / "baseline")}
        summary = evaluate(evaluation="model_graded", dataset=data(tmp_path), model=None, output=tmp_path / "biased",
                           progress=False, n_bootstrap=50, cache=False, evaluation_options=options)
    assert summary.score("win_rate").value == 0.5 and summary.score("position_consistency").value == 0.0
    assert summary.config["evaluation"]["baseline_run"] == load_run(tmp_path / "baseline").run_id


def test_a_hosted_judge_is_concurrent_and_cached(tmp_path):
    def responder(prompt):
        return "[[5]]" if "Paris" in prompt.split("Response:")[-1] else "[[2]]"

    with FakeOpenAIServer(latency_s=0.05, responder=responder) as server:
        options = {"judge_model": "openai:fake", "judge_model_options": {"base_url": server.url, "api_key_env": ""},
                   "judge_criterion": "faithfulness"}
        summary = evaluate(evaluation="model_graded", dataset=data(tmp_path), model=None, output=tmp_path / "one",
                           progress=False, n_bootstrap=50, cache_dir=str(tmp_path / "cache"), evaluation_options=options)
        assert server.answered == 3
        assert lines(tmp_path / "one")["r1"]["scores"]["faithfulness"] == 1.0
        assert lines(tmp_path / "one")["r2"]["scores"]["faithfulness"] == pytest.approx(0.25)
        again = evaluate(evaluation="model_graded", dataset=data(tmp_path), model=None, output=tmp_path / "two",
                         progress=False, n_bootstrap=50, cache_dir=str(tmp_path / "cache"), evaluation_options=options)
        assert server.answered == 3  # every judgement came from the cache
        assert again.score("faithfulness").value == summary.score("faithfulness").value
        assert summary.config["evaluation"]["judges"][0]["type"] == "openai_compatible"


def test_the_bundled_smollm2_judges_offline(tmp_path):
    options = {"judge_model": "smollm2", "judge_model_options": {"max_new_tokens": 12}}
    summary = evaluate(evaluation="model_graded", dataset=data(tmp_path), model=None, output=tmp_path / "run",
                       progress=False, n_bootstrap=50, cache=False, evaluation_options=options)
    for line in lines(tmp_path / "run").values():
        judged = line["scores"]["correctness"]
        assert (judged is not None and 0.0 <= judged <= 1.0 and line["judgement"]) or "unparseable" in line["error"]
    assert summary.config["evaluation"]["judges"][0]["type"] == "huggingface"


def test_probability_weighted_grades_of_a_tiny_llama(tiny_llama_dir, tmp_path):
    from fmeval.model_runners import load_runner

    short = "Question: $model_input Answer: $model_output Grade 1 to $scale:"  # the tiny model reads 256 tokens
    options = {"judge_model": str(tiny_llama_dir), "judge_probability_weighted": True, "judge_scale": 3,
               "judge_template": short}
    summary = evaluate(evaluation="model_graded", dataset=data(tmp_path), model=None, output=tmp_path / "run",
                       progress=False, n_bootstrap=50, cache=False, evaluation_options=options)
    runner = load_runner(str(tiny_llama_dir))
    judge = ModelGraded(judge_model=runner, scale=3, judge_template=short)
    record = lines(tmp_path / "run")["r1"]
    from fmeval.datasets.record import Record

    prompt = judge._prompt(Record("r1", "-", model_input=ROWS[0]["q"], target_output=["Paris"], context=ROWS[0]["ctx"]),
                           ROWS[0]["out"])
    logs = np.array([o.log_probability for o in runner.log_probability([f"{prompt} [[{g}]]" for g in (1, 2, 3)])])
    p = np.exp(logs - logs.max()) / np.exp(logs - logs.max()).sum()
    assert record["scores"]["correctness"] == pytest.approx((p @ [1, 2, 3] - 1) / 2, abs=1e-6)
    assert summary.score("correctness").value is not None
