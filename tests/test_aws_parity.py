"""Options that reproduce AWS fmeval 1.2.3 exactly, for numbers that compare with it.
(The text normalisation is pinned in test_text_metrics.py.)"""
import json

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from fmeval import evaluate
from fmeval.datasets import loader
from fmeval.datasets.record import Record
from fmeval.errors import UserError
from fmeval.model_runners.function import FunctionRunner


def test_aws_sampling_picks_the_rows_aws_fmeval_picks(mirror, tmp_path):
    """AWS fmeval draws `DataFrame.sample(n, random_state=1234)`, which is numpy's legacy
    RandomState(1234).choice(rows, n, replace=False): the first n of a permutation."""
    summary = evaluate(evaluation="factual_knowledge", dataset="trex", dataset_mirror=mirror, num_records=7,
                       sampling="aws", model=FunctionRunner(str), output=tmp_path / "aws", progress=False)
    expected = [str(i) for i in np.random.RandomState(1234).permutation(201)[:7]]
    assert sorted(json.loads(line)["record_id"] for line in (tmp_path / "aws" / "records.jsonl").read_text().splitlines()) \
        == sorted(expected)
    assert summary.config["sampling"] == "aws"
    uniform = evaluate(evaluation="factual_knowledge", dataset="trex", dataset_mirror=mirror, num_records=7,
                       model=FunctionRunner(str), output=tmp_path / "uniform", progress=False)
    assert uniform.config["sampling"] == "uniform"
    ids = {json.loads(line)["record_id"] for line in (tmp_path / "uniform" / "records.jsonl").read_text().splitlines()}
    assert ids != set(expected)


def test_aws_sampling_looks_only_at_the_first_rows(monkeypatch):
    monkeypatch.setattr(loader, "AWS_MAX_ROWS", 10)
    records = [Record(record_id=str(i), location=f"f:{i}") for i in range(1000)]
    picked = loader.sample_like_aws(iter(records), 6)
    assert [r.record_id for r in picked] == [str(i) for i in np.random.RandomState(1234).permutation(10)[:6]]
    assert len(loader.sample_like_aws(iter(records), 50)) == 10  # no more than it looks at
    with pytest.raises(UserError):
        loader.sample_like_aws(iter(records), 0)


def aws_log_probability(model, tokenizer, text):
    """AWS fmeval's Hugging Face model runner (examples/custom_model_runner_hf.ipynb, 1.2.3): minus the
    loss of the model on the text, i.e. the mean log-probability over the predicted tokens."""
    ids = torch.tensor([[tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]])
    with torch.inference_mode():
        return -model(ids, labels=ids).loss.item()


def test_mean_reduction_reproduces_aws_fmevals_sentence_score(tiny_llama_dir, mirror, tmp_path):
    summaries = {
        reduction: evaluate(evaluation="prompt_stereotyping", dataset="crows-pairs", dataset_mirror=mirror,
                            num_records=40, model=f"hf:{tiny_llama_dir}", output=tmp_path / reduction,
                            evaluation_options={"log_probability_reduction": reduction}, progress=False)
        for reduction in ("sum", "mean")
    }
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    lines = [json.loads(line) for line in (tmp_path / "mean" / "records.jsonl").read_text().splitlines()]
    verdicts = {"sum": 0, "mean": 0}
    for line in lines:
        more = aws_log_probability(model, tokenizer, line["sent_more_input"])
        less = aws_log_probability(model, tokenizer, line["sent_less_input"])
        assert line["scores"]["log_probability_difference"] == pytest.approx(more - less, abs=1e-4)
        assert line["scores"]["prompt_stereotyping"] == float(more > less)
        assert line["sent_more_log_probability"] / line["sent_more_num_tokens"] == pytest.approx(more, abs=1e-4)
        verdicts["mean"] += more > less
        verdicts["sum"] += line["sent_more_log_probability"] > line["sent_less_log_probability"]
    assert summaries["mean"].score("prompt_stereotyping").value == pytest.approx(verdicts["mean"] / 40)
    assert summaries["sum"].score("prompt_stereotyping").value == pytest.approx(verdicts["sum"] / 40)
    assert summaries["mean"].config["evaluation"]["log_probability_reduction"] == "mean"


def test_mean_reduction_needs_token_counts():
    from fmeval.algorithms import get_algorithm
    from fmeval.engine import Engine

    algorithm = get_algorithm("prompt_stereotyping", log_probability_reduction="mean")
    runner = FunctionRunner(str, log_probability_fn=lambda texts: [-1.0] * len(texts))  # no token counts
    record = Record(record_id="0", location="-", sent_more_input="a", sent_less_input="b")
    with pytest.raises(UserError, match="needs the number of tokens"):
        list(algorithm.evaluate([record], Engine(runner)))


def test_a_stereotyping_run_records_only_what_scoring_depends_on(tiny_llama_dir, mirror, tmp_path):
    summary = evaluate(evaluation="prompt_stereotyping", dataset="crows-pairs", dataset_mirror=mirror, num_records=3,
                       model=f"hf:{tiny_llama_dir}", model_options={"chat_template": True, "max_new_tokens": 8},
                       output=tmp_path / "run", progress=False)
    assert summary.model == {"type": "huggingface", "model": str(tiny_llama_dir), "gguf_file": None, "dtype": "auto"}
    assert summary.prompt_template is None  # sentences are scored as they are
    identity = json.loads((tmp_path / "run" / "run.json").read_text())["identity"]
    assert identity["model"] == summary.model and identity["prompt_template"] is None
