"""fmeval's shared web layer: what the dashboard, the raters' app and the server have in common.

API (everything takes Starlette's `Request`; Starlette, Jinja2 and uvicorn are imported lazily):

- `templates(package)`: a Jinja2 environment with autoescape on for every template, loading
  `package`'s own `templates/` folder first, then this module's shared ones: `base.html` (the page
  shell: title, style sheet, blocks `head`, `nav`, `content`, `scripts`) and `error.html` (an error
  page with a way on). Filters: `number` (a float rounded to 4 decimals, "n/a" for None/NaN) and
  `url` (one path segment, quoted).
- `render(environment, template, /, *, status=200, headers=None, **context)`: an `HTMLResponse` with
  `security_headers()`.
- `CSP`: the one Content-Security-Policy (no script at all); `security_headers(scripts_from_self=...)`
  adds `script-src 'self'` for an app that serves its own script file, and nothing else.
- `same_origin(request)`: a request that names another origin (its `Origin` header, else its
  `Referer`; `null` counts as another) is refused; one that names none is left to the CSRF token.
  The request's own origin is its scheme and `Host` as `ForwardedHeaders` left them.
- `new_csrf_token()`, `signed_csrf_token(secret, subject)`, `csrf_matches(given, expected)`, and
  `post_refusal(request, given_token, expected_token)` (the reason to refuse a POST, or None).
- `cookie_options(request)`: HttpOnly, SameSite=Strict, path /, and Secure when the request came
  over HTTPS (directly, or through a trusted proxy's `X-Forwarded-Proto`).
- `check_bind(host, *, tls, allow_insecure_remote)`: serving beyond loopback without TLS is refused
  (`UserError`) unless `allow_insecure_remote` (behind a proxy that adds TLS).
- `ForwardedHeaders(app, trusted)`: proxy headers the way uvicorn reads them (its
  `--forwarded-allow-ips`: a comma-separated list of IP addresses and networks, or `*`; by default
  `$FORWARDED_ALLOW_IPS`, else 127.0.0.1). Only from a trusted peer: `X-Forwarded-Proto` sets the
  scheme and `X-Forwarded-For` the client (uvicorn's own middleware does both), and
  `X-Forwarded-Host` replaces `Host`, so that a TLS proxy that rewrites `Host` keeps same-origin
  POSTs working. Serve with uvicorn's own proxy handling off (`serve_options`).
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import os
import secrets
import urllib.parse
from typing import Any

from fmeval.errors import UserError

CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'")
DEFAULT_PORTS = {"http": 80, "https": 443}


def security_headers(*, scripts_from_self: bool = False) -> dict[str, str]:
    """The headers of every page: CSP (with `script-src 'self'` only if asked), no sniffing,
    no framing, no caching of pages that hold a session's data."""
    return {"Content-Security-Policy": CSP + ("; script-src 'self'" if scripts_from_self else ""),
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY",
            "Cache-Control": "no-store"}


