"""`Database`: fmeval's one store, embedded SQLite by default or a database server by URL.

It holds the run index and, as the parts that need them arrive, schedules and executions,
model cards and their versions, users and the audit log; files (runs, captures, baselines)
stay files. Tables are SQLAlchemy Core tables on the shared `metadata`, each declared in its
own subsystem's module. Their migrations are Alembic scripts in `fmeval/store/migrations/versions/`,
one independent branch per subsystem; opening a Database brings it to every branch's head,
under a lock, so that processes opening a new store at once do not race.

SQLite runs in WAL mode (readers never wait for the writer), and write transactions
(`transaction()`) start with BEGIN IMMEDIATE, so that concurrent writers queue instead of
failing halfway; reads (`reading()`) take no write lock.
"""
from __future__ import annotations

import ast
import contextlib
import fcntl
import functools
import os
import threading
from pathlib import Path
from typing import Any, Iterator

from fmeval.errors import UserError

STORE_ENV = "FMEVAL_STORE"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "store_migrations"
_POSTGRES_MIGRATION_LOCK = 727_201  # an arbitrary pg_advisory_lock key, fmeval's own


def default_store() -> str:
    """`FMEVAL_STORE` (a SQLite file or a database URL), else `fmeval.sqlite` in the user data directory."""
    if os.environ.get(STORE_ENV):
        return os.environ[STORE_ENV]
    from platformdirs import user_data_dir

    return str(Path(user_data_dir("fmeval")) / "fmeval.sqlite")


def database_url(location: str | os.PathLike[str]) -> str:
    """A SQLAlchemy URL for a SQLite file path or a database URL (postgresql:// gets psycopg 3)."""
    text = os.fspath(location)
    if "://" not in text:
        return f"sqlite:///{Path(text).expanduser().resolve()}"
    scheme, rest = text.split("://", 1)
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return text


