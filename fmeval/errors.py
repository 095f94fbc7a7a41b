"""Exceptions. A `UserError` is the user's to fix (bad input, bad usage); the CLI exits 2 on it."""
from __future__ import annotations


class FmevalError(Exception):
    """Base class of every error fmeval raises on purpose."""


class UserError(FmevalError):
    """Bad usage or bad input: the message says what is wrong and how to fix it."""


class NotFound(UserError):
    """What was named (a run, a schedule, a model card) is not in the store."""


class DataError(UserError):
    """A record or file that cannot be read; `location` is `file:line` (or `file: row N`)."""

    def __init__(self, location: str, message: str):
        super().__init__(f"{location}: {message}")
        self.location = location
        self.reason = message


class PredictionFailed(UserError):
    """A model gave some inputs no prediction (after its retries): `errors` maps their positions
    to the reason, and `answered` holds the outputs of the others, in order."""

    def __init__(self, errors: dict[int, str], total: int, answered: object = None):
        self.errors = errors
        self.answered = answered
        first = next(iter(errors.items()))
        super().__init__(f"{len(errors)} of {total} prediction(s) failed; input {first[0]}: {first[1]}")


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C; the message says how many records are saved and how to resume."""


class DatasetUnavailableError(UserError):
    """A built-in dataset that is in none of the places fmeval looks."""
