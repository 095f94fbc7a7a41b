"""Keep credentials out of everything fmeval writes: results, summaries, caches, logs, errors.

Runners register each secret they read; `redact` replaces every registered secret in a text.
A secret is registered in every form it travels in: an `Authorization` value (`Bearer KEY`,
`Basic base64(user:KEY)`) and the user-info of a URL (`http://user:KEY@host`, which HTTP clients
turn into a Basic header) register the key, `user:KEY` and their base64 encodings.
"""
from __future__ import annotations

import base64
import binascii
import threading
import urllib.parse

_secrets: set[str] = set()
_lock = threading.Lock()
MASK = "***"
MIN_SECRET_LENGTH = 6  # shorter values would mask ordinary words


def register_secret(value: str | None) -> None:
    if value and len(value) >= MIN_SECRET_LENGTH:
        with _lock:
            _secrets.add(value)


def _register_with_encodings(value: str) -> None:
    register_secret(value)
    encoded = base64.b64encode(value.encode()).decode()
    for form in (encoded, encoded.rstrip("="), base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")):
        register_secret(form)


def _register_basic(user: str, password: str) -> None:
    """A Basic credential: the password, and `user:password` with its base64 forms (the header)."""
    if password:
        _register_with_encodings(password)
    _register_with_encodings(f"{user}:{password}")


def register_authorization(value: str | None) -> None:
    """An `Authorization` header's value in any scheme: its credentials, and for Basic, the
    decoded `user:password` and the password alone."""
    if not value:
        return
    scheme, _, credentials = value.strip().partition(" ")
    credentials = credentials.strip() or scheme  # a bare key sent without a scheme
    _register_with_encodings(credentials)
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials + "=" * (-len(credentials) % 4), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return
        user, _, password = decoded.partition(":")
        _register_basic(user, password)


def register_url_credentials(url: str) -> None:
    """The user-info of a URL (`scheme://user:password@host`), raw and percent-decoded."""
    user_info, at, _ = urllib.parse.urlsplit(url).netloc.rpartition("@")
    if not at:
        return
    raw_user, _, raw_password = user_info.partition(":")
    unquote = urllib.parse.unquote
    for user, password in ((raw_user, raw_password), (unquote(raw_user), unquote(raw_password))):
        _register_basic(user, password)
        if not password:
            _register_with_encodings(user)  # a token given as the user name alone


def redact(text: str) -> str:
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text
