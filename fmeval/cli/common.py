"""What the commands share: exit codes, list flags, writing the files users name."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fmeval.errors import UserError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 130, 141
STORE_FLAGS = ("--store-url", "--store")
STORE_OPTIONS = {"dest": "store_url", "metavar": "URL_OR_FILE",
                 "help": "fmeval's store: a SQLite file or a database URL (postgresql://user@host/db); "
                         "default: FMEVAL_STORE, else a SQLite file in the user data directory"}


def non_negative_int(value: str) -> int:
    """An argparse type: a whole number >= 0."""
    import argparse

    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {number}")
    return number


def csv_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def write_output(path: str, text: str, what: str) -> None:
    """Write a file the user named, or fail with a message that names it."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write the {what} {target}: {exc.strerror or exc}") from exc


def check_listen_address(host: str, port: int) -> None:
    """Refuse, in one line, a port out of range or an address already in use, before a server
    loads anything (the server's own bind would fail later, with a traceback)."""
    import socket

    if not 0 <= port <= 65535:
        raise UserError(f"--port must be between 0 and 65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UserError(f"--host {host!r}: {exc.strerror}") from None
    family, kind, protocol, _, address = infos[0]
    with socket.socket(family, kind, protocol) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind(address)
        except OSError as exc:
            raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


TABLE_FORMATS = {".csv": "text/csv", ".jsonl": "application/jsonlines", ".parquet": "application/x-parquet"}
"""The tabular files that `rebalance` and `mitigate` read, by suffix, as Clarify's dataset types."""


def read_table(data: str) -> tuple[Path, str, Any]:
    """(path, dataset type, data frame) of a .csv, .jsonl or .parquet file, read as `fmeval analyze` reads it."""
    from fmeval.bias.analyze import load_data

    path = Path(data)
    kind = TABLE_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise UserError(f"{path}: the data must be a {', '.join(TABLE_FORMATS)} file")
    return path, kind, load_data({"dataset_type": kind}, path)
