"""The OpenAI-compatible runner against a real HTTP server on loopback, with injected faults."""
import json
import multiprocessing
import time

import pytest

from fmeval import evaluate
from fmeval.engine import Engine, EngineOptions
from fmeval.engine.cache import ResponseCache
from fmeval.model_runners import load_runner
from fmeval.model_runners.openai_compatible import OpenAICompatibleRunner, public_url
from fmeval.testing import FAULTS, FakeOpenAIServer, word_log_probabilities

FAST_RETRIES = EngineOptions(max_retries=3, retry_base_delay_s=0.01)


def runner_for(server, **options):
    options.setdefault("api_key_env", None)
    options.setdefault("timeout_s", 2.0)
    return OpenAICompatibleRunner("fake-model", base_url=server.url, **options)


def test_chat_and_completions_round_trip():
    with FakeOpenAIServer() as server:
        chat = runner_for(server, system_prompt="Be brief.")
        assert [o.output for o in chat.predict(["hello", "world"])] == ["echo: hello", "echo: world"]
        completions = runner_for(server, api="completions", output_log_probability=True)
        (result,) = completions.predict(["one two"])
        assert result.output == "echo: one two" and result.log_probability == pytest.approx(-0.25 * 3)
    assert server.by_path == {"/v1/chat/completions": 2, "/v1/completions": 1}


def test_prompt_log_probability_through_completions_echo():
    text = "The cat sat on the mat"
    _, values, _ = word_log_probabilities(text)
    expected = sum(v for v in values if v is not None)  # the generated token after the echo is left out
    with FakeOpenAIServer() as server:
        (result,) = runner_for(server).log_probability([text])
    assert result.log_probability == pytest.approx(expected) and result.num_tokens == len(text.split()) - 1


@pytest.mark.parametrize("fault", [f for f in FAULTS if f not in ("400", "429_retry_after")])
def test_each_fault_is_retried_and_recovered(fault):
    with FakeOpenAIServer(script=[fault, "ok"], timeout_delay_s=1.5) as server:
        with Engine(runner_for(server, timeout_s=0.5), options=FAST_RETRIES) as engine:
            (output,) = engine.generate(["hi"])
    assert output.output == "echo: hi" and output.error is None
    assert server.requests == 2 and engine.report()["retries"] == 1


def test_retry_after_is_honoured():
    with FakeOpenAIServer(script=["429_retry_after", "ok"]) as server:
        with Engine(runner_for(server), options=FAST_RETRIES) as engine:
            started = time.perf_counter()
            (output,) = engine.generate(["hi"])
    assert output.output == "echo: hi" and time.perf_counter() - started >= 1.0
    assert engine.report()["throttled"] == 1


def test_bad_request_is_not_retried_and_exhausted_retries_become_errors():
    with FakeOpenAIServer(script=["400", "500", "500", "500", "500"]) as server:
        with Engine(runner_for(server, max_concurrency=1), options=FAST_RETRIES) as engine:  # scripted order
            bad_request, server_error = engine.generate(["a", "b"])
    assert "HTTP 400" in bad_request.error and bad_request.output is None
    assert "HTTP 500" in server_error.error
    assert server.requests == 1 + 4  # the 400 once; the 500 four times (1 + 3 retries)


def test_concurrency_limit_is_respected_and_used():
    with FakeOpenAIServer(latency_s=0.2) as server:
        with Engine(runner_for(server, max_concurrency=8)) as engine:
            started = time.perf_counter()
            outputs = engine.generate([f"p{i}" for i in range(32)])
            elapsed = time.perf_counter() - started
    assert [o.output for o in outputs] == [f"echo: p{i}" for i in range(32)]
    assert 4 < server.peak_in_flight <= 8  # never above the limit; well above 1 (load can stagger arrivals)
    assert elapsed < 32 * 0.2 / 8 * 1.6  # 4 waves of 0.2 s, not 32 sequential requests


def test_throttling_cuts_concurrency():
    with FakeOpenAIServer(script=["429"] * 8, latency_s=0.05) as server:
        with Engine(runner_for(server, max_concurrency=8), options=FAST_RETRIES) as engine:
            outputs = engine.generate([f"p{i}" for i in range(16)])
    assert all(o.error is None for o in outputs)
    assert engine.report()["lowest_concurrency"] < 8


def test_identity_has_no_credentials_or_connection_settings():
    runner = OpenAICompatibleRunner("m", base_url="https://user:pw@host.example/v1?api-key=abc&api-version=2",
                                    timeout_s=5, max_concurrency=3, system_prompt="s", temperature=0.3)
    identity = json.dumps(runner.identity())
    assert "pw" not in identity and "abc" not in identity and "api-version=2" in identity
    assert "timeout" not in identity and "concurrency" not in identity
    assert public_url("http://127.0.0.1:8080/v1/") == "http://127.0.0.1:8080/v1"