# -- templates ------------------------------------------------------------------------------------------------
def number(value: Any, digits: int = 4) -> str:
    """A number as shown on a page: floats rounded to `digits` decimals, None and NaN as n/a."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return str(value) if isinstance(value, int) else f"{value:.{digits}f}"


def url_segment(text: Any) -> str:
    """One path segment: every '/', '?', '#' and '%' quoted."""
    return urllib.parse.quote(str(text), safe="")


def templates(package: str) -> Any:
    """A Jinja2 environment for `package` (e.g. "fmeval.dashboard"), autoescaping everything."""
    import jinja2
    from markupsafe import Markup

    from fmeval.html import STYLE

    environment = jinja2.Environment(
        loader=jinja2.ChoiceLoader([jinja2.PackageLoader(package, "templates"),
                                    jinja2.PackageLoader("fmeval.web", "templates")]),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    environment.filters.update(number=number, url=url_segment)
    environment.globals["base_style"] = Markup(STYLE)  # our own style sheet, not data
    return environment


def render(environment: Any, template: str, /, *, status: int = 200, headers: dict[str, str] | None = None,
           **context: Any) -> Any:
    from starlette.responses import HTMLResponse

    return HTMLResponse(environment.get_template(template).render(**context), status_code=status,
                        headers={**security_headers(), **(headers or {})})


# -- origins, CSRF and cookies -------------------------------------------------------------------------------------
def _origin(scheme: str, netloc: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(f"{scheme}://{netloc}")
    try:
        port = parts.port
    except ValueError:
        return scheme, netloc, None
    return scheme.lower(), (parts.hostname or "").lower(), port or DEFAULT_PORTS.get(scheme.lower())


def same_origin(request: Any) -> bool:
    """False when the request names another origin than its own (Origin, else Referer)."""
    named = request.headers.get("origin") or request.headers.get("referer")
    if named is None:
        return True  # no header (some tools): the CSRF token still decides
    parts = urllib.parse.urlsplit(named)
    if named == "null" or not parts.scheme or not parts.netloc:
        return False
    own = _origin(request.url.scheme, request.headers.get("host", ""))
    return _origin(parts.scheme, parts.netloc) == own


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def signed_csrf_token(secret: str, subject: str) -> str:
    """A CSRF token derived from a secret (no storage): an HMAC of `subject`."""
    return hmac.new(secret.encode(), subject.encode(), hashlib.sha256).hexdigest()


def csrf_matches(given: Any, expected: str) -> bool:
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())


def post_refusal(request: Any, given_token: Any, expected_token: str) -> str | None:
    """Why a POST is refused (another origin, a missing or wrong CSRF token), or None."""
    if not same_origin(request):
        return "a request from another site was refused"
    if not csrf_matches(given_token, expected_token):
        return "the form's CSRF token is missing or wrong; reload the page and try again"
    return None


def cookie_options(request: Any, *, max_age: int | None = None) -> dict[str, Any]:
    """`Response.set_cookie` options: Secure whenever the request came over HTTPS."""
    return {"httponly": True, "samesite": "strict", "secure": request.url.scheme == "https", "path": "/",
            "max_age": max_age}


# -- serving -----------------------------------------------------------------------------------------------------
def is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, *, tls: bool, allow_insecure_remote: bool) -> None:
    if not is_loopback_host(host) and not tls and not allow_insecure_remote:
        raise UserError(f"--host {host} would serve passwords and sessions in clear text beyond this machine: give "
                        f"--tls-cert and --tls-key, or --allow-insecure-remote behind a TLS proxy")


def bound_socket(host: str, port: int) -> Any:
    """A socket bound to `host:port`, for uvicorn to serve on: binding first makes a port in use a
    one-line error before anything is served (uvicorn's own bind would log and exit)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot serve on {host}:{port}: {exc.strerror or exc} (another process may use the port; "
                        "pick another with --port)") from None
    return sock


def default_forwarded_allow_ips() -> str:
    return os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


class ForwardedHeaders:
    """ASGI middleware: trusted proxies' X-Forwarded-Proto, -For (by uvicorn's own middleware) and -Host."""

    def __init__(self, app: Any, trusted: str | None = None):
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        self.app = app
        self.proxied = ProxyHeadersMiddleware(app, trusted_hosts=trusted or default_forwarded_allow_ips())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        client = scope.get("client")
        if client and client[0] in self.proxied.trusted_hosts:
            forwarded = [value for name, value in scope["headers"] if name == b"x-forwarded-host"]
            if forwarded:
                host = forwarded[-1].split(b",")[-1].strip()  # the nearest proxy's
                scope = {**scope, "headers": [(n, v) for n, v in scope["headers"] if n != b"host"] + [(b"host", host)]}
        return await self.proxied(scope, receive, send)


def serve_options() -> dict[str, Any]:
    """uvicorn.run options for an app wrapped in `ForwardedHeaders` (which does the proxy handling).
    No `log_config`: uvicorn's would replace the process's logging set-up (closing every handler
    already there), which a caller serving in its own process keeps; warnings still reach stderr."""
    return {"proxy_headers": False, "log_level": "warning", "log_config": None}