_HEADS_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _read_revisions() -> tuple[frozenset[str], frozenset[str]]:
    """(every revision of the migration scripts, the heads among them)."""
    revisions, parents = set(), set()
    for script in (MIGRATIONS / "versions").glob("*.py"):
        if script.name.startswith("__"):
            continue
        values = {}
        for node in ast.parse(script.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                values[node.targets[0].id] = ast.literal_eval(node.value)
        revisions.add(values["revision"])
        for key in ("down_revision", "depends_on"):  # Alembic records neither as a head
            before = values.get(key)
            parents.update(before if isinstance(before, (tuple, list)) else [before] if before else [])
    return frozenset(revisions), frozenset(revisions - parents)


def _version() -> str:
    from fmeval.version import __version__

    return __version__


def _heads() -> set[str]:
    """The head revision of every migration branch, read once from the scripts themselves (without
    importing Alembic: opening an up-to-date store should cost one query, not half a second).
    Under a lock: CPython 3.11's parser is not safe in threads that open stores at once."""
    with _HEADS_LOCK:
        return set(_read_revisions()[1])


def _known_revisions() -> set[str]:
    with _HEADS_LOCK:
        return set(_read_revisions()[0])


def _set_wal(dbapi_connection: Any, *, patience_s: float = 60.0) -> None:
    """WAL mode. Switching a new file to it needs the file to itself, and SQLite answers "database is
    locked" at once (no busy wait) while another process migrates it: wait for that, as for a lock."""
    import sqlite3
    import time

    deadline = time.monotonic() + patience_s
    while True:
        try:
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Database:
    """A connection to fmeval's store. `url`: a SQLite file path or a SQLAlchemy URL
    (`postgresql://user@host/db`); None means `FMEVAL_STORE`, else the default SQLite file."""

    def __init__(self, url: str | os.PathLike[str] | None = None):
        from sqlalchemy import create_engine, event
        from sqlalchemy.exc import ArgumentError, SQLAlchemyError

        location = os.fspath(url) if url is not None else default_store()
        self.url = database_url(location)
        try:
            if self.url.startswith("sqlite:///"):
                path = Path(self.url.removeprefix("sqlite:///"))
                path.parent.mkdir(parents=True, exist_ok=True)
                self.engine = create_engine(self.url, connect_args={"timeout": 60})

                @event.listens_for(self.engine, "connect")
                def _sqlite_settings(dbapi_connection: Any, _: Any) -> None:
                    dbapi_connection.isolation_level = None  # transactions are begun below, explicitly
                    _set_wal(dbapi_connection)
                    dbapi_connection.execute("PRAGMA synchronous=NORMAL")
                    dbapi_connection.execute("PRAGMA foreign_keys=ON")

                @event.listens_for(self.engine, "begin")
                def _begin(connection: Any) -> None:
                    writing = connection.get_execution_options().get("fmeval_write")
                    connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")
            else:
                self.engine = create_engine(self.url, pool_pre_ping=True)
            self._migrate()
        except (OSError, SQLAlchemyError, ArgumentError) as exc:
            raise UserError(f"cannot open the store {self}: {str(exc).splitlines()[0]}") from exc

    def __str__(self) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.url).render_as_string(hide_password=True)

    def __repr__(self) -> str:
        return f"Database({str(self)!r})"

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """A Core connection inside one write transaction: committed on success, rolled back on error."""
        with self.engine.connect().execution_options(fmeval_write=True) as connection, connection.begin():
            yield connection

    @contextlib.contextmanager
    def reading(self) -> Iterator[Any]:
        """A Core connection for reads: a consistent snapshot, and no write lock."""
        with self.engine.connect() as connection:
            yield connection

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # -- migrations ---------------------------------------------------------------------------------
    def _migrate(self) -> None:
        current = self._current_heads()
        if current == _heads():
            return
        unknown = current - _known_revisions()
        if unknown:  # Alembic would fail with "Can't locate revision", read as a bug in fmeval
            raise UserError(f"the store {self} was upgraded by a newer fmeval (its revision {', '.join(sorted(unknown))} "
                            f"is unknown to fmeval {_version()}): upgrade fmeval, or use another --store")
        with self._migration_lock() as connection:
            if self._current_heads(connection) != _heads():  # another process may have done it meanwhile
                from alembic import command
                from alembic.config import Config

                config = Config()
                config.set_main_option("script_location", str(MIGRATIONS))
                config.attributes["connection"] = connection
                config.attributes["version_table"] = VERSION_TABLE
                command.upgrade(config, "heads")

    def _current_heads(self, connection: Any = None) -> set[str]:
        from sqlalchemy import inspect, text

        with contextlib.ExitStack() as stack:
            if connection is None:
                connection = stack.enter_context(self.engine.connect())
            if not inspect(connection).has_table(VERSION_TABLE):
                return set()
            return {row[0] for row in connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))}

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[Any]:
        """A connection that alone may migrate: a lock file beside a SQLite store, an advisory lock
        on a server."""
        from sqlalchemy import text

        if self.is_sqlite:
            lock_path = Path(self.url.removeprefix("sqlite:///") + ".migrate.lock")
            with open(lock_path, "a") as lock_file:
                fcntl.flock(lock_file, fcntl.LOCK_EX)
                with self.transaction() as connection:
                    yield connection
            return
        with self.engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _POSTGRES_MIGRATION_LOCK})
            connection.commit()
            try:
                with connection.begin():
                    yield connection
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _POSTGRES_MIGRATION_LOCK})
                connection.commit()


class OnStore:
    """A part's view of the store (runs, schedules, cards). `store`: a Database (shared, left open),
    a SQLite file, a database URL, or None for the default store (opened here, closed with it)."""

    def __init__(self, store: Database | str | os.PathLike[str] | None = None):
        self.database = store if isinstance(store, Database) else Database(store)
        self._owned = not isinstance(store, Database)

    @property
    def path(self) -> str:
        return str(self.database)

    def close(self) -> None:
        if self._owned:
            self.database.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
