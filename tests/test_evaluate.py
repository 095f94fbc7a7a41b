"""Whole runs: dataset -> prompts -> model -> scores -> run directory, checked by hand."""
import json

import pytest

from fmeval import EvalOutput, evaluate
from fmeval.datasets import DataConfig
from fmeval.errors import DataError, UserError
from fmeval.model_runners.function import FunctionRunner

QA_ROWS = [
    {"question": "Capital of France?", "answers": "Paris<OR>Lutetia", "cat": "geo"},
    {"question": "Capital of Japan?", "answers": ["Tokyo"], "cat": "geo"},
    {"question": "Author of Hamlet?", "answers": "Shakespeare", "cat": "lit"},
    {"question": "Largest planet?", "answers": "Jupiter", "cat": "sci"},
]
ANSWERS = {
    "Capital of France?": "It is Paris.",
    "Capital of Japan?": "Kyoto",
    "Author of Hamlet?": "William Shakespeare",
    "Largest planet?": "",
}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def answer(prompt):
    return ANSWERS[prompt.removeprefix("Q: ")]


def qa_config(path):
    return DataConfig(dataset_name="qa", dataset_uri=str(path), model_input="question",
                      target_output="answers", category="cat")


def test_factual_knowledge_end_to_end(tmp_path):
    data = write_jsonl(tmp_path / "qa.jsonl", QA_ROWS)
    summary = evaluate(
        evaluation="factual_knowledge", dataset=qa_config(data), model=FunctionRunner(answer),
        prompt_template="Q: $model_input", output=tmp_path / "run", progress=False, n_bootstrap=500,
    )
    # hits: Paris yes, Kyoto no, Shakespeare yes, empty no
    assert summary.score("factual_knowledge").value == pytest.approx(0.5)
    assert summary.score("factual_knowledge").count == 4
    categories = {c.name: {s.name: s.value for s in c.scores} for c in summary.category_scores}
    assert categories == {
        "geo": {"factual_knowledge": 0.5, "factual_knowledge_quasi_exact": 0.5},
        "lit": {"factual_knowledge": 1.0, "factual_knowledge_quasi_exact": 1.0},
        "sci": {"factual_knowledge": 0.0, "factual_knowledge_quasi_exact": 0.0},
    }
    lines = [json.loads(line) for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    assert [line["record_id"] for line in lines] == ["0", "1", "2", "3"]
    assert lines[0]["prompt"] == "Q: Capital of France?"
    assert lines[0]["target_output"] == ["Paris", "Lutetia"]
    assert lines[3]["model_output"] == "" and lines[3]["scores"]["factual_knowledge"] == 0.0
    assert summary.dataset["sha256"][0] == __import__("hashlib").sha256(data.read_bytes()).hexdigest()
    assert summary.model["type"] == "function" and summary.seed == 0
    assert EvalOutput.from_json(tmp_path / "run") == summary
    assert EvalOutput.from_json(summary.to_json()) == summary


def test_model_errors_are_recorded_per_record_and_left_out_of_means(tmp_path):
    data = write_jsonl(tmp_path / "qa.jsonl", QA_ROWS)

    def flaky(prompt):
        if "Japan" in prompt:
            raise TimeoutError("model timed out")
        return answer(prompt)

    summary = evaluate(
        evaluation="qa_accuracy", dataset=qa_config(data), model=FunctionRunner(flaky),
        evaluation_options={"metrics": ["exact_match_score", "recall_over_words"]},
        engine_options={"max_retries": 2, "retry_base_delay_s": 0.001}, output=tmp_path / "run", progress=False,
    )
    assert summary.engine["retries"] == 2 and summary.engine["failed_requests"] == 1
    assert summary.num_errors == 1 and summary.num_records == 4
    # recall over the 3 answered: Paris 1, Shakespeare 1, empty 0
    assert summary.score("recall_over_words").value == pytest.approx(2 / 3)
    assert summary.score("recall_over_words").count == 3
    lines = [json.loads(line) for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    assert lines[1]["error"] == "TimeoutError: model timed out"
    assert lines[1]["scores"] == {"exact_match_score": None, "recall_over_words": None}


def test_custom_file_with_context_template_and_default_fields(tmp_path):
    rows = [{"model_input": "Who?", "target_output": "Ada", "context": "Ada wrote the first program."}]
    data = write_jsonl(tmp_path / "rag.jsonl", rows)
    seen = []
    summary = evaluate(
        evaluation="factual_knowledge", dataset=data, model=FunctionRunner(lambda p: seen.append(p) or "Ada"),
        dataset_fields={"context": "context"}, prompt_template="Context: $context\nQuestion: $model_input",
        output=tmp_path / "run", progress=False,
    )
    assert seen == ["Context: Ada wrote the first program.\nQuestion: Who?"]
    assert summary.score("factual_knowledge").value == 1.0 and summary.dataset_name == "rag"


def test_dataset_model_outputs_need_no_model(tmp_path):
    rows = [{"q": "x", "a": "yes", "out": "yes"}, {"q": "y", "a": "no", "out": "yes"}]
    data = write_jsonl(tmp_path / "scored.jsonl", rows)
    cfg = DataConfig(dataset_name="s", dataset_uri=str(data), model_input="q", target_output="a", model_output="out")
    summary = evaluate(evaluation="classification_accuracy", dataset=cfg, model=None,
                       output=tmp_path / "run", progress=False, n_bootstrap=100)
    assert summary.score("classification_accuracy_score").value == 0.5
    assert summary.score("balanced_accuracy_score").value == 0.5  # recall: yes 1/1, no 0/1
    assert summary.model == {"type": "dataset model_output"}


def test_sampling_in_a_run_is_seeded(tmp_path):
    rows = [{"question": f"q{i}", "answers": "a"} for i in range(50)]
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    cfg = DataConfig(dataset_name="d", dataset_uri=str(data), model_input="question", target_output="answers")

    def run(seed, name):
        evaluate(evaluation="factual_knowledge", dataset=cfg, model=FunctionRunner(str), num_records=10, seed=seed,
                 output=tmp_path / name, progress=False)
        return [json.loads(l)["record_id"] for l in (tmp_path / name / "records.jsonl").read_text().splitlines()]

    assert run(3, "a") == run(3, "b") != run(4, "c")
    assert len(run(3, "d")) == 10


def test_bad_input_fails_before_the_model_is_called(tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"question": "ok", "answers": "x"}\n{"question": "no answer"}\n')
    calls = []
    model = FunctionRunner(lambda p: calls.append(p) or "x")
    with pytest.raises(DataError, match=r"bad\.jsonl:2: field target_output"):
        evaluate(evaluation="factual_knowledge", dataset=data, model=model,
                 dataset_fields={"model_input": "question", "target_output": "answers"},
                 output=tmp_path / "run", progress=False)
    assert calls == []
    summary = evaluate(evaluation="factual_knowledge", dataset=data, model=model, skip_bad_records=True,
                       dataset_fields={"model_input": "question", "target_output": "answers"},
                       output=tmp_path / "run2", progress=False)
    assert (summary.num_records, summary.num_skipped_records) == (1, 1)
    assert "bad.jsonl:2" in summary.dataset["skipped_examples"][0]


def test_usage_errors(tmp_path):
    data = write_jsonl(tmp_path / "qa.jsonl", QA_ROWS)
    model = FunctionRunner(answer)
    with pytest.raises(UserError, match=r"\$context but dataset"):
        evaluate(evaluation="factual_knowledge", dataset=qa_config(data), model=model,
                 prompt_template="$context $model_input", output=tmp_path / "r", progress=False)
    with pytest.raises(UserError, match="unknown placeholder"):
        evaluate(evaluation="factual_knowledge", dataset=qa_config(data), model=model,
                 prompt_template="$question", output=tmp_path / "r", progress=False)
    with pytest.raises(UserError, match="neither a built-in dataset"):
        evaluate(evaluation="factual_knowledge", dataset="no_such_thing", model=model, progress=False)

def test_rerun_resumes_and_a_changed_configuration_is_refused(tmp_path):
    data = write_jsonl(tmp_path / "qa.jsonl", QA_ROWS)
    calls = []
    model = FunctionRunner(lambda p: calls.append(p) or answer(p))
    first = evaluate(evaluation="factual_knowledge", dataset=qa_config(data), model=model,
                     prompt_template="Q: $model_input", output=tmp_path / "once", progress=False)
    again = evaluate(evaluation="factual_knowledge", dataset=qa_config(data), model=model,
                     prompt_template="Q: $model_input", output=tmp_path / "once", progress=False)
    assert len(calls) == 4 and again.engine == first.engine  # a finished run is immutable: its summary comes back
    assert again.dataset_scores == first.dataset_scores
    with pytest.raises(UserError, match=r"different configuration \(changed: prompt_template\)"):
        evaluate(evaluation="factual_knowledge", dataset=qa_config(data), model=model,
                 prompt_template="Question: $model_input", output=tmp_path / "once", progress=False)
    evaluate(evaluation="factual_knowledge", dataset=qa_config(data), model=model, overwrite=True,
             prompt_template="Question: $model_input".replace("Question", "Q"), output=tmp_path / "once", progress=False)
    assert len(calls) == 8


def test_builtin_dataset_with_tiny_local_model(tiny_llama_dir, mirror, tmp_path):
    summary = evaluate(
        evaluation="factual_knowledge", dataset="trex", model=f"hf:{tiny_llama_dir}", num_records=12,
        model_options={"max_new_tokens": 4, "batch_size": 5}, dataset_mirror=mirror, output=tmp_path / "run",
        progress=False,
    )
    lines = [json.loads(l) for l in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    assert summary.num_records == 12 == len(lines) and summary.num_errors == 0
    assert all(isinstance(line["model_output"], str) for line in lines)
    expected = sum(line["scores"]["factual_knowledge"] for line in lines) / 12
    assert summary.score("factual_knowledge").value == pytest.approx(expected)
    assert summary.dataset["sha256"] == ["bca4b1cdd893a81ceed9500cf1dc20e56a4d6181109f16e569e8a282469aec9b"]
    assert summary.model["max_new_tokens"] == 4
