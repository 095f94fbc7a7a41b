"""Log-likelihood requests, multiple choice and perplexity against lm-evaluation-harness itself.

The oracle is lm-eval 0.4.13 (the `test` extra), called directly on the same tiny random Llama
(tests/conftest.py) and the same records: its `HFLM` for per-request log-likelihoods (equal to
1e-5), its `simple_evaluate` for task metrics (acc and acc_norm exactly, perplexities to 1e-6).
"""
from __future__ import annotations

import json
import math
import random

import pytest

from fmeval.datasets.config import DataConfig
from fmeval.errors import UserError

LM_EVAL_VERSION = "0.4.13"
WORDS = ["Paris", "Tokyo", "cat", "dog", "mat", "water", "degrees", "Hamlet", "capital", "the", "of", "é", "naïve"]


@pytest.fixture(scope="module")
def runner(tiny_llama_dir):
    from fmeval.model_runners.huggingface import HuggingFaceRunner

    runner = HuggingFaceRunner(tiny_llama_dir, batch_size=4)
    runner.load()
    return runner


@pytest.fixture(scope="module")
def lm(runner):
    """lm-eval's `hf` backend over the very same weights and tokenizer."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    assert lm_eval.__version__ == LM_EVAL_VERSION
    return HFLM(pretrained=runner._model, tokenizer=runner._tokenizer, batch_size=4)


def _simple_evaluate(lm, task: dict, **options):
    """lm-eval's own evaluation of one task given as a config (its built-in catalogue left unindexed)."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    return lm_eval.simple_evaluate(model=lm, tasks=[task], task_manager=TaskManager(include_defaults=False),
                                   bootstrap_iters=0, **options)


def _instances(kind, arguments):
    from lm_eval.api.instance import Instance

    return [Instance(kind, {}, argument, index) for index, argument in enumerate(arguments)]


def test_loglikelihood_of_each_request_equals_lm_eval(runner, lm):
    pairs = [
        ("The capital of France is", " Paris."),
        ("The capital of France is", " Tokyo."),  # the same context: one shared forward pass
        ("Question: who wrote Hamlet? Answer: ", "William"),  # trailing space moves onto the continuation
        ("", "Water boils at one hundred degrees."),  # empty context: BOS conditions it
        ("A cat sat", " on"),  # one token
        ("A cat sat", " a"),
        ("The capital of Japan is Tokyo. " * 30, " Tokyo."),  # longer than the context: cut on the left
    ]
    ours = runner.loglikelihood(pairs)
    theirs = lm.loglikelihood(_instances("loglikelihood", pairs))
    assert all(answer.error is None for answer in ours)
    for answer, (value, greedy) in zip(ours, theirs):
        assert answer.log_probability == pytest.approx(value, abs=1e-5)
        assert answer.is_greedy == greedy
    assert len({round(answer.log_probability, 3) for answer in ours}) == len(pairs)


def test_rolling_loglikelihood_equals_lm_eval_over_several_windows(runner, lm, tiny_llama_dir):
    from tests.conftest import TINY_CORPUS

    texts = [TINY_CORPUS[0], " ".join(TINY_CORPUS[:30]), " ".join(TINY_CORPUS[:61]), ""]
    ours = runner.loglikelihood_rolling(texts)
    theirs = lm.loglikelihood_rolling(_instances("loglikelihood_rolling", [(text,) for text in texts]))
    assert [answer.num_tokens > 256 for answer in ours] == [False, True, True, False]  # 1, 3 and 6 windows
    for answer, value in zip(ours, theirs):
        assert answer.log_probability == pytest.approx(value, abs=1e-5)
    assert ours[-1].log_probability == 0.0


