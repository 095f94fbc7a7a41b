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
    assert list(record["grade_distribution"]) == ["1", "2", "3"]
    assert list(record["grade_distribution"].values()) == pytest.approx(p, abs=1e-6)
    assert record["judge_prompt"] == prompt
    assert summary.score("correctness").value is not None


# -- issue 21: judges you can trust -----------------------------------------------------------------
def test_two_different_grades_are_an_error_on_the_record_with_the_raw_answer(tmp_path):
    with pytest.raises(ValueError, match=r"more than one grade \(4.0, 2.0\)"):
        read_grade("[[4]] ... [[2]]", 5)
    assert read_grade("[[4]], yes: [[4]]", 5) == 4  # the same grade twice is one grade

    def undecided(prompt):
        return "[[4]] or rather [[2]]" if "Japan" in prompt else "[[5]]"

    summary = evaluate(evaluation=ModelGraded(judge_model=FunctionRunner(undecided)), dataset=data(tmp_path),
                       model=None, output=tmp_path / "run", progress=False, n_bootstrap=50)
    records = lines(tmp_path / "run")
    assert records["r2"]["scores"]["correctness"] is None and "more than one grade" in records["r2"]["error"]
    assert records["r2"]["judgement"] == "[[4]] or rather [[2]]"
    assert records["r1"]["judge_prompt"].startswith("You are an impartial judge.")  # the judge's full prompt
    assert "Question: Capital of France?\nReference answer: Paris\nResponse: It is Paris." in records["r1"]["judge_prompt"]
    assert summary.num_errors == 1 and summary.score("correctness").value == 1.0