def test_load_runner_spec_and_bad_option():
    runner = load_runner("openai:gpt-test", base_url="http://127.0.0.1:1/v1", api="completions")
    assert isinstance(runner, OpenAICompatibleRunner) and runner.api == "completions"
    from fmeval.errors import UserError

    with pytest.raises(UserError, match=r"does not take dtype \(--dtype\)"):
        load_runner("openai:gpt-test", dtype="float16")
    with pytest.raises(UserError, match="api must be"):
        load_runner("openai:gpt-test", api="responses")


# -- the response cache ---------------------------------------------------------------------------
def write_dataset(path, n):
    path.write_text("".join(json.dumps({"model_input": f"question {i}", "target_output": f"{i}"}) + "\n" for i in range(n)))
    return path


def test_second_identical_run_sends_no_requests(tmp_path):
    data = write_dataset(tmp_path / "d.jsonl", 20)
    with FakeOpenAIServer() as server:
        def run(name, **runner_options):
            return evaluate(evaluation="factual_knowledge", dataset=data, model=runner_for(server, **runner_options),
                            output=tmp_path / name, cache_dir=tmp_path / "cache", progress=False)

        first = run("first")
        sent = server.requests
        second = run("second", timeout_s=9.0, max_concurrency=2)  # neither is part of the cache key
        assert server.requests == sent == 20
        assert second.engine["cache_hits"] == 20 and second.engine["requests"] == 0
        assert second.dataset_scores == first.dataset_scores
        run("third", temperature=0.7)  # a generation parameter is part of the key
        assert server.requests == 40


def test_errors_are_not_cached(tmp_path):
    data = write_dataset(tmp_path / "d.jsonl", 3)
    with FakeOpenAIServer(script=["ok", "500", "ok"]) as server:
        options = {"max_retries": 0}
        first = evaluate(evaluation="factual_knowledge", dataset=data, model=runner_for(server), engine_options=options,
                         output=tmp_path / "a", cache_dir=tmp_path / "cache", progress=False)
        assert first.num_errors == 1
        second = evaluate(evaluation="factual_knowledge", dataset=data, model=runner_for(server), engine_options=options,
                          output=tmp_path / "b", cache_dir=tmp_path / "cache", progress=False)
    assert second.num_errors == 0 and server.requests == 4  # only the failed record was asked again


def _write_entries(path, worker, count):
    cache = ResponseCache(path)
    for i in range(count):
        cache.put_many([(f"{worker}-{i}", {"output": str(i), "log_probability": None})])
    cache.close()


def test_cache_is_safe_with_several_processes_writing(tmp_path):
    path = tmp_path / "shared.sqlite"
    ResponseCache(path).close()
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_entries, args=(path, w, 200)) for w in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    cache = ResponseCache(path)
    keys = [f"{w}-{i}" for w in range(4) for i in range(200)]
    assert len(cache.get_many(keys)) == 800
    assert cache.hits == 800 and cache.misses == 0


def test_request_payloads_carry_exactly_the_configured_fields():
    with FakeOpenAIServer() as server:
        runner_for(server, system_prompt="Be brief.", max_new_tokens=7, temperature=0.0, top_p=0.9, seed=5,
                   output_log_probability=True).predict(["one"])
        runner_for(server, max_new_tokens=3, temperature=0.8, top_p=0.5, seed=5).predict(["two"])
        runner_for(server, api="completions", system_prompt="Be brief.", max_new_tokens=4).predict(["three"])
        runner_for(server).log_probability(["four five"])
        runner_for(server, extra_body={"repetition_penalty": 1.1}, stop=["\n"]).predict(["six"])
    (p1, greedy), (p2, sampled), (p3, completion), (p4, echo), (p5, extra) = server.bodies
    assert p1 == p2 == p5 == "/v1/chat/completions" and p3 == p4 == "/v1/completions"
    assert greedy == {"model": "fake-model", "max_tokens": 7, "temperature": 0.0, "top_p": 0.9, "logprobs": True,
                      "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "one"}]}
    # the seed goes out only when sampling, where it matters
    assert sampled == {"model": "fake-model", "max_tokens": 3, "temperature": 0.8, "top_p": 0.5, "seed": 5,
                       "messages": [{"role": "user", "content": "two"}]}
    assert completion == {"model": "fake-model", "max_tokens": 4, "temperature": 0.0, "top_p": 1.0,
                          "prompt": "Be brief.\n\nthree"}
    assert echo == {"model": "fake-model", "prompt": "four five", "max_tokens": 1, "temperature": 0.0, "echo": True,
                    "logprobs": 1}
    assert extra["repetition_penalty"] == 1.1 and extra["stop"] == ["\n"]