def _mc_records(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    records = []
    for index in range(count):
        choices = list(dict.fromkeys(" ".join(rng.choices(WORDS, k=rng.randint(1, 4))) for _ in range(4)))
        records.append({"id": f"q{index:03d}", "question": " ".join(rng.choices(WORDS, k=rng.randint(2, 8))),
                        "choices": choices, "answer": rng.choice(choices)})
    return records


def _write(path, records):
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


@pytest.mark.slow
def test_multiple_choice_run_equals_lm_eval(runner, lm, tmp_path):
    from fmeval.runs.evaluate import evaluate

    records = _mc_records(40, seed=3)
    data = _write(tmp_path / "mc.jsonl", records)
    task = {"task": "tiny_mc", "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(data)}},
            "test_split": "test", "output_type": "multiple_choice", "doc_to_text": "Question: {{question}}\nAnswer:",
            "doc_to_choice": "{{choices}}", "doc_to_target": "{{answer}}",
            "metric_list": [{"metric": "acc"}, {"metric": "acc_norm"}, {"metric": "acc_bytes"}]}
    theirs = _simple_evaluate(lm, task, log_samples=True)
    summary = evaluate(
        evaluation="multiple_choice", model=runner, output=str(tmp_path / "run"), cache=False, store=False,
        progress=False, n_bootstrap=200, prompt_template="Question: $model_input\nAnswer:",
        evaluation_options={"metrics": ["acc", "acc_norm", "acc_bytes"]},
        dataset=DataConfig(dataset_name="tiny_mc", dataset_uri=str(data), model_input="question",
                           choices="choices", target_output="answer", record_id="id", target_output_delimiter=None),
    )
    scores = {score.name: score for score in summary.dataset_scores}
    results = theirs["results"]["tiny_mc"]
    for name in ("acc", "acc_norm", "acc_bytes"):
        assert scores[name].value == results[f"{name},none"]  # exactly
        assert scores[name].ci_lower <= scores[name].value <= scores[name].ci_upper
    assert 0 < scores["acc"].value < 1 and scores["acc_norm"].value != scores["acc"].value  # the edges matter
    lines = {line["record_id"]: line for line in map(json.loads, (tmp_path / "run" / "records.jsonl").open())}
    for sample in theirs["samples"]["tiny_mc"]:
        ours = lines[sample["doc"]["id"]]["choice_log_likelihoods"]
        assert ours == pytest.approx([response[0][0] for response in sample["resps"]], abs=1e-5)


def test_mc2_equals_lm_eval_truthfulqa(runner):
    from lm_eval.tasks.truthfulqa.utils import process_results_mc2

    from fmeval.algorithms.multiple_choice import choice_scores

    rng = random.Random(5)
    for _ in range(50):
        labels = sorted([rng.randint(0, 1) for _ in range(rng.randint(2, 7))], reverse=True)
        labels[-1] = 0  # lm-eval's MC2 needs a false answer after the true ones
        labels[0] = 1
        lls = [rng.uniform(-60, -1) for _ in labels]
        expected = process_results_mc2({"mc2_targets": {"labels": labels}}, [(ll, False) for ll in lls])["acc"]
        choices = [f"choice {i}" for i in range(len(labels))]
        gold = {i for i, label in enumerate(labels) if label}
        assert choice_scores(lls, choices, gold)["mc2"] == pytest.approx(expected, abs=1e-12)


def _wikitext_documents(mirror, count: int) -> list[dict]:
    pages: dict[str, list[str]] = {}
    with (mirror / "wikitext2" / "wikitext2_raw_test_lines.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if row["article"] not in pages and len(pages) == count:
                break
            pages.setdefault(row["article"], []).append(row["text"])
    return [{"id": f"doc{i}", "page": "\n".join(lines)} for i, lines in enumerate(pages.values())]


@pytest.mark.slow
def test_perplexity_run_equals_lm_eval_on_wikitext(runner, lm, mirror, tmp_path):
    from fmeval.runs.evaluate import evaluate

    documents = _wikitext_documents(mirror, 2) + [{"id": "short", "page": "naïve café"}]
    data = _write(tmp_path / "wiki.jsonl", documents)
    task = {"task": "tiny_wiki", "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(data)}},
            "test_split": "test", "output_type": "loglikelihood_rolling", "doc_to_text": "",
            "doc_to_target": "{{page}}",
            "metric_list": [{"metric": "word_perplexity"}, {"metric": "byte_perplexity"}, {"metric": "bits_per_byte"}]}
    theirs = _simple_evaluate(lm, task)["results"]["tiny_wiki"]
    summary = evaluate(
        evaluation="perplexity", model=runner, output=str(tmp_path / "run"), cache=False, store=False,
        progress=False, n_bootstrap=50,
        dataset=DataConfig(dataset_name="tiny_wiki", dataset_uri=str(data), model_input="page", record_id="id"),
    )
    scores = {score.name: score for score in summary.dataset_scores}
    for name in ("word_perplexity", "byte_perplexity", "bits_per_byte"):
        assert scores[name].value == pytest.approx(theirs[f"{name},none"], rel=1e-6)
    assert {spec.name: spec.higher_is_better for spec in summary.metrics}["bits_per_byte"] is False
    # Document-weighted, not a mean of documents: the short document would pull a plain mean far off.
    per_document = [line["scores"]["document_bits_per_byte"]
                    for line in map(json.loads, (tmp_path / "run" / "records.jsonl").open())]
    assert scores["bits_per_byte"].value != pytest.approx(sum(per_document) / len(per_document), rel=1e-3)


def test_a_runner_without_loglikelihood_is_refused_with_the_reason(tmp_path):
    from fmeval.runs.evaluate import evaluate

    data = _write(tmp_path / "mc.jsonl", _mc_records(3, seed=1))
    with pytest.raises(UserError, match="cannot serve loglikelihood requests"):
        evaluate(evaluation="multiple_choice", model="function:tests.support:upper_model", output=str(tmp_path / "run"),
                 cache=False, store=False, progress=False,
                 dataset=DataConfig(dataset_name="mc", dataset_uri=str(data), model_input="question",
                                    choices="choices", target_output="answer"))


def test_multiple_choice_answers_come_from_the_cache_the_second_time(runner, tmp_path):
    from fmeval.runs.evaluate import evaluate

    data = _write(tmp_path / "mc.jsonl", _mc_records(6, seed=2) + [
        {"id": "bad", "question": "x", "choices": ["a", "b"], "answer": "c"}])
    options = dict(evaluation="multiple_choice", model=runner, cache=True, cache_dir=str(tmp_path / "cache"),
                   store=False, progress=False,
                   dataset=DataConfig(dataset_name="mc", dataset_uri=str(data), model_input="question",
                                      choices="choices", target_output="answer", record_id="id"))
    first = evaluate(output=str(tmp_path / "one"), **options)
    second = evaluate(output=str(tmp_path / "two"), **options)
    requests = sum(len(record["choices"]) for record in map(json.loads, data.open()))
    assert first.engine["cache_misses"] == requests and second.engine["cache_hits"] == requests
    assert [s.value for s in first.dataset_scores] == [s.value for s in second.dataset_scores]
    assert first.num_errors == 1  # the target that is not a choice is an error on its record, not a 0
    bad = next(line for line in map(json.loads, (tmp_path / "one" / "records.jsonl").open()) if line["record_id"] == "bad")
    assert "is not one of the record's choices" in bad["error"]


def test_perplexity_runs_compare_document_by_document_lower_is_better(runner, tiny_llama_dir, tmp_path):
    """Two models' perplexity runs pair by document in `compare`; bits per byte is lower-is-better."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    from fmeval.model_runners.huggingface import HuggingFaceRunner
    from fmeval.reports.compare import compare_runs
    from fmeval.runs.loaded import load_runs
    from fmeval.runs.evaluate import evaluate

    other = tmp_path / "other-llama"
    shutil.copytree(tiny_llama_dir, other)
    model = AutoModelForCausalLM.from_pretrained(other)
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.5)
    model.save_pretrained(other)
    documents = [{"id": f"d{i}", "page": " ".join(random.Random(i).choices(WORDS, k=5 + 3 * i))} for i in range(8)]
    data = _write(tmp_path / "docs.jsonl", documents)
    dataset = DataConfig(dataset_name="docs", dataset_uri=str(data), model_input="page", record_id="id")
    for name, model_runner in (("base", runner), ("cand", HuggingFaceRunner(other, batch_size=4))):
        evaluate(evaluation="perplexity", dataset=dataset, model=model_runner, output=str(tmp_path / name),
                 cache=False, store=False, progress=False, n_bootstrap=50)
    baseline, candidate = load_runs([str(tmp_path / "base"), str(tmp_path / "cand")], labels=["base", "cand"])
    metric = compare_runs(baseline, candidate, n_bootstrap=200).metric("document_bits_per_byte")
    assert metric.direction == "lower" and metric.n_paired == 8
    per_document = {}
    for name in ("base", "cand"):
        for line in map(json.loads, (tmp_path / name / "records.jsonl").open()):
            per_document.setdefault(line["record_id"], []).append(line["scores"]["document_bits_per_byte"])
    expected = sum(cand - base for base, cand in per_document.values()) / len(per_document)
    assert metric.delta == pytest.approx(expected, rel=1e-9) and metric.delta != 0
    assert compare_runs(baseline, candidate).metric("bits_per_byte").direction == "lower"
