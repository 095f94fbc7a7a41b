"""Exceptions. A `UserError` is the user's to fix (bad input, bad usage); the CLI exits 2 on it."""
from __future__ import annotations


class FmevalError(Exception):
    """Base class of every error fmeval raises on purpose."""


class UserError(FmevalError):
    """Bad usage or bad input: the message says what is wrong and how to fix it."""


class DataError(UserError):
    """A record or file that cannot be read; `location` is `file:line` (or `file: row N`)."""

    def __init__(self, location: str, message: str):
        super().__init__(f"{location}: {message}")
        self.location = location
        self.reason = message


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C; the message says how many records are saved and how to resume."""


class DatasetUnavailableError(UserError):
    """A built-in dataset that is in none of the places fmeval looks."""