def test_evaluations_import_runner_types_only():
    """The run builds every model (the judges too); an evaluation never calls load_runner."""
    import ast
    from pathlib import Path

    import fmeval.algorithms

    for path in Path(fmeval.algorithms.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fmeval.model_runners"):
                assert node.module == "fmeval.model_runners.base", f"{path.name} imports {node.module}"


def test_the_judge_has_its_own_engine_options_and_its_requests_are_counted_apart(tmp_path):
    # Every request fails: the judge gets 1 + max_retries requests per record, from the run's engine
    # options unless judge_engine_options says otherwise.
    with FakeOpenAIServer(fault_rate=1.0, faults=("500",)) as server:
        options = {"judge_model": "openai:judge", "judge_model_options": {"base_url": server.url, "api_key_env": ""}}
        summary = evaluate(evaluation="model_graded", dataset=data(tmp_path), model=None, output=tmp_path / "run",
                           progress=False, n_bootstrap=50, cache=False, evaluation_options=options,
                           engine_options={"max_retries": 1, "retry_base_delay_s": 0.0})
        assert server.requests == 3 * 2
        (judge,) = summary.engine["judges"]
        assert (judge["requests"], judge["retries"], judge["failed_requests"]) == (6, 3, 3)
        assert summary.engine["requests"] == 0  # the model's: the outputs came with the dataset
        assert summary.num_errors == 3 and all("the judge failed" in line["error"] for line in lines(tmp_path / "run").values())

        options["judge_engine_options"] = {"max_retries": 0}
        summary = evaluate(evaluation="model_graded", dataset=data(tmp_path), model=None, output=tmp_path / "own",
                           progress=False, n_bootstrap=50, cache=False, evaluation_options=options,
                           engine_options={"max_retries": 1, "retry_base_delay_s": 0.0})
        assert server.requests == 6 + 3 and summary.engine["judges"][0]["requests"] == 3
        assert summary.config["judge_engine"] == {"max_retries": 0}

    with FakeOpenAIServer(responder=lambda prompt: "[[5]]") as server:  # the cache is counted too
        options = {"judge_model": "openai:judge", "judge_model_options": {"base_url": server.url, "api_key_env": ""}}
        for name in ("first", "second"):
            summary = evaluate(evaluation="model_graded", dataset=data(tmp_path), model=None, output=tmp_path / name,
                               progress=False, n_bootstrap=50, cache_dir=str(tmp_path / "cache"),
                               evaluation_options=options)
        assert server.requests == 3 and summary.engine["judges"][0]["cache_hits"] == 3


def test_unknown_judge_model_options_are_errors_naming_the_valid_keys(tmp_path):
    options = {"judge_model": "openai:judge", "judge_model_options": {"base_url": "http://127.0.0.1:9/v1",
                                                                      "timeout_s": 5}}
    with pytest.raises(UserError, match=r"judge_model_options: .*unknown key\(s\) timeout_s; the keys are those of "
                                        r"model_options: .*\btimeout\b"):
        evaluate(evaluation="model_graded", dataset=data(tmp_path), model=None, output=tmp_path / "run",
                 progress=False, evaluation_options=options)
    assert not (tmp_path / "run").exists()
    from fmeval.runs.config import build_config
    from fmeval.runs.evaluate import _judge_options

    config = build_config(options={"evaluation": "model_graded", "dataset": "x", "evaluation_options": {
        "judge_model": "openai:judge", "judge_model_options": {"base_url": "http://127.0.0.1:9/v1", "timeout": 7.5}}})
    (judge,) = _judge_options(config)["judge_model"]
    assert judge.timeout_s == 7.5  # the key of model_options, mapped to the runner's


def test_reason_then_grade_with_a_pattern_letter_grades_and_a_pass_threshold(tmp_path):
    def reasons_first(prompt):
        correct = re.search(r"Reference answer: (.*)", prompt).group(1) in re.search(r"Response: (.*)", prompt).group(1)
        # a number in the reasoning must not be read as the grade
        return (f"The response {'matches' if correct else 'contradicts'} the reference; a score of 2 would be unfair "
                f"to say otherwise.\nGRADE: {5 if correct else 2}")

    graded = ModelGraded(judge_model=FunctionRunner(reasons_first), judge_format="reason_then_grade",
                         pass_threshold=0.5)
    assert graded.template.endswith("Then end your answer with a last line of the form GRADE: 3, with your grade, "
                                    "and nothing after it.")
    summary = evaluate(evaluation=graded, dataset=data(tmp_path), model=None, output=tmp_path / "run",
                       progress=False, n_bootstrap=50)
    records = lines(tmp_path / "run")
    assert [records[r]["scores"]["correctness"] for r in ("r1", "r2", "r3")] == [1.0, 0.25, 0.25]
    assert [records[r]["scores"]["correctness_pass"] for r in ("r1", "r2", "r3")] == [1.0, 0.0, 0.0]
    assert records["r1"]["judgement"].startswith("The response matches") and records["r1"]["grade"] == 5
    assert summary.score("correctness_pass").value == pytest.approx(1 / 3)
    assert summary.config["evaluation"]["pass_threshold"] == 0.5

    def partial(prompt):
        return {"Paris": "Close enough. GRADE: C", "Tokyo": "Half right. GRADE: p", "4": "Verdict pending"}[
            re.search(r"Reference answer: (.*)", prompt).group(1)]

    graded = ModelGraded(judge_model=FunctionRunner(partial), judge_format="reason_then_grade",
                         grades={"C": 1.0, "P": 0.5, "I": 0.0}, pass_threshold=0.75)
    assert "with one of C (credit 1), P (credit 0.5), I (credit 0)" in graded.template
    evaluate(evaluation=graded, dataset=data(tmp_path), model=None, output=tmp_path / "letters", progress=False,
             n_bootstrap=50)
    records = lines(tmp_path / "letters")
    assert records["r1"]["scores"] == {"correctness": 1.0, "correctness_pass": 1.0} and records["r1"]["grade"] == "C"
    assert records["r2"]["scores"] == {"correctness": 0.5, "correctness_pass": 0.0}
    assert "no grade (C, P, I)" in records["r3"]["error"] and records["r3"]["judgement"] == "Verdict pending"

    custom = ModelGraded(judge_model=FunctionRunner(lambda prompt: "Verdict: 4 of 5 (GRADE: 1 was a typo)"),
                         grade_pattern=r"Verdict: (\d)")
    assert [(s.name, s.value) for s in custom.evaluate_sample(model_output="Paris", target_output="Paris",
                                                               model_input="Capital?")] == [("correctness", 0.75)]
    with pytest.raises(UserError, match="needs a group"):
        ModelGraded(judge_model=FunctionRunner(partial), grade_pattern=r"GRADE: \d")
    with pytest.raises(UserError, match="cannot be combined with reason_then_grade"):
        ModelGraded(judge_model=FunctionRunner(partial), judge_format="reason_then_grade", probability_weighted=True)


PANEL_ROWS = [{"id": f"p{i}", "q": f"question {i}", "a": f"answer {i % 3}", "out": f"answer {i % 2}"} for i in range(8)]


def _matches(prompt: str) -> bool:
    return re.search(r"Reference answer: (.*)", prompt).group(1) == re.search(r"Response: (.*)", prompt).group(1)


def panel_strict(prompt: str) -> str:
    return "[[5]]" if _matches(prompt) else "[[1]]"


def panel_mild(prompt: str) -> str:
    """Agrees with the strict judge, a grade softer on wrong answers, except on question 5."""
    return "[[5]]" if _matches(prompt) else "[[4]]" if "question 5" in prompt else "[[2]]"


def panel_contrarian(prompt: str) -> str:
    return "[[1]]" if _matches(prompt) else "[[5]]"


def test_a_panel_of_judges_keeps_each_grade_aggregates_and_reports_their_agreement(tmp_path):
    """Krippendorff's alpha between the judges against the krippendorff package (0.9.0, ordinal)."""
    import krippendorff

    from fmeval.cli import main

    path = tmp_path / "panel.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in PANEL_ROWS))
    fields = ["--model-input", "q", "--target-output", "a", "--model-output", "out", "--record-id", "id"]
    judges = [arg for name in ("strict", "mild", "contrarian") for arg in ("--judge", f"function:{__name__}:panel_{name}")]
    run = tmp_path / "run"
    assert main(["run", "-e", "model_graded", "-d", str(path), *fields, *judges, "--judge-aggregate", "median",
                 "-o", str(run), "--n-bootstrap", "50", "--no-progress"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    records = lines(run)
    credit = {"[[1]]": 0.0, "[[2]]": 0.25, "[[4]]": 0.75, "[[5]]": 1.0}
    table = np.array([[credit[judge(f"Question: {row['q']}\nReference answer: {row['a']}\nResponse: {row['out']}")]
                       for judge in (panel_strict, panel_mild, panel_contrarian)] for row in PANEL_ROWS])
    for row, expected in zip(PANEL_ROWS, table):
        line = records[row["id"]]
        assert [verdict["score"] for verdict in line["panel"]] == list(expected)
        assert [verdict["judge"] for verdict in line["panel"]] == ["judge_1", "judge_2", "judge_3"]
        assert line["scores"]["correctness"] == np.median(expected)
        assert line["scores"]["correctness_judge_3"] == expected[2]
    scores = {score["name"]: score["value"] for score in summary["dataset_scores"]}
    reference = krippendorff.alpha(reliability_data=table.T, level_of_measurement="ordinal")
    assert scores["judge_agreement"] == pytest.approx(reference, abs=1e-12) and reference < 0
    without_contrarian = krippendorff.alpha(reliability_data=table.T[:2], level_of_measurement="ordinal")
    assert scores["judge_agreement_without_3"] == pytest.approx(without_contrarian, abs=1e-12)
    assert scores["judge_agreement_without_3"] > 0.5 > max(scores["judge_agreement_without_1"],
                                                            scores["judge_agreement_without_2"])  # the odd one out
    assert [judge["model"] for judge in summary["config"]["evaluation"]["judges"]] == [
        f"function:{__name__}:panel_{name}" for name in ("strict", "mild", "contrarian")]
    assert summary["config"]["evaluation"]["aggregate"] == "median"
    assert [judge["requests"] for judge in summary["engine"]["judges"]] == [8, 8, 8]

    # majority: a 1-1 split of two judges goes to the stricter grade, and says so
    graded = ModelGraded(judge_model=[FunctionRunner(panel_strict), FunctionRunner(panel_mild)], aggregate="majority")
    evaluate(evaluation=graded, dataset=DataConfig(dataset_name="panel", dataset_uri=str(path), model_input="q",
                                                   target_output="a", model_output="out", record_id="id"),
             model=None, output=tmp_path / "majority", progress=False, n_bootstrap=50)
    majority = lines(tmp_path / "majority")
    assert majority["p0"]["scores"]["correctness"] == 1.0  # both graded 5
    assert majority["p2"]["scores"]["correctness"] == 0.0 and majority["p2"]["majority_tie"] == [0.0, 0.25]
    assert majority["p5"]["scores"]["correctness"] == 0.0 and majority["p5"]["majority_tie"] == [0.0, 0.75]
    unanimous = evaluate(evaluation=ModelGraded(judge_model=[FunctionRunner(lambda p: "[[5]]")] * 2),
                         dataset=data(tmp_path), model=None, output=tmp_path / "unanimous", progress=False, n_bootstrap=50)
    assert unanimous.score("judge_agreement").value is None  # alpha is undefined with one value throughout
    assert "undefined" in unanimous.score("judge_agreement").error
    with pytest.raises(UserError, match="aggregate must be one of mean, median, majority"):
        ModelGraded(judge_model=[FunctionRunner(panel_strict)] * 2, aggregate="vote")


def test_each_judge_of_a_panel_may_have_its_own_model_options(tmp_path):
    with FakeOpenAIServer(responder=lambda prompt: "[[5]]") as five, FakeOpenAIServer(responder=lambda p: "[[1]]") as one:
        options = {"judge_model": ["openai:a", "openai:b"], "judge_model_options": [
            {"base_url": five.url, "api_key_env": ""}, {"base_url": one.url, "api_key_env": ""}]}
        summary = evaluate(evaluation="model_graded", dataset=data(tmp_path), model=None, output=tmp_path / "run",
                           progress=False, n_bootstrap=50, cache=False, evaluation_options=options)
        assert (five.requests, one.requests) == (3, 3)
    assert [v["score"] for v in lines(tmp_path / "run")["r1"]["panel"]] == [1.0, 0.0]
    assert summary.score("correctness").value == 0.5
    assert [judge["base_url"] for judge in summary.config["evaluation"]["judges"]] == [five.url, one.url]
    options["judge_model_options"] = options["judge_model_options"][:1]
    with pytest.raises(UserError, match="1 mappings for 2 judges; give one per judge, or one mapping for all"):
        evaluate(evaluation="model_graded", dataset=data(tmp_path), model=None, output=tmp_path / "bad",
                 progress=False, evaluation_options=options)


def test_a_cacheable_judge_does_not_put_an_uncacheable_models_answers_in_the_shared_cache(tmp_path):
    rows = [{"id": row["id"], "q": row["q"], "a": row["a"]} for row in ROWS]
    path = tmp_path / "questions.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    dataset = DataConfig(dataset_name="questions", dataset_uri=str(path), model_input="q", target_output="a",
                         record_id="id")
    with FakeOpenAIServer(responder=lambda prompt: "[[5]]") as server:
        options = {"judge_model": "openai:judge", "judge_model_options": {"base_url": server.url, "api_key_env": ""}}
        for name, answer in (("before", "old answer"), ("after", "new answer")):  # same name, other code
            evaluate(evaluation="model_graded", dataset=dataset, model=FunctionRunner(lambda p, a=answer: a, name="m"),
                     output=tmp_path / name, progress=False, n_bootstrap=50, cache_dir=str(tmp_path / "cache"),
                     evaluation_options=options)
    assert {line["model_output"] for line in lines(tmp_path / "after").values()} == {"new answer"}


def test_a_panel_scores_only_the_chosen_metrics(tmp_path):
    graded = ModelGraded(judge_model=[FunctionRunner(panel_strict), FunctionRunner(panel_mild)], metrics=["correctness"])
    summary = evaluate(evaluation=graded, dataset=data(tmp_path), model=None, output=tmp_path / "run", progress=False,
                       n_bootstrap=50)
    assert [score.name for score in summary.dataset_scores] == ["correctness"]
    assert set(lines(tmp_path / "run")["r1"]["scores"]) == {"correctness"}
    assert [v["score"] for v in lines(tmp_path / "run")["r1"]["panel"]] == [0.0, 0.25]  # each grade still kept


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_krippendorffs_alpha_equals_the_krippendorff_package(level):
    """fmeval.stats.krippendorff_alpha against krippendorff 0.9.0: missing grades, grades nobody gave
    (1..5 with 3 unused), fractional values, and 2 to 4 judges."""
    import krippendorff

    from fmeval.stats import krippendorff_alpha

    rng = np.random.default_rng(7)
    for trial in range(40):
        values = np.array([1.0, 2.0, 4.0, 5.0]) if trial % 2 else np.array([0.0, 0.25, 0.6, 1.0])
        matrix = rng.choice(values, size=(rng.integers(2, 5), rng.integers(4, 15)))
        matrix[rng.random(matrix.shape) < 0.25] = np.nan
        pairable = matrix[:, (~np.isnan(matrix)).sum(axis=0) >= 2]
        if len(np.unique(pairable[~np.isnan(pairable)])) < 2:
            assert np.isnan(krippendorff_alpha(matrix, level))
            continue
        expected = krippendorff.alpha(reliability_data=pairable, level_of_measurement=level)
        assert krippendorff_alpha(matrix, level) == pytest.approx(expected, abs=1e-12)
    assert np.isnan(krippendorff_alpha(np.array([[3.0, 3.0], [3.0, 3.0]]), level))  # one value: undefined


def test_a_probability_weighted_panel_agrees_at_the_interval_level(tmp_path):
    """Expected grades are continuous: the judges' alpha is interval (krippendorff 0.9.0)."""
    import krippendorff

    def leaning(toward):  # log-probabilities of "[[g]]" that lean to grade `toward`, more so for Paris
        def log_probabilities(texts):
            return [-abs(int(t[-3]) - toward) * (2.0 if "Paris" in t.split("Response:")[-1] else 0.5) for t in texts]
        return FunctionRunner(lambda p: "", log_probability_fn=log_probabilities)

    graded = ModelGraded(judge_model=[leaning(5), leaning(1)], probability_weighted=True, scale=3)
    summary = evaluate(evaluation=graded, dataset=data(tmp_path), model=None, output=tmp_path / "run", progress=False,
                       n_bootstrap=50)
    records = lines(tmp_path / "run")
    table = np.array([[v["score"] for v in records[r]["panel"]] for r in ("r1", "r2", "r3")])
    for r, row in zip(("r1", "r2", "r3"), table):
        assert sum(records[r]["panel"][0]["grade_distribution"].values()) == pytest.approx(1.0)
        assert records[r]["scores"]["correctness"] == pytest.approx(row.mean())
    expected = krippendorff.alpha(reliability_data=table.T, level_of_measurement="interval")
    assert summary.score("judge_agreement").value == pytest.approx(expected, abs=1e-12)


def test_a_judge_cut_short_before_its_grade_is_told_so(tiny_llama_dir, tmp_path):
    """A real tiny Llama with 4 new tokens cannot reason and then grade: the error says why."""
    options = {"judge_model": str(tiny_llama_dir), "judge_model_options": {"max_new_tokens": 4},
               "judge_format": "reason_then_grade", "judge_template": "Grade '$model_output' for $model_input."}
    summary = evaluate(evaluation="model_graded", dataset=data(tmp_path), model=None, output=tmp_path / "run",
                       progress=False, n_bootstrap=50, cache=False, evaluation_options=options)
    assert summary.num_errors == 3
    for line in lines(tmp_path / "run").values():
        assert "no grade (1, 2, 3, 4, 5)" in line["error"] and "cut at the judge's max_new_tokens" in line["error"]
