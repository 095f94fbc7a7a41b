"""`fmeval serve`: any model runner behind an OpenAI-compatible HTTP API.

POST /v1/chat/completions (the last user message is the prompt; the runner applies its own chat
template) and /v1/completions, GET /v1/models and /health. Requests that arrive together are
answered by one batched `predict` call: the first waits up to `batch_window_ms` for others, up to
the runner's batch size, so concurrent clients share the model's batches. `"stream": true` is
answered as server-sent events, in one chunk once the answer is whole (the runners answer whole).
A model error is a 500 with the error's text; a malformed request is a 400 saying what is wrong.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from fmeval.model_runners.base import ModelOutput


class Batcher:
    """Gathers prompts that arrive within `window_s` of each other into one `predict` call."""

    def __init__(self, runner: Any, *, max_batch: int, window_s: float):
        self.runner, self.max_batch, self.window_s = runner, max_batch, window_s
        self.queue: asyncio.Queue[tuple[str, asyncio.Future[ModelOutput]]] = asyncio.Queue()
        self.batches = self.prompts = 0  # sent so far (/health shows them)

    async def answer(self, prompt: str) -> ModelOutput:
        future: asyncio.Future[ModelOutput] = asyncio.get_running_loop().create_future()
        await self.queue.put((prompt, future))
        return await future

    async def run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            deadline = time.monotonic() + self.window_s
            while len(batch) < self.max_batch and (left := deadline - time.monotonic()) > 0:
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), left))
                except asyncio.TimeoutError:
                    break
            self.batches, self.prompts = self.batches + 1, self.prompts + len(batch)
            try:  # the model runs in a thread: the server keeps accepting requests meanwhile
                answers = await asyncio.to_thread(self.runner.predict, [prompt for prompt, _ in batch])
            except Exception as exc:  # noqa: BLE001  (a broken batch fails its requests, not the server)
                answers = [ModelOutput(None, error=f"{type(exc).__name__}: {exc}")] * len(batch)
            for (_, future), answer in zip(batch, answers):
                if not future.done():
                    future.set_result(answer)


def _prompt(body: dict[str, Any], chat: bool) -> str:
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ValueError("`messages` must be a non-empty list")
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        content = (users or messages)[-1].get("content") if isinstance((users or messages)[-1], dict) else None
        if isinstance(content, list):  # content parts
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        if not isinstance(content, str):
            raise ValueError("the last user message needs a text `content`")
        return content
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise ValueError("`prompt` must be a string")
    return prompt


def build_app(runner: Any, *, model_name: str, batch_window_ms: float = 10.0) -> Any:
    """The aiohttp application serving `runner` as `model_name`."""
    from aiohttp import web

    batcher = Batcher(runner, max_batch=max(1, runner.capabilities.batch_size),
                      window_s=batch_window_ms / 1000)

    tasks: list[asyncio.Task[None]] = []

    async def start(app: web.Application) -> None:
        tasks.append(asyncio.get_running_loop().create_task(batcher.run()))

    async def stop(app: web.Application) -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def complete(request: web.Request, chat: bool) -> web.StreamResponse:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            prompt = _prompt(body, chat)
        except (ValueError, json.JSONDecodeError) as exc:
            return web.json_response({"error": {"message": str(exc), "type": "invalid_request_error"}}, status=400)
        answer = await batcher.answer(prompt)
        if answer.error is not None:
            return web.json_response({"error": {"message": answer.error, "type": "model_error"}}, status=500)
        identity = {"id": f"fmeval-{uuid.uuid4().hex[:12]}", "created": int(time.time()), "model": model_name}
        # "length" when the answer was cut at the runner's max_new_tokens, as OpenAI's API says
        choice: dict[str, Any] = {"index": 0, "finish_reason": answer.finish_reason or "stop"}
        if body.get("stream"):
            delta = {"role": "assistant", "content": answer.output} if chat else None
            chunk = {**identity, "object": "chat.completion.chunk" if chat else "text_completion",
                     "choices": [{**choice, **({"delta": delta} if chat else {"text": answer.output})}]}
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
            await response.prepare(request)
            await response.write(f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode())
            await response.write_eof()
            return response
        if chat:
            choice["message"] = {"role": "assistant", "content": answer.output}
        else:
            choice["text"] = answer.output
        return web.json_response({**identity, "object": "chat.completion" if chat else "text_completion",
                                  "choices": [choice]})

    async def chat(request: web.Request) -> web.StreamResponse:
        return await complete(request, chat=True)

    async def completions(request: web.Request) -> web.StreamResponse:
        return await complete(request, chat=False)

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "fmeval"}]})

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "batches": batcher.batches, "prompts": batcher.prompts})

    app = web.Application()
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    return app


def serve(runner: Any, *, model_name: str, host: str = "127.0.0.1", port: int = 8000,
          batch_window_ms: float = 10.0) -> None:
    """Serve until interrupted."""
    from aiohttp import web

    runner.load()  # before the port opens: a client never waits on the first load
    print(f"serving {model_name} on http://{host}:{port}/v1 (OpenAI-compatible)", flush=True)
    web.run_app(build_app(runner, model_name=model_name, batch_window_ms=batch_window_ms), host=host, port=port,
                print=None)
