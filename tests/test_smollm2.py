"""The bundled default model, SmolLM2-135M-Instruct (GGUF), end to end. Slow: the first load
dequantises the GGUF file (about 30 s) and caches the converted model."""
import json
import time

import pytest

from fmeval import evaluate
from fmeval.model_runners import load_runner
from fmeval.model_runners.default import smollm2_gguf_path
from fmeval.paths import cache_dir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2():
    runner = load_runner("smollm2", max_new_tokens=16)
    runner.predict(["warm up"])  # converts once, or reuses the cached conversion
    return runner


def test_gguf_conversion_is_cached_and_reused(smollm2):
    converted = [p for p in cache_dir("models").glob("gguf-*") if (p / "config.json").exists()]
    assert converted, "the converted model should be in the user cache"
    started = time.perf_counter()
    fresh = load_runner("smollm2", max_new_tokens=4)
    fresh.predict(["Hi"])
    assert time.perf_counter() - started < 15  # dequantising again takes about 30 s
    assert smollm2_gguf_path().name == "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_chat_model_answers_and_batching_keeps_order(smollm2):
    prompts = ["What is the capital of France?", "What is 2 + 3? Answer with a number.", "What is the capital of Japan?"]
    batched = [o.output for o in smollm2.predict(prompts)]
    single = [smollm2.predict([p])[0].output for p in prompts]
    assert "Paris" in batched[0] and "5" in batched[1] and "Tokyo" in batched[2]
    assert batched == single


def test_log_probability_prefers_fluent_text(smollm2):
    fluent, scrambled = smollm2.log_probability(["The cat sat on the mat.", "Mat the on sat cat the."])
    assert scrambled.log_probability < fluent.log_probability < 0
    assert fluent.num_tokens == scrambled.num_tokens > 5


def test_factual_knowledge_on_demo_data(smollm2, tmp_path):
    summary = evaluate(evaluation="factual_knowledge", dataset="demo_factual", model=smollm2, num_records=12,
                       output=tmp_path / "run", progress=False)
    lines = [json.loads(l) for l in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    france = next(line for line in lines if line["model_input"] == "The capital of France is")
    assert "Paris" in france["model_output"] and france["scores"]["factual_knowledge"] == 1.0
    assert summary.num_errors == 0 and summary.score("factual_knowledge").value >= 0.5
    assert summary.model["chat_template"] is True
