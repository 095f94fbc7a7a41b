"""`fmeval capture serve`: a reverse proxy that captures the traffic of any JSON endpoint.

Every request is forwarded to the upstream with its method, path, query and headers (minus the
hop-by-hop ones), and the answer comes back unchanged. Streamed answers (server-sent events,
chunked bodies) are passed through chunk by chunk as they arrive, and captured whole once they
end. The event is written (see `data_capture.CaptureWriter`) before the client's response is
finished, so an answered request is never lost. The latency recorded is the upstream's, from
the request arriving to the last byte.

Custom attributes come from the request header `X-Amzn-SageMaker-Custom-Attributes` (as with
SageMaker), or from `--attribute-header` names; Authorization, Cookie and `--redact-header`
names are never written, and a key seen in an Authorization header is masked wherever it would
appear.
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Sequence

from fmeval.errors import UserError
from fmeval.monitoring.data_capture import CaptureWriter, encode_body
from fmeval.secrets import register_secret

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "host", "content-length"}
ALWAYS_REDACTED = ("authorization", "cookie", "x-api-key", "api-key")
ATTRIBUTES_HEADER = "x-amzn-sagemaker-custom-attributes"
# Only requests with a body are inferences; GET /v1/models, health probes and the like pass through uncaptured.
INFERENCE_METHODS = ("POST", "PUT", "PATCH")


def check_upstream(url: str) -> str:
    """The upstream's base URL (http or https, with a host), without a trailing slash."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"--upstream must be an http(s) URL with a host, e.g. http://127.0.0.1:8000; got {url!r}")
    return url.rstrip("/")


def build_proxy(upstream: str, writer: CaptureWriter, *, model: dict[str, Any] | None = None,
                attribute_headers: Sequence[str] = (), redact_headers: Sequence[str] = (),
                timeout_s: float | None = None) -> Any:
    """The aiohttp application forwarding to `upstream` (a base URL) and capturing into `writer`.
    `timeout_s` bounds each upstream exchange, to its last byte; None (the default) leaves the
    bound to the client, so a slow model is never cut off sooner than its caller would give up."""
    import aiohttp
    from aiohttp import web

    upstream = check_upstream(upstream)
    if timeout_s is not None and not timeout_s > 0:
        raise UserError(f"the upstream timeout must be a positive number of seconds, got {timeout_s}")
    secret_headers = {h.lower() for h in (*ALWAYS_REDACTED, *redact_headers)}
    attribute_names = [h.lower() for h in (ATTRIBUTES_HEADER, *attribute_headers) if h.lower() not in secret_headers]

    async def start(app: web.Application) -> None:
        app["session"] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s),
                                               connector=aiohttp.TCPConnector(limit=0))

    async def stop(app: web.Application) -> None:
        await app["session"].close()
        writer.close()

    async def forward(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        body = await request.read()
        for name, value in request.headers.items():
            if name.lower() in secret_headers:
                register_secret(value.split(" ", 1)[-1])  # "Bearer KEY": the key itself is masked everywhere
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        attributes = {name: request.headers[name] for name in attribute_names if name in request.headers}
        url = upstream + request.rel_url.path_qs
        try:
            return await exchange(request, body, url, headers, attributes, started)
        except asyncio.TimeoutError:  # before ClientError: aiohttp's timeouts are both
            return web.json_response({"error": f"upstream timed out after {timeout_s:g} s"}, status=504)
        except aiohttp.ClientError as exc:
            return web.json_response({"error": f"upstream unreachable: {type(exc).__name__}"}, status=502)

    async def exchange(request: web.Request, body: bytes, url: str, headers: dict[str, str],
                       attributes: dict[str, str], started: float) -> web.StreamResponse:
        upstream_response = await request.app["session"].request(request.method, url, data=body, headers=headers)
        async with upstream_response:
            response = web.StreamResponse(status=upstream_response.status, headers={
                k: v for k, v in upstream_response.headers.items() if k.lower() not in HOP_BY_HOP})
            content_type = upstream_response.headers.get("Content-Type", "")
            streamed = "text/event-stream" in content_type or upstream_response.headers.get(
                "Transfer-Encoding", "").lower() == "chunked"
            chunks = []
            if streamed:
                await response.prepare(request)
                try:
                    async for chunk in upstream_response.content.iter_any():
                        chunks.append(chunk)
                        await response.write(chunk)
                except asyncio.TimeoutError:  # mid-stream the status is sent: the stream ends, uncaptured
                    await response.write_eof()
                    return response
            else:
                chunks.append(await upstream_response.read())
            answer = b"".join(chunks)
        if request.method in INFERENCE_METHODS and writer.sampled():
            # written (and flushed) before the response is complete: an answered request is never lost
            await asyncio.to_thread(writer.write, request=encode_body(body, request.headers.get("Content-Type", "")),
                                    response=encode_body(answer, content_type),
                                    latency_ms=(time.perf_counter() - started) * 1000,
                                    model=model or {"upstream": upstream}, attributes=attributes or None)
        if streamed:
            await response.write_eof()
            return response
        return web.Response(status=response.status, headers=response.headers, body=answer)

    app = web.Application(client_max_size=64 << 20)
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def serve(upstream: str, writer: CaptureWriter, *, host: str = "127.0.0.1", port: int = 8080,
          **options: Any) -> None:
    from aiohttp import web

    app = build_proxy(upstream, writer, **options)  # bad options are refused before anything is served
    print(json.dumps({"capturing": f"http://{host}:{port}/", "upstream": upstream, "to": str(writer.root)}),
          flush=True)
    web.run_app(app, host=host, port=port, print=None, access_log=None)
