"""A real OpenAI-compatible HTTP server on loopback, for tests and benchmarks of hosted runners.

It speaks the chat and completions protocol, answers by echoing (or with any function, e.g.
a tiny local model), adds latency, injects faults, and counts the requests it receives.

    with FakeOpenAIServer(latency_s=0.2, fault_rate=0.2) as server:
        runner = OpenAICompatibleRunner("fake", base_url=server.url, api_key_env=None)
"""
from __future__ import annotations

import http.server
import json
import random
import socket
import threading
import time
from collections import Counter
from typing import Callable, Sequence

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
    """Threaded HTTP/1.1 server on 127.0.0.1. Faults come from `script` (one name per request,
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
        self._server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start the server first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAIServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; with Nagle's algorithm the second waits
            # for the client's delayed ACK (about 40 ms on Linux) on every response.
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                server._handle(self)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.request_queue_size = 128
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _next_fault(self) -> str:
        with self._lock:
            self.requests += 1
            if self.script:
                return self.script.pop(0)
            if self.fault_rate and self._rng.random() < self.fault_rate:
                return self._rng.choice(self.faults)
            return "ok"

    def _handle(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            self._respond(handler)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _respond(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length) or b"{}")
        fault = self._next_fault()
        with self._lock:
            self.by_path[handler.path] += 1
            self.bodies.append((handler.path, body))
            self.authorization_headers.append(handler.headers.get("Authorization"))
            if fault != "ok":
                self.injected[fault] += 1
        if self.latency_s:
            time.sleep(self.latency_s)
        if fault == "drop":
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault == "timeout":
            time.sleep(self.timeout_delay_s)
        if fault in ("429", "429_retry_after", "500", "503", "400"):
            status = int(fault[:3])
            detail = {"error": {"message": f"injected {fault}", "type": "injected"}}
            if self.echo_authorization_in_errors:
                detail["error"]["authorization"] = handler.headers.get("Authorization")
            headers = {"Retry-After": "1"} if fault == "429_retry_after" else {}
            return self._send(handler, status, json.dumps(detail).encode(), headers)
        if fault == "malformed_json":
            echoed = f" {handler.headers.get('Authorization')}" if self.echo_authorization_in_errors else ""
            return self._send(handler, 200, f'{{"choices": [{{"message": {echoed}'.encode())
        if fault == "missing_fields":
            return self._send(handler, 200, json.dumps({"id": "x", "object": "chat.completion", "choices": []}).encode())
        if self._send(handler, 200, json.dumps(self._answer(handler.path, body)).encode()):
            with self._lock:
                self.answered += 1

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
    def _send(handler: http.server.BaseHTTPRequestHandler, status: int, payload: bytes, headers: dict | None = None) -> bool:
        """Whether the response went out whole."""
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(payload)
            handler.wfile.flush()
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False  # the client gave up (e.g. after its timeout, or it was killed)
