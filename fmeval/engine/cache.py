"""A response cache in SQLite (WAL mode): never pay twice for the same answer.

The key is a hash of the runner's identity (model, endpoint, generation parameters, system
prompt, seed: never credentials, concurrency limits or timeouts), the kind of request and
the prompt. Only successful responses are stored. Several processes may read and write at
once: WAL lets readers run beside a writer, and writers wait for each other (busy timeout).
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

from fmeval.paths import cache_dir

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at REAL NOT NULL
)
"""
_LOOKUP_CHUNK = 500  # SQLite caps the number of bound parameters


RESPONSE_CACHE_ENV = "FMEVAL_RESPONSE_CACHE"


def default_cache_path() -> Path:
    """`FMEVAL_RESPONSE_CACHE` if set, else `responses.sqlite` in the user cache directory."""
    return Path(os.environ[RESPONSE_CACHE_ENV]) if os.environ.get(RESPONSE_CACHE_ENV) else cache_dir("responses.sqlite")


class ResponseCache:
    """`get_many`/`put_many` of JSON values by key; `hits` and `misses` count lookups."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else default_cache_path()
        if self.path.is_dir() or (path is not None and self.path.suffix == ""):
            self.path = self.path / "responses.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.hits = self.misses = 0
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(self.path, timeout=60, check_same_thread=False, isolation_level=None)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._connection.execute(SCHEMA)

    @staticmethod
    def key(identity: dict[str, Any], kind: str, prompt: str) -> str:
        material = json.dumps({"identity": identity, "kind": kind, "prompt": prompt}, sort_keys=True, default=str)
        return hashlib.sha256(material.encode("utf-8")).hexdigest()

    def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        with self._lock:
            for start in range(0, len(keys), _LOOKUP_CHUNK):
                chunk = list(keys[start : start + _LOOKUP_CHUNK])
                marks = ",".join("?" * len(chunk))
                rows = self._connection.execute(f"SELECT key, value FROM responses WHERE key IN ({marks})", chunk)
                found.update((key, json.loads(value)) for key, value in rows)
        self.hits += sum(1 for key in keys if key in found)
        self.misses += sum(1 for key in keys if key not in found)
        return found

    def put_many(self, items: Iterable[tuple[str, Any]]) -> None:
        now = time.time()
        rows = [(key, json.dumps(value), now) for key, value in items]
        if not rows:
            return
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                self._connection.executemany("INSERT OR REPLACE INTO responses (key, value, created_at) VALUES (?, ?, ?)", rows)
                self._connection.execute("COMMIT")
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            self._connection.close()
