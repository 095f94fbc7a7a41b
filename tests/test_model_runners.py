"""Runners against direct computations on a tiny local model; the engine's batching and error handling."""
import time

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from fmeval.engine import Engine, EngineOptions
from fmeval.batching import length_sorted_batches
from fmeval.errors import UserError
from fmeval.model_runners import ModelOutput, load_runner
from fmeval.model_runners.function import FunctionRunner
from fmeval.model_runners.huggingface import HuggingFaceRunner

PROMPTS = [
    "The capital of France is",
    "A cat",
    "Question: who wrote Hamlet? Answer:",
    "Water boils at",
    "The capital of Japan is Tokyo and the capital of France is",
]


def direct_generate(directory, prompt, max_new_tokens):
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForCausalLM.from_pretrained(directory).eval()
    ids = tokenizer(prompt, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


def test_batched_generation_equals_one_by_one_and_keeps_order(tiny_llama_dir):
    runner = HuggingFaceRunner(tiny_llama_dir, max_new_tokens=6, batch_size=2)
    outputs = runner.predict(PROMPTS)
    expected = [direct_generate(tiny_llama_dir, prompt, 6) for prompt in PROMPTS]
    assert [o.output for o in outputs] == expected
    assert all(o.error is None for o in outputs)
    assert len(set(expected)) > 1  # the check would be void if every prompt gave the same text


def test_log_probability_equals_direct_torch_computation(tiny_llama_dir):
    runner = HuggingFaceRunner(tiny_llama_dir, batch_size=2)
    got = runner.log_probability(PROMPTS)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    for text, result in zip(PROMPTS, got):
        ids = [tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]
        with torch.inference_mode():
            logits = model(torch.tensor([ids])).logits[0]
        log_probs = torch.log_softmax(logits.double(), dim=-1)
        expected = sum(log_probs[i, ids[i + 1]].item() for i in range(len(ids) - 1))
        assert result.log_probability == pytest.approx(expected, abs=1e-4)
        assert result.num_tokens == len(ids) - 1 and result.error is None


def test_sampling_is_seeded_and_temperature_zero_is_greedy(tiny_llama_dir):
    def outputs(**options):
        return [o.output for o in HuggingFaceRunner(tiny_llama_dir, max_new_tokens=12, **options).predict(PROMPTS)]

    same_seed = outputs(temperature=1.5, seed=3), outputs(temperature=1.5, seed=3)
    other_seed = outputs(temperature=1.5, seed=4)
    assert same_seed[0] == same_seed[1]
    assert sum(a != b for a, b in zip(same_seed[0], other_seed)) >= len(PROMPTS) // 2
    greedy = outputs()
    assert outputs(temperature=0.0, seed=99) == greedy != same_seed[0]  # the seed is ignored when greedy
    assert HuggingFaceRunner(tiny_llama_dir, seed=1).identity() == HuggingFaceRunner(tiny_llama_dir, seed=2).identity()
    assert (HuggingFaceRunner(tiny_llama_dir, temperature=1.0, seed=1).identity()
            != HuggingFaceRunner(tiny_llama_dir, temperature=1.0, seed=2).identity())


def test_identity_names_generation_parameters(tiny_llama_dir):
    identity = HuggingFaceRunner(tiny_llama_dir, max_new_tokens=7, temperature=0.5, seed=2).identity()
    assert identity["model"] == str(tiny_llama_dir)
    assert (identity["max_new_tokens"], identity["temperature"], identity["seed"]) == (7, 0.5, 2)
    assert "device" not in identity


def test_runner_options_are_validated_before_loading(tiny_llama_dir):
    for bad in ({"max_new_tokens": 0}, {"temperature": -1}, {"top_p": 0}, {"batch_size": 0}, {"dtype": "int8"}):
        with pytest.raises(UserError):
            HuggingFaceRunner(tiny_llama_dir, **bad)
    with pytest.raises(UserError, match="GGUF file not found"):
        HuggingFaceRunner("/nowhere/model.gguf")


def test_missing_model_gives_a_clear_error(tmp_path):
    runner = HuggingFaceRunner(tmp_path / "no-model-here")
    with pytest.raises(UserError, match="could not load the Hugging Face model"):
        runner.predict(["x"])


def test_load_runner_specs(tiny_llama_dir):
    assert isinstance(load_runner(f"hf:{tiny_llama_dir}"), HuggingFaceRunner)
    runner = load_runner("function:tests.support:upper_model")
    assert runner.predict(["abc"]) == [ModelOutput(output="ABC")]
    with pytest.raises(UserError, match="cannot load model function"):
        load_runner("function:tests.support:missing")
    with pytest.raises(UserError, match="function model spec"):
        load_runner("function:nocolon")
    with pytest.raises(UserError, match="unknown model type"):
        load_runner("bogus:thing")


def test_function_runner_single_batched_and_failures():
    calls = []

    def batched(prompts):
        calls.append(len(prompts))
        return [p[::-1] for p in prompts]

    runner = FunctionRunner(batched, batched=True, batch_size=3)
    assert [o.output for o in runner.predict(["ab", "cd"])] == ["ba", "dc"]
    assert runner.capabilities.batch_size == 3 and calls == [2]

    def flaky(prompt):
        if prompt == "bad":
            raise ValueError("no thanks")
        return prompt, -1.5

    assert FunctionRunner(flaky).predict(["ok"]) == [ModelOutput(output="ok", log_probability=-1.5)]
    with pytest.raises(ValueError, match="no thanks"):  # the engine retries, then records it
        FunctionRunner(flaky).predict(["bad"])
    with pytest.raises(ValueError, match="returned 1 outputs for 2 prompts"):
        FunctionRunner(lambda prompts: ["one"], batched=True).predict(["a", "b"])
    assert not FunctionRunner(str).capabilities.cacheable


def test_collator_sorts_longest_first_and_covers_every_index():
    items = ["aaa", "a", "aaaaa", "aa", "aaaa"]
    batches = length_sorted_batches(items, 2)
    assert batches == [[2, 4], [0, 3], [1]]
    with pytest.raises(ValueError):
        length_sorted_batches(items, 0)


def test_engine_batches_restores_order_and_records_failures():
    seen = []

    def model(prompts):
        seen.append(list(prompts))
        if "boom" in prompts:
            raise RuntimeError("server on fire")
        return [p.upper() for p in prompts]

    options = EngineOptions(max_retries=2, retry_base_delay_s=0.001)
    engine = Engine(FunctionRunner(model, batched=True, batch_size=2), options=options)
    outputs = engine.generate(["bb", "a", "boom", "dddd"])
    assert [len(batch) for batch in seen] == [2, 2]  # a RuntimeError is not transient: tried once
    assert outputs[0].output == "BB" and outputs[1].output == "A"
    assert outputs[2].error == "RuntimeError: server on fire" and outputs[3].error == outputs[2].error
    assert engine.report() == {"requests": 2, "retries": 0, "throttled": 0, "failed_requests": 1,
                               "cache_hits": 0, "cache_misses": 0}


def test_engine_retries_a_transient_failure_then_succeeds():
    attempts = []

    def model(prompt):
        attempts.append(prompt)
        if len(attempts) < 3:
            raise ConnectionResetError("reset by peer")
        return prompt.upper()

    engine = Engine(FunctionRunner(model), options=EngineOptions(max_retries=5, retry_base_delay_s=0.001))
    assert engine.generate(["x"])[0].output == "X"
    assert engine.report()["retries"] == 2


def test_engine_without_model_or_log_probabilities():
    with pytest.raises(UserError, match="needs model outputs"):
        Engine(None).generate(["x"])
    with pytest.raises(UserError, match="cannot give log-probabilities"):
        Engine(FunctionRunner(str.upper)).log_probability(["x"])
    engine = Engine(FunctionRunner(str.upper, log_probability_fn=lambda texts: [-float(len(t)) for t in texts]))
    assert [o.log_probability for o in engine.log_probability(["ab", "c"])] == [-2.0, -1.0]


def test_engine_sorts_by_the_runners_own_length_measure():
    class TokenCountingRunner(FunctionRunner):
        def prompt_lengths(self, prompts):
            return [len(p.split()) for p in prompts]  # words, not characters

    seen = []
    runner = TokenCountingRunner(lambda prompts: seen.append(list(prompts)) or list(prompts), batched=True, batch_size=2)
    outputs = Engine(runner).generate(["a b c", "xxxxxxxxxxxx", "d e", "yyyyyyy"])
    assert seen == [["a b c", "d e"], ["xxxxxxxxxxxx", "yyyyyyy"]]  # by characters the long words would lead
    assert [o.output for o in outputs] == ["a b c", "xxxxxxxxxxxx", "d e", "yyyyyyy"]


def test_a_batch_runners_type_error_is_recorded_at_once_not_retried():
    """A bug in a local runner (a TypeError) was retried 5 times with backoff per batch: 4 records
    took 20 retries and 19.2 s. Only transient errors are retried now."""
    calls = []

    def broken(prompt):
        calls.append(prompt)
        return prompt + 1  # TypeError: can only concatenate str

    engine = Engine(FunctionRunner(broken), options=EngineOptions(max_retries=5, retry_base_delay_s=1.0))
    started = time.perf_counter()
    outputs = engine.generate(["a", "b", "c", "d"])
    assert time.perf_counter() - started < 1.0  # no backoff was slept
    assert calls == ["a", "b", "c", "d"]
    assert all(o.error.startswith("TypeError:") and not o.retryable for o in outputs)
    assert engine.report()["retries"] == 0 and engine.report()["failed_requests"] == 4


def test_a_runners_should_retry_names_its_transient_errors():
    class Flaky(Exception):
        pass

    attempts = []

    def model(prompt):
        attempts.append(prompt)
        if len(attempts) < 3:
            raise Flaky("try again")
        return prompt.upper()

    options = EngineOptions(max_retries=5, retry_base_delay_s=0.001)
    engine = Engine(FunctionRunner(model, should_retry=lambda exc: isinstance(exc, Flaky)), options=options)
    assert engine.generate(["x"])[0].output == "X" and engine.report()["retries"] == 2
    attempts.clear()
    engine = Engine(FunctionRunner(model), options=options)  # Flaky is not transient by default
    assert engine.generate(["x"])[0].error == "Flaky: try again" and len(attempts) == 1


def test_the_engine_asks_only_for_what_a_runner_declares():
    """No probing for methods: `agenerate` is used only with `capabilities.single_requests`, and
    `max_new_tokens`, the lengths, `load` and `aclose` come from the base class when not given."""
    from fmeval.model_runners.base import Capabilities, ModelRunner

    class Both(ModelRunner):
        def __init__(self, single):
            self.capabilities = Capabilities(single_requests=single, max_concurrency=4, batch_size=3)
            self.calls = []

        def identity(self, kind="generate"):
            return {"type": "both"}

        def predict(self, prompts):
            self.calls.append(("predict", len(prompts)))
            return [ModelOutput(output=p) for p in prompts]

        async def agenerate(self, prompt):
            self.calls.append(("agenerate", 1))
            return ModelOutput(output=prompt)

    for single, expected in ((False, [("predict", 3), ("predict", 2)]), (True, [("agenerate", 1)] * 5)):
        runner = Both(single)
        with Engine(runner) as engine:
            assert [o.output for o in engine.generate(list("abcde"))] == list("abcde")
        assert sorted(runner.calls) == sorted(expected)
    assert Both(False).max_new_tokens == 0 and Both(False).text_lengths(["abc"]) == [3]
