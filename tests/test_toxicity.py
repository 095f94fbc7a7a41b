"""Toxicity detectors on tiny local classifiers, against direct computations."""
import json
import time

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from fmeval import evaluate
from fmeval.algorithms import get_algorithm
from fmeval.errors import UserError
from fmeval.model_runners.function import FunctionRunner

TEXTS = ["you are an idiot", "have a lovely day", "The capital of France is Paris.", "a cat"]
AWS_NAMES = ("toxicity", "severe_toxicity", "obscene", "identity_attack", "insult", "threat", "sexual_explicit")


def direct_logits(directory, texts):
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForSequenceClassification.from_pretrained(directory).eval()
    with torch.no_grad():
        return torch.stack([model(**tokenizer(text, return_tensors="pt")).logits[0] for text in texts])


def test_detoxify_checkpoint_scores_names_values_and_batching(detoxify_checkpoint):
    batched = get_algorithm("toxicity", detoxify_checkpoint=str(detoxify_checkpoint), batch_size=2)
    whole = get_algorithm("toxicity", detoxify_checkpoint=str(detoxify_checkpoint), batch_size=64)
    records = [None] * len(TEXTS)
    scored_batched = batched.score_outputs(records, TEXTS)
    scored_whole = whole.score_outputs(records, TEXTS)
    assert batched.score_names == AWS_NAMES  # Detoxify's class names, standardised
    expected = torch.sigmoid(direct_logits(detoxify_checkpoint.parent, TEXTS))
    for i, ((scores, _), (same, _)) in enumerate(zip(scored_batched, scored_whole)):
        assert list(scores) == list(AWS_NAMES)
        for j, name in enumerate(AWS_NAMES):
            assert scores[name] == pytest.approx(expected[i, j].item(), abs=1e-5)
            assert scores[name] == pytest.approx(same[name], abs=1e-5)  # batched equals unbatched


def test_toxigen_path_scores_the_toxic_label(tiny_toxigen_dir):
    algorithm = get_algorithm("toxicity", detector="toxigen", toxigen_model=str(tiny_toxigen_dir), batch_size=3)
    scored = algorithm.score_outputs([None] * len(TEXTS), TEXTS)
    expected = torch.softmax(direct_logits(tiny_toxigen_dir, TEXTS), dim=-1)[:, 1]
    assert algorithm.score_names == ("toxicity",)
    assert [s["toxicity"] for s, _ in scored] == pytest.approx(expected.tolist(), abs=1e-5)


def test_missing_models_fail_fast_with_instructions(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    with pytest.raises(UserError, match="toxigen_model=PATH"):
        get_algorithm("toxicity", detector="toxigen", toxigen_model="tomh/toxigen_roberta").score_outputs([None], ["x"])
    with pytest.raises(UserError, match="detoxify_checkpoint=PATH"):
        get_algorithm("toxicity", detoxify_checkpoint=str(tmp_path / "missing.ckpt")).score_outputs([None], ["x"])
    with pytest.raises(UserError, match="needs the network once"):
        get_algorithm("toxicity", detoxify_model="original").score_outputs([None], ["x"])  # GitHub is unreachable
    assert time.perf_counter() - started < 30
    with pytest.raises(UserError, match="detoxify_model must be one of"):
        get_algorithm("toxicity", detoxify_model="huge")


def test_toxicity_run_on_real_toxicity_prompts(detoxify_checkpoint, mirror, tmp_path):
    summary = evaluate(
        evaluation="toxicity", dataset="real_toxicity_prompts_challenging", num_records=10,
        model=FunctionRunner(lambda prompt: prompt[::-1]), dataset_mirror=mirror, output=tmp_path / "run",
        evaluation_options={"detoxify_checkpoint": str(detoxify_checkpoint), "metrics": ["toxicity", "insult"]},
        progress=False,
    )
    assert [s.name for s in summary.dataset_scores] == ["toxicity", "insult"]
    assert summary.num_records == 10 and summary.config["evaluation"]["detector"] == "detoxify"
    # Each record's scores and the means equal the checkpoint's own forward pass on the outputs.
    lines = [json.loads(line) for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    expected = torch.sigmoid(direct_logits(detoxify_checkpoint.parent, [line["model_output"] for line in lines]))
    for line, row in zip(lines, expected):
        assert line["model_output"] == line["prompt"][::-1]
        assert line["scores"]["toxicity"] == pytest.approx(row[0].item(), abs=1e-5)
        assert line["scores"]["insult"] == pytest.approx(row[AWS_NAMES.index("insult")].item(), abs=1e-5)
    assert summary.score("toxicity").value == pytest.approx(expected[:, 0].mean().item(), abs=1e-5)
    assert summary.score("toxicity").ci_lower <= summary.score("toxicity").value <= summary.score("toxicity").ci_upper


def test_qa_and_summarization_toxicity_names(detoxify_checkpoint, mirror, tmp_path):
    summary = evaluate(evaluation="qa_toxicity", dataset="trivia_qa", num_records=3, model=FunctionRunner(str.lower),
                       dataset_mirror=mirror, output=tmp_path / "qa", progress=False,
                       evaluation_options={"detoxify_checkpoint": str(detoxify_checkpoint)})
    assert summary.eval_name == "qa_toxicity" and len(summary.dataset_scores) == 7
    with pytest.raises(UserError, match="unknown: rudeness"):
        evaluate(evaluation="summarization_toxicity", dataset="gigaword", num_records=2, model=FunctionRunner(str),
                 dataset_mirror=mirror, output=tmp_path / "s", progress=False,
                 evaluation_options={"detoxify_checkpoint": str(detoxify_checkpoint), "metrics": ["rudeness"]})
