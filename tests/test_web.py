"""fmeval.web, the shared web layer: one same-origin rule, CSRF tokens, autoescaped templates,
binding rules, and proxy headers read as uvicorn reads them (over a real uvicorn on loopback)."""
import asyncio
import socket
import threading

import httpx
import pytest
from starlette.requests import Request

from fmeval.errors import UserError
from fmeval.web import (CSP, ForwardedHeaders, check_bind, cookie_options, csrf_matches, new_csrf_token, number,
                        post_refusal, render, same_origin, security_headers, signed_csrf_token, templates)


def request(headers, scheme="http", client=("127.0.0.1", 5000)):
    return Request({"type": "http", "method": "POST", "scheme": scheme, "path": "/", "query_string": b"",
                    "server": ("127.0.0.1", 8800), "client": client,
                    "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]})


@pytest.mark.parametrize("headers, expected", [
    ({"host": "127.0.0.1:8800"}, True),  # no Origin or Referer: the CSRF token decides
    ({"host": "127.0.0.1:8800", "origin": "http://127.0.0.1:8800"}, True),
    ({"host": "Dash.Example", "origin": "http://dash.example:80"}, True),  # default port, any case
    ({"host": "127.0.0.1:8800", "origin": "https://127.0.0.1:8800"}, False),  # another scheme is another origin
    ({"host": "127.0.0.1:8800", "origin": "http://evil.example"}, False),
    ({"host": "127.0.0.1:8800", "origin": "null"}, False),  # sandboxed frames, file: pages
    ({"host": "127.0.0.1:8800", "referer": "http://evil.example/page"}, False),  # Referer when there is no Origin
    ({"host": "127.0.0.1:8800", "referer": "http://127.0.0.1:8800/cards"}, True),
    ({"host": "127.0.0.1:8800", "origin": "http://127.0.0.1:8800.evil.example"}, False),
])
def test_one_same_origin_rule(headers, expected):
    assert same_origin(request(headers)) is expected


def test_csrf_tokens_and_refusals():
    token = new_csrf_token()
    assert len(token) >= 40 and token != new_csrf_token()
    assert csrf_matches(token, token) and not csrf_matches(token[:-1], token) and not csrf_matches(None, token)
    assert signed_csrf_token("secret", "ann") == signed_csrf_token("secret", "ann") != signed_csrf_token("secret", "bo")
    same = {"host": "127.0.0.1:8800", "origin": "http://127.0.0.1:8800"}
    assert post_refusal(request(same), token, token) is None
    assert "CSRF" in post_refusal(request(same), "guess", token)
    assert "another site" in post_refusal(request({**same, "origin": "http://evil.example"}), token, token)


def test_templates_escape_everything_from_data_and_round_numbers():
    environment = templates("fmeval.web")
    payload = '<script>alert(1)</script>"'
    html = environment.get_template("error.html").render(title=payload, message=payload)  # title twice: head and h1
    assert "<script>" not in html and html.count("&lt;script&gt;") == 3 and "&#34;" in html
    assert number(1 / 12) == "0.0833" and number(None) == "n/a" and number(float("nan")) == "n/a" and number(3) == "3"
    response = render(environment, "error.html", status=404, title="Gone", message="no such card")
    assert response.status_code == 404 and response.headers["content-security-policy"] == CSP
    assert "script-src" not in CSP and security_headers(scripts_from_self=True)["Content-Security-Policy"].endswith(
        "; script-src 'self'")


def test_binding_beyond_loopback_needs_tls_or_an_explicit_choice():
    for host in ("127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"):
        check_bind(host, tls=False, allow_insecure_remote=False)
    with pytest.raises(UserError, match="--tls-cert and --tls-key"):
        check_bind("0.0.0.0", tls=False, allow_insecure_remote=False)
    check_bind("0.0.0.0", tls=True, allow_insecure_remote=False)
    check_bind("10.0.0.5", tls=False, allow_insecure_remote=True)


def serve(app):
    """`app` under a real uvicorn on a loopback socket that already listens (no wait for start-up)."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", proxy_headers=False, lifespan="off"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server, thread


@pytest.mark.parametrize("trusted, proxied", [("127.0.0.1", True), ("10.0.0.0/8", False), ("*", True)])
def test_forwarded_headers_only_from_trusted_proxies(trusted, proxied):
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def echo(req):
        secure = cookie_options(req)["secure"]
        return JSONResponse({"scheme": req.url.scheme, "host": req.headers["host"], "client": req.client.host,
                             "same_origin": same_origin(req), "secure": secure})

    url, server, thread = serve(ForwardedHeaders(Starlette(routes=[Route("/", echo, methods=["POST"])]), trusted))
    try:
        # a TLS proxy that rewrote Host to the backend's address and says what the browser saw
        seen = httpx.post(url, headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "dash.example",
                                        "X-Forwarded-For": "203.0.113.7", "Origin": "https://dash.example"}).json()
    finally:
        server.should_exit = True
        thread.join(10)
    if proxied:
        assert seen == {"scheme": "https", "host": "dash.example", "client": "203.0.113.7", "same_origin": True,
                        "secure": True}
    else:  # an untrusted peer's headers change nothing: the POST names another origin
        assert seen["scheme"] == "http" and seen["host"] != "dash.example" and seen["client"] == "127.0.0.1"
        assert seen["same_origin"] is False and seen["secure"] is False
