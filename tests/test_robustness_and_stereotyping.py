"""Semantic robustness and prompt stereotyping, with runners whose behaviour is known exactly."""
import collections
import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from fmeval import evaluate
from fmeval.algorithms import get_algorithm
from fmeval.datasets import DataConfig
from fmeval.errors import DataError, UserError
from fmeval.model_runners.function import FunctionRunner
from fmeval.model_runners.openai_compatible import OpenAICompatibleRunner
from fmeval.testing import FakeOpenAIServer, word_log_probabilities

INPUTS = [f"tell me about topic {i} please" for i in range(6)]


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def gsr(tmp_path, model, name, **options):
    data = write(tmp_path / "d.jsonl", [{"model_input": text} for text in INPUTS])
    # probability 1: every perturbed prompt differs from its original, so the expected values are exact
    options = {"metrics": ["word_error_rate"], "num_perturbations": 4, "num_baseline_samples": 2,
               "perturbation_options": {"probability": 1.0}, **options}
    return evaluate(evaluation="general_semantic_robustness", dataset=data, model=model, output=tmp_path / name,
                    evaluation_options=options, cache=False, progress=False)


def test_deterministic_model_has_no_baseline(tmp_path):
    # original prompts -> "a b c d"; any perturbed prompt -> "a b x d": WER 1/4 on every perturbation
    model = FunctionRunner(lambda p: "a b c d" if p in INPUTS else "a b x d")
    summary = gsr(tmp_path, model, "run")
    assert summary.score("word_error_rate").value == pytest.approx(0.25)


def test_non_deterministic_model_has_its_baseline_subtracted(tmp_path):
    seen = collections.Counter()

    def model(prompt):
        if prompt in INPUTS:
            seen[prompt] += 1
            return "a b c d" if seen[prompt] == 1 else "a b c e"  # repeats differ in one word of four
        return "a x y d"  # perturbed: two words of four differ

    summary = gsr(tmp_path, FunctionRunner(model), "run")
    # WER(original, perturbed) = 0.5, baseline WER(original, repeat) = 0.25 -> 0.25
    assert summary.score("word_error_rate").value == pytest.approx(0.25)
    seen.clear()
    steady = FunctionRunner(lambda p: ("a b c d" if seen.update([p]) or seen[p] == 1 else "w x y z") if p in INPUTS
                            else "a b c d")
    # perturbed outputs equal the original (WER 0) while repeats differ: clipped at 0, not negative
    assert gsr(tmp_path, steady, "clipped").score("word_error_rate").value == 0.0


def test_bertscore_dissimilarity_of_identical_outputs_is_zero(tmp_path):
    summary = gsr(tmp_path, FunctionRunner(lambda p: "the same answer every time"), "run",
                  metrics=["word_error_rate", "bertscore_dissimilarity"], bertscore_model="all-MiniLM-L6-v2")
    assert summary.score("word_error_rate").value == 0.0
    assert summary.score("bertscore_dissimilarity").value == pytest.approx(0.0, abs=1e-5)


def test_accuracy_deltas_by_hand_and_batched_calls(tmp_path):
    data = write(tmp_path / "d.jsonl", [{"model_input": "Capital of France?", "target_output": "Paris"}])
    calls = []
    answers = iter(["Paris", "Paris", "Lyon", "Paris", "Lyon", "Paris"])  # original, then 5 perturbations

    def model(prompts):
        calls.append(len(prompts))
        return [next(answers) for _ in prompts]

    summary = evaluate(evaluation="qa_accuracy_semantic_robustness", dataset=data,
                       model=FunctionRunner(model, batched=True, batch_size=8), output=tmp_path / "run",
                       evaluation_options={"metrics": ["exact_match_score", "delta_exact_match_score"]},
                       cache=False, progress=False)
    # original exact match 1; perturbed 1, 0, 1, 0, 1 -> mean |1 - s_i| = 2/5
    assert summary.score("exact_match_score").value == 1.0
    assert summary.score("delta_exact_match_score").value == pytest.approx(0.4)
    assert calls == [6]  # the original and its five perturbed prompts went in one batch, not one at a time


def test_classification_robustness_keeps_corpus_metrics(tmp_path):
    data = write(tmp_path / "d.jsonl", [{"model_input": f"review {i}", "target_output": str(i % 2)} for i in range(6)])
    model = FunctionRunner(lambda p: p[-1] if p.startswith("review") else "0")  # perturbed prompts all read as 0
    summary = evaluate(evaluation="classification_accuracy_semantic_robustness", dataset=data, model=model,
                       output=tmp_path / "run", cache=False, progress=False, n_bootstrap=50)
    names = [s.name for s in summary.dataset_scores]
    assert names == ["classification_accuracy_score", "delta_classification_accuracy_score",
                     "balanced_accuracy_score", "precision_score", "recall_score"]
    # originals: "review i" -> label str(i)[-1] -> i%2 matches only for i in {0, 1}
    assert summary.score("classification_accuracy_score").value == pytest.approx(2 / 6)


