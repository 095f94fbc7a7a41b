"""A real OpenAI-compatible HTTP server on loopback, for tests and benchmarks of hosted runners.

It speaks the chat and completions protocol, answers by echoing (or with any function, e.g.
a tiny local model), adds latency, injects faults, and counts the requests it receives.

    with FakeOpenAIServer(latency_s=0.2, fault_rate=0.2) as server:
        runner = OpenAICompatibleRunner("fake", base_url=server.url, api_key_env=None)
"""
from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
from collections import Counter
from typing import Awaitable, Callable, Sequence

FAULTS = (
    "429",  # Too Many Requests, no Retry-After
    "429_retry_after",  # Too Many Requests with Retry-After: 1
    "500",
    "503",
    "timeout",  # answers only after `timeout_delay_s`
    "drop",  # closes the connection without answering
    "malformed_json",
    "missing_fields",
    "400",  # Bad Request: not worth retrying
)
TRANSIENT_FAULTS = tuple(fault for fault in FAULTS if fault != "400")
REASONS = {200: "OK", 400: "Bad Request", 429: "Too Many Requests", 500: "Internal Server Error",
           503: "Service Unavailable"}


def echo(prompt: str) -> str:
    return f"echo: {prompt}"


def word_log_probabilities(text: str) -> tuple[list[str], list[float | None], list[int]]:
    """Deterministic 'log-probabilities' of the echoed prompt: tokens are space-separated words,
    each scoring -0.5 per character; the first has none, as with real servers."""
    tokens, offsets, position = [], [], 0
    for index, word in enumerate(text.split(" ")):
        token = word if index == 0 else f" {word}"
        tokens.append(token)
        offsets.append(position)
        position += len(token)
    values: list[float | None] = [None] + [-0.5 * len(token.strip()) for token in tokens[1:]]
    return tokens, values, offsets


