"""POSTing JSON to webhooks: one attempt (`post_once`, for the store's outbox, which keeps the
retries in the database), or attempts with backoff in this process (`post_webhook`).

Header values (tokens) and the URL's path and query never appear in results or log messages.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
import numbers
import random
import re
import time
import urllib.parse
from typing import Any, Callable, Mapping

from fmeval.errors import UserError
from fmeval.retry import RetryableError, RetryPolicy, retry_after_seconds
from fmeval.secrets import MASK, register_authorization, register_url_credentials

logger = logging.getLogger("fmeval.webhooks")

_SECRET_HEADER = re.compile(r"auth|token|key|secret|signature|password|cookie|session", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One POST's outcome: `status` is the HTTP status (None without a response); `retryable` for
    connection errors, timeouts, 429 and 5xx; `retry_after` the response's Retry-After in seconds."""

    delivered: bool
    status: int | None
    error: str | None
    retryable: bool
    retry_after: float | None = None


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return value


def safe_url(url: str) -> str:
    """The URL without what may hold a secret (path, query, user info), for messages."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}/..." if parts.path not in ("", "/") or parts.query else f"{parts.scheme}://{host}"


def check_url(url: Any) -> str:
    if not isinstance(url, str) or urllib.parse.urlsplit(url).scheme not in ("http", "https") \
            or not urllib.parse.urlsplit(url).hostname:
        raise UserError(f"webhook URL must be an http:// or https:// URL, got {url!r}")
    return url


class _Request:
    """A POST prepared once: its body, its headers, and a redaction of its secrets."""

    def __init__(self, url: str, payload: Mapping[str, Any], headers: Mapping[str, Any] | None):
        self.url = check_url(url)
        headers = dict(headers or {})
        self.secrets = sorted({str(v) for v in headers.values() if v is not None and len(str(v)) >= 4} | {url},
                              key=len, reverse=True)
        for key, value in headers.items():
            if value is not None and _SECRET_HEADER.search(str(key)):
                register_authorization(str(value))  # fmeval's other outputs mask it too, in every form
        register_url_credentials(url)
        self.safe_url = safe_url(url)
        self.body = json.dumps(_jsonable(payload), default=str).encode()
        self.headers = {"Content-Type": "application/json"}
        self.headers.update({str(key): str(value) for key, value in headers.items() if value is not None})

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK if secret != self.url else self.safe_url)
        return text

    def send(self, client: Any) -> Attempt:
        import httpx

        try:
            response = client.post(self.url, content=self.body, headers=self.headers)
        except httpx.TransportError as failure:  # connection refused, DNS, timeouts, dropped connections
            return Attempt(False, None, self.redact(f"{type(failure).__name__}: {failure}".rstrip(": ")), True)
        status = response.status_code
        if 200 <= status < 300:
            return Attempt(True, status, None, False)
        snippet = " ".join(response.text[:200].split())
        retryable = status == 429 or status >= 500
        return Attempt(False, status, self.redact(f"HTTP {status}" + (f": {snippet}" if snippet else "")), retryable,
                       retry_after_seconds(response.headers.get("Retry-After")) if retryable else None)


class _Undelivered(Exception):
    """A webhook's final refusal (3xx, or a 4xx other than 429): not sent again."""


def _check_timeout(timeout_s: Any) -> None:
    if not isinstance(timeout_s, numbers.Real) or timeout_s <= 0:
        raise UserError(f"timeout_s must be a number > 0, got {timeout_s!r}")


def post_once(url: str, payload: Mapping[str, Any], *, headers: Mapping[str, Any] | None = None,
              timeout_s: float = 10.0) -> Attempt:
    """One POST of `payload` as JSON; never raises on a failed delivery."""
    import httpx

    _check_timeout(timeout_s)
    request = _Request(url, payload, headers)
    with httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
        outcome = request.send(client)
    log: Callable[..., None] = logger.info if outcome.delivered else logger.warning
    log("webhook %s: %s", request.safe_url, "delivered" if outcome.delivered else outcome.error)
    return outcome


def post_webhook(
    url: str,
    payload: dict,
    *,
    attempts: int = 5,
    backoff_s: float = 0.5,
    timeout_s: float = 10.0,
    headers: dict | None = None,
    max_backoff_s: float = 60.0,
) -> dict:
    """POST `payload` as JSON to `url`; never raises on a failed delivery.

    Connection errors, timeouts, 429 and 5xx are retried, up to `attempts` tries in all, after
    `backoff_s * 2**k` seconds with jitter (half fixed, half random), or after the response's
    Retry-After when that is longer; a Retry-After beyond `max_backoff_s` ends the tries. Other
    statuses (2xx delivered; 3xx and other 4xx failed) are final. Returns
    `{"delivered", "attempts", "status", "error"}`, where `status` is the last HTTP status (None
    without a response).
    """
    import httpx

    check_url(url)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise UserError(f"attempts must be an integer >= 1, got {attempts!r}")
    for label, value in (("backoff_s", backoff_s), ("max_backoff_s", max_backoff_s)):
        if not isinstance(value, numbers.Real) or value < 0:
            raise UserError(f"{label} must be a number >= 0, got {value!r}")
    _check_timeout(timeout_s)
    request = _Request(url, payload, headers)
    policy = RetryPolicy(max_retries=attempts - 1, base_delay_s=backoff_s, max_delay_s=max_backoff_s, jitter=0.5,
                         give_up_beyond_cap=True)
    tried, outcome = 0, None

    def attempt() -> int:
        nonlocal tried, outcome
        tried += 1
        outcome = request.send(client)
        if outcome.delivered:
            return outcome.status
        if outcome.retryable:
            raise RetryableError(outcome.error, retry_after=outcome.retry_after)
        raise _Undelivered(outcome.error)

    def sleep(delay: float) -> None:
        logger.warning("webhook %s attempt %d failed (%s); retrying in %.2fs", request.safe_url, tried, outcome.error,
                       delay)
        time.sleep(delay)

    with httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
        try:
            status = policy.call(attempt, rng=random.Random(), sleep=sleep)
        except (RetryableError, _Undelivered) as failure:
            error = outcome.error
            retry_after = getattr(failure, "retry_after", None)
            if retry_after is not None and retry_after > max_backoff_s and tried < attempts:
                error = f"{error} (Retry-After {retry_after:g}s exceeds max_backoff_s {max_backoff_s:g}s)"
        else:
            logger.info("webhook %s delivered (HTTP %d, attempt %d)", request.safe_url, status, tried)
            return {"delivered": True, "attempts": tried, "status": status, "error": None}
    logger.warning("webhook %s not delivered after %d attempt(s): %s", request.safe_url, tried, error)
    return {"delivered": False, "attempts": tried, "status": outcome.status, "error": error}
