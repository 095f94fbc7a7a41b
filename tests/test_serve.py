"""`fmeval serve`: a runner behind an OpenAI-compatible API, over real HTTP on loopback, answered
by fmeval's own OpenAI client; concurrent requests share batches."""
import json
import time

import httpx
import pytest

from fmeval.model_runners.function import FunctionRunner
from fmeval.model_runners.openai_compatible import OpenAICompatibleRunner
from fmeval.model_runners.server import build_app
from fmeval.monitoring.windows import streamed_text
from tests.support import serve_in_thread

CALLS: list[list[str]] = []


def shout(prompts):
    CALLS.append(list(prompts))
    time.sleep(0.05)  # a model's batch takes time: requests arriving meanwhile form the next batch
    if any("explode" in p for p in prompts):
        raise RuntimeError("the model broke")
    return [p.upper() + "!" for p in prompts]


@pytest.fixture
def served():
    CALLS.clear()
    url, stop = serve_in_thread(build_app(FunctionRunner(shout, batched=True, batch_size=8), model_name="shout",
                                          batch_window_ms=20))
    yield f"{url}/v1"
    stop()


def test_concurrent_requests_are_answered_in_shared_batches(served):
    client = OpenAICompatibleRunner("shout", base_url=served, api_key_env=None, max_concurrency=16)
    prompts = [f"question {i}" for i in range(32)]
    answers = client.predict(prompts)  # sixteen requests in flight at once
    assert [a.output for a in answers] == [p.upper() + "!" for p in prompts]
    assert sorted(p for batch in CALLS for p in batch) == sorted(prompts)  # each prompt once
    assert max(len(batch) for batch in CALLS) > 1 and all(len(batch) <= 8 for batch in CALLS)
    completion = OpenAICompatibleRunner("shout", base_url=served, api="completions", api_key_env=None)
    assert completion.predict(["abc"])[0].output == "ABC!"


def test_streaming_bad_requests_and_model_errors(served):
    chat = {"model": "shout", "messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "hi"}]}
    streamed = httpx.post(f"{served}/chat/completions", json={**chat, "stream": True})
    assert streamed.headers["content-type"].startswith("text/event-stream") and streamed_text(streamed.text) == "HI!"
    bad = httpx.post(f"{served}/chat/completions", json={"messages": []})
    assert bad.status_code == 400 and "messages" in bad.json()["error"]["message"]
    assert httpx.post(f"{served}/completions", content=b"{not json").status_code == 400
    broken = httpx.post(f"{served}/completions", json={"prompt": "explode"})
    assert broken.status_code == 500 and "the model broke" in broken.json()["error"]["message"]
    models = httpx.get(f"{served}/models").json()
    assert [m["id"] for m in models["data"]] == ["shout"]
    assert json.loads(httpx.post(f"{served}/chat/completions", json=chat).text)["choices"][0]["message"]["content"] == "HI!"


def test_an_answer_cut_at_max_new_tokens_finishes_with_length(tiny_llama_dir):
    """A real forward pass of a tiny Llama: with 3 new tokens its answer is cut (it goes on with
    more room), and the API says "length", as OpenAI's does; a function's answer ends with "stop"."""
    from fmeval.model_runners import load_runner

    prompt = {"model": "tiny", "prompt": "the cat sat on"}
    longer = load_runner(str(tiny_llama_dir), max_new_tokens=12).predict([prompt["prompt"]])[0]
    url, stop = serve_in_thread(build_app(load_runner(str(tiny_llama_dir), max_new_tokens=3), model_name="tiny"))
    try:
        (choice,) = httpx.post(f"{url}/v1/completions", json=prompt).json()["choices"]
        assert choice["finish_reason"] == "length" and longer.finish_reason == "length"
        assert len(longer.output) > len(choice["text"]) and longer.output.startswith(choice["text"])
        streamed = httpx.post(f"{url}/v1/completions", json={**prompt, "stream": True}).text
        assert json.loads(streamed.split("data: ")[1])["choices"][0]["finish_reason"] == "length"
    finally:
        stop()
    url, stop = serve_in_thread(build_app(FunctionRunner(lambda p: "done"), model_name="fn"))
    try:
        assert httpx.post(f"{url}/v1/completions", json=prompt).json()["choices"][0]["finish_reason"] == "stop"
    finally:
        stop()
