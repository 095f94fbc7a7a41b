"""Keep credentials out of everything fmeval writes: results, summaries, caches, logs, errors.

Runners register each secret they read; `redact` replaces every registered secret in a text.
"""
from __future__ import annotations

import threading

_secrets: set[str] = set()
_lock = threading.Lock()
MASK = "***"
MIN_SECRET_LENGTH = 6  # shorter values would mask ordinary words


def register_secret(value: str | None) -> None:
    if value and len(value) >= MIN_SECRET_LENGTH:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text