class FakeOpenAIServer:
    """HTTP/1.1 server on 127.0.0.1. Faults come from `script` (one name per request,
    "ok" for none, used in order) and then at `fault_rate` from `faults`, seeded."""

    def __init__(
        self,
        *,
        latency_s: float = 0.0,
        fault_rate: float = 0.0,
        faults: Sequence[str] = TRANSIENT_FAULTS,
        script: Sequence[str] = (),
        responder: Callable[[str], str] = echo,
        timeout_delay_s: float = 3.0,
        echo_authorization_in_errors: bool = False,
        seed: int = 0,
    ):
        unknown = [name for name in (*faults, *script) if name not in (*FAULTS, "ok")]
        if unknown:
            raise ValueError(f"unknown faults {unknown}; known: {FAULTS}")
        self.latency_s = latency_s
        self.fault_rate = fault_rate
        self.faults = tuple(faults)
        self.script = list(script)
        self.responder = responder
        self.timeout_delay_s = timeout_delay_s
        self.echo_authorization_in_errors = echo_authorization_in_errors
        self.requests = 0
        self.in_flight = self.peak_in_flight = 0
        self.by_path: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self.authorization_headers: list[str | None] = []
        self.bodies: list[tuple[str, dict]] = []
        """(path, JSON body) of every request received, in order."""
        self.answered = 0
        """Requests answered with a complete, successful response."""
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._server: asyncio.Server | None = None
        self._port: int | None = None

    @property
    def url(self) -> str:
        assert self._port is not None, "start the server first"
        return f"http://127.0.0.1:{self._port}/v1"

    def __enter__(self) -> FakeOpenAIServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Serve on an asyncio loop in a daemon thread: unlike a thread per connection, 64
        requests that wake from their latency at once do not queue for the GIL one by one."""
        self._loop = asyncio.new_event_loop()
        started = threading.Event()

        async def listen() -> None:
            # A deep backlog: a client opening many connections at once must not be reset.
            self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0, backlog=1024)
            self._port = self._server.sockets[0].getsockname()[1]
            started.set()

        self._thread = threading.Thread(target=self._serve, args=(listen,), daemon=True)
        self._thread.start()
        started.wait()

    def _serve(self, listen: Callable[[], Awaitable[None]]) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(listen())
        self._loop.run_forever()

    def stop(self) -> None:
        if self._server is None:
            return

        async def shut_down() -> None:
            self._server.close()
            for task in asyncio.all_tasks() - {asyncio.current_task()}:
                task.cancel()

        asyncio.run_coroutine_threadsafe(shut_down(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._server = None

    def _next_fault(self) -> str:
        with self._lock:
            self.requests += 1
            if self.script:
                return self.script.pop(0)
            if self.fault_rate and self._rng.random() < self.fault_rate:
                return self._rng.choice(self.faults)
            return "ok"

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """HTTP/1.1 with keep-alive, one request after another on a connection."""
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while request_line := await reader.readline():
                path = request_line.decode("latin-1").split(" ")[1]
                headers = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                raw = await reader.readexactly(length) if length else b""
                with self._lock:
                    self.in_flight += 1
                    self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
                try:
                    keep_open = await self._respond(writer, path, headers, raw)
                finally:
                    with self._lock:
                        self.in_flight -= 1
                if not keep_open:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _respond(self, writer: asyncio.StreamWriter, path: str, headers: dict[str, str], raw: bytes) -> bool:
        """Answer one request; whether the connection stays open."""
        body = json.loads(raw or b"{}")
        authorization = headers.get("authorization")
        fault = self._next_fault()
        with self._lock:
            self.by_path[path] += 1
            self.bodies.append((path, body))
            self.authorization_headers.append(authorization)
            if fault != "ok":
                self.injected[fault] += 1
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if fault == "drop":
            writer.transport.abort()
            return False
        if fault == "timeout":
            await asyncio.sleep(self.timeout_delay_s)
        if fault in ("429", "429_retry_after", "500", "503", "400"):
            status = int(fault[:3])
            detail = {"error": {"message": f"injected {fault}", "type": "injected"}}
            if self.echo_authorization_in_errors:
                detail["error"]["authorization"] = authorization
            extra = {"Retry-After": "1"} if fault == "429_retry_after" else {}
            return await self._send(writer, status, json.dumps(detail).encode(), extra)
        if fault == "malformed_json":
            echoed = f" {authorization}" if self.echo_authorization_in_errors else ""
            return await self._send(writer, 200, f'{{"choices": [{{"message": {echoed}'.encode())
        if fault == "missing_fields":
            return await self._send(writer, 200, json.dumps({"id": "x", "object": "chat.completion", "choices": []}).encode())
        answer = self._answer(path, body) if self.responder is echo else await asyncio.to_thread(self._answer, path, body)
        if await self._send(writer, 200, json.dumps(answer).encode()):
            with self._lock:
                self.answered += 1
            return True
        return False

    def _answer(self, path: str, body: dict) -> dict:
        if path.endswith("/chat/completions"):
            prompt = body["messages"][-1]["content"]
            text = self.responder(prompt)
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            if body.get("logprobs"):
                choice["logprobs"] = {"content": [{"token": t, "logprob": -0.25} for t in text.split(" ")]}
            return {"id": "chatcmpl-fake", "object": "chat.completion", "model": body.get("model"), "choices": [choice]}
        prompt = body.get("prompt", "")
        if body.get("echo"):
            tokens, values, offsets = word_log_probabilities(prompt)
            tokens, values, offsets = tokens + [" x"], values + [-1.0], offsets + [len(prompt)]
            text = prompt + " x"
        else:
            text = self.responder(prompt)
            tokens = text.split(" ")
            values, offsets = [-0.25] * len(tokens), []
        choice = {"index": 0, "text": text, "finish_reason": "length"}
        if body.get("logprobs") is not None:
            choice["logprobs"] = {"tokens": tokens, "token_logprobs": values, "text_offset": offsets}
        return {"id": "cmpl-fake", "object": "text_completion", "model": body.get("model"), "choices": [choice]}

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, status: int, payload: bytes, headers: dict | None = None) -> bool:
        """Whether the response went out whole."""
        lines = [f"HTTP/1.1 {status} {REASONS[status]}", "Content-Type: application/json",
                 f"Content-Length: {len(payload)}", *(f"{name}: {value}" for name, value in (headers or {}).items())]
        try:
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)
            await writer.drain()
            return True
        except ConnectionError:
            return False  # the client gave up (e.g. after its timeout, or it was killed)
