"""The audit log: who did what to which card or account, and when; one table for the CLI, the
dashboard and the store's own changes.

A change and its audit row are written in one transaction (`record` takes the change's
connection), so a change is never without its row. The table keeps the dashboard's name
(`dashboard_audit`), where its rows have been written since the dashboard came.
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import Column, Index, Integer, String, Table, Text, select

from fmeval.errors import UserError
from fmeval.store.schema import metadata

MAX_USER = 100
MAX_TARGET = 500
MAX_PAGE = 1000

audit_table = Table(
    "dashboard_audit", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", String(40), nullable=False),
    Column("username", String(MAX_USER), nullable=False),
    Column("action", String(100), nullable=False),
    Column("target", String(MAX_TARGET), nullable=False),
    Column("detail", Text, nullable=False),
    Column("model", String(MAX_TARGET)),  # the model a card action concerns (the registry's key)
    Index("ix_dashboard_audit_username", "username"),
    Index("ix_dashboard_audit_target", "target"),
    Index("ix_dashboard_audit_model", "model"),
    Index("ix_dashboard_audit_time", "time"),
)


def now() -> str:
    """The audit log's clock: UTC, ISO 8601 to the microsecond (so that rows sort by time)."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


def check_user(username: str, what: str = "a user name") -> str:
    """A user name as the audit log keeps it: 1 to 100 printable characters."""
    if not isinstance(username, str) or not username.strip() or len(username) > MAX_USER \
            or not username.isprintable():
        shown = username if not isinstance(username, str) or len(username) <= 40 else username[:40] + "..."
        raise UserError(f"{what} is 1 to {MAX_USER} printable characters, got {shown!r}")
    return username


def record(connection: Any, *, actor: str, action: str, target: str, detail: dict[str, Any],
           model: str | None = None) -> None:
    """One audit row, inside the caller's transaction. Over-long values are cut to the columns'
    sizes, never refused: a failed login's made-up user name is recorded too."""
    connection.execute(audit_table.insert().values(
        time=now(), username=actor[:MAX_USER], action=action, target=target[:MAX_TARGET],
        detail=json.dumps(detail, sort_keys=True, default=str), model=model[:MAX_TARGET] if model else None))


def query_audit(database: Any, *, user: str | None = None, card: str | None = None, model: str | None = None,
                since: str | None = None, until: str | None = None, limit: int = 200,
                offset: int = 0) -> list[dict[str, Any]]:
    """Audit rows, newest first. `user`, `card` (a card action's target) and `model` match exactly;
    `since` (inclusive) and `until` (exclusive) are ISO 8601 UTC times or dates, compared with
    each row's time; `limit` is 1 to 1000."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise UserError(f"limit is an integer from 1 to {MAX_PAGE}, got {limit!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise UserError(f"offset is an integer >= 0, got {offset!r}")
    query = select(audit_table).order_by(audit_table.c.id.desc())
    if user:
        query = query.where(audit_table.c.username == user)
    if card:
        query = query.where((audit_table.c.target == card) & audit_table.c.action.startswith("card."))
    if model:
        query = query.where(audit_table.c.model == model)
    for bound, name in ((since, "since"), (until, "until")):
        if bound is not None:
            _check_time(bound, name)
    if since:
        query = query.where(audit_table.c.time >= _utc(since))
    if until:
        query = query.where(audit_table.c.time < _utc(until))
    with database.reading() as connection:
        return [{**row._mapping, "detail": json.loads(row.detail)}
                for row in connection.execute(query.limit(limit).offset(offset))]


def _check_time(value: str, name: str) -> None:
    try:
        dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} is an ISO 8601 time or date (e.g. 2026-01-31T12:00:00+00:00), got {value!r}") from None


def _utc(value: str) -> str:
    """A bound in the rows' form (UTC, ISO 8601): a time with an offset is converted, a naive one is UTC."""
    when = dt.datetime.fromisoformat(value)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")