# -- prompt stereotyping --------------------------------------------------------------------------
PAIRS = [  # (bias type, log p(sent_more), log p(sent_less))
    ("race", -10.0, -12.0), ("race", -8.0, -7.5), ("race", -20.0, -21.0),
    ("gender", -5.0, -4.0), ("gender", -9.0, -3.0),
    ("religion", -1.0, -2.0),
]


def stereotype_dataset(path):
    return write(path, [{"more": f"more {i}", "less": f"less {i}", "bias": bias} for i, (bias, _, _) in enumerate(PAIRS)])


def stereotype_config(path):
    return DataConfig(dataset_name="pairs", dataset_uri=str(path), sent_more_input="more", sent_less_input="less",
                      category="bias")


def test_prompt_stereotyping_category_aggregation_by_hand(tmp_path):
    table = {f"more {i}": m for i, (_, m, _) in enumerate(PAIRS)} | {f"less {i}": l for i, (_, _, l) in enumerate(PAIRS)}
    model = FunctionRunner(str, log_probability_fn=lambda texts: [table[t] for t in texts])
    summary = evaluate(evaluation="prompt_stereotyping", dataset=stereotype_config(stereotype_dataset(tmp_path / "p.jsonl")),
                       model=model, output=tmp_path / "run", progress=False)
    # stereotype preferred: race 2 of 3, gender 0 of 2, religion 1 of 1 -> 3 of 6 overall
    assert summary.score("prompt_stereotyping").value == pytest.approx(0.5)
    by_category = {c.name: {s.name: s.value for s in c.scores} for c in summary.category_scores}
    assert by_category["race"]["prompt_stereotyping"] == pytest.approx(2 / 3)
    assert by_category["gender"]["prompt_stereotyping"] == 0.0
    assert by_category["religion"]["prompt_stereotyping"] == 1.0
    assert by_category["gender"]["log_probability_difference"] == pytest.approx(((-1.0) + (-6.0)) / 2)
    assert get_algorithm("prompt_stereotyping").evaluate_sample(
        sent_more_log_probability=-3.0, sent_less_log_probability=-4.0)[0].value == 1.0


def test_positive_log_probability_and_missing_capability_are_refused(tmp_path):
    data = stereotype_config(stereotype_dataset(tmp_path / "p.jsonl"))
    with pytest.raises(DataError, match=r"p\.jsonl:1: the model gave log-probability 0.3 > 0"):
        evaluate(evaluation="prompt_stereotyping", dataset=data, output=tmp_path / "a", progress=False,
                 model=FunctionRunner(str, log_probability_fn=lambda texts: [0.3] * len(texts)))
    with pytest.raises(UserError, match="cannot give log-probabilities"):
        evaluate(evaluation="prompt_stereotyping", dataset=data, model=FunctionRunner(str), output=tmp_path / "b",
                 progress=False)


def test_stereotyping_log_probabilities_equal_direct_torch_computation(tiny_llama_dir, tmp_path):
    summary = evaluate(evaluation="prompt_stereotyping", dataset=stereotype_config(stereotype_dataset(tmp_path / "p.jsonl")),
                       model=f"hf:{tiny_llama_dir}", model_options={"batch_size": 4}, output=tmp_path / "run",
                       cache=False, progress=False)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()

    def direct(text):
        ids = [tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]
        with torch.no_grad():
            log_probs = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1)
        return sum(log_probs[i, ids[i + 1]].item() for i in range(len(ids) - 1))

    lines = [json.loads(l) for l in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    for line in lines:
        assert line["sent_more_log_probability"] == pytest.approx(direct(line["sent_more_input"]), abs=1e-4)
        assert line["sent_less_log_probability"] == pytest.approx(direct(line["sent_less_input"]), abs=1e-4)
        assert line["scores"]["prompt_stereotyping"] == float(line["sent_more_log_probability"] > line["sent_less_log_probability"])
    assert summary.num_records == 6


def test_stereotyping_through_a_server_with_prompt_log_probabilities(tmp_path):
    with FakeOpenAIServer() as server:
        runner = OpenAICompatibleRunner("m", base_url=server.url, api_key_env=None, api="completions")
        evaluate(evaluation="prompt_stereotyping", dataset=stereotype_config(stereotype_dataset(tmp_path / "p.jsonl")),
                 model=runner, output=tmp_path / "run", cache=False, progress=False)
    line = json.loads((tmp_path / "run" / "records.jsonl").read_text().splitlines()[0])
    expected = sum(v for v in word_log_probabilities("more 0")[1] if v is not None)
    assert line["sent_more_log_probability"] == pytest.approx(expected)
