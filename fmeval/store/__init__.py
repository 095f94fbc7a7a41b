"""fmeval's one store: the run index, and the tables of the parts that need them, in embedded
SQLite by default or PostgreSQL by URL (see `Database`); the audit log (`fmeval.store.audit`) and
the outbox of events to deliver (`fmeval.store.outbox`)."""
from __future__ import annotations

from typing import Any

__all__ = ["Database", "OnStore", "STORE_ENV", "default_store", "metadata"]


def __getattr__(name: str) -> Any:
    # SQLAlchemy loads only when the store is used: `import fmeval` stays light.
    if name == "metadata":
        from fmeval.store.schema import metadata

        return metadata
    if name in ("Database", "OnStore", "STORE_ENV", "default_store"):
        from fmeval.store import database

        return getattr(database, name)
    raise AttributeError(f"module 'fmeval.store' has no attribute {name!r}")
