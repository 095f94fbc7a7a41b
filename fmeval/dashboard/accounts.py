"""The dashboard's users, sessions and audit log, in fmeval's store.

Passwords are stored as Argon2id hashes (argon2-cffi). A session is a random token in an
HttpOnly, SameSite=Strict cookie (Secure over HTTPS); the store keeps only its SHA-256, with the
session's CSRF token and its expiry, so several dashboard processes on one store share sessions.
Roles, each with the rights of the ones before: viewer (reads), editor (writes cards, submits),
approver (approves and rejects, never their own version), admin (users, the audit log).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, String, Table, Text, delete, select, update
from sqlalchemy.exc import IntegrityError

from fmeval.errors import UserError
from fmeval.store import Database
from fmeval.store.audit import audit_table, record
from fmeval.store.schema import metadata

ROLES = ("viewer", "editor", "approver", "admin")
SESSION_HOURS = 12
MIN_PASSWORD = 10

users_table = Table(
    "dashboard_users", metadata,
    Column("username", String(100), primary_key=True),
    Column("password_hash", Text, nullable=False),
    Column("role", String(20), nullable=False),
    Column("created_at", String(40), nullable=False),
)
sessions_table = Table(
    "dashboard_sessions", metadata,
    Column("token_sha256", String(64), primary_key=True),
    Column("username", String(100), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("expires_at", String(40), nullable=False),
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class User:
    username: str
    role: str

    def can(self, role: str) -> bool:
        """Whether this user has at least `role`'s rights."""
        return ROLES.index(self.role) >= ROLES.index(role)


@dataclass(frozen=True)
class Session:
    user: User
    csrf: str


class Accounts:
    def __init__(self, database: Database):
        from argon2 import PasswordHasher

        self.database = database
        self.hasher = PasswordHasher()
        self._dummy = self.hasher.hash(secrets.token_hex(16))  # checked against for unknown users: same timing

    # -- users -----------------------------------------------------------------------------------------
    def add_user(self, username: str, password: str, role: str, *, actor: str = "cli") -> User:
        if role not in ROLES:
            raise UserError(f"a role is one of {', '.join(ROLES)}, got {role!r}")
        if not username or len(username) > 100 or not username.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise UserError(f"a user name is letters, digits, '-', '_' or '.', up to 100 characters; got {username!r}")
        if len(password) < MIN_PASSWORD:
            raise UserError(f"a password needs at least {MIN_PASSWORD} characters")
        try:
            with self.database.transaction() as connection:
                connection.execute(users_table.insert().values(username=username, password_hash=self.hasher.hash(password),
                                                               role=role, created_at=_now().isoformat()))
        except IntegrityError:
            raise UserError(f"user {username!r} exists") from None
        self.audit(actor, "user.add", username, {"role": role})
        return User(username, role)

    def users(self) -> list[User]:
        with self.database.reading() as connection:
            return [User(row.username, row.role) for row in connection.execute(
                select(users_table.c.username, users_table.c.role).order_by(users_table.c.username))]

    def remove_user(self, username: str, *, actor: str = "cli") -> None:
        with self.database.transaction() as connection:
            if connection.execute(delete(users_table).where(users_table.c.username == username)).rowcount == 0:
                raise UserError(f"no user {username!r}")
            connection.execute(delete(sessions_table).where(sessions_table.c.username == username))
        self.audit(actor, "user.remove", username, {})

    # -- sessions ---------------------------------------------------------------------------------------
    def log_in(self, username: str, password: str) -> str | None:
        """A new session's token, or None for a wrong user name or password."""
        from argon2.exceptions import VerificationError

        with self.database.reading() as connection:
            row = connection.execute(select(users_table).where(users_table.c.username == username)).first()
        try:
            self.hasher.verify(row.password_hash if row else self._dummy, password)
        except VerificationError:
            self.audit(username, "login.failed", username, {})
            return None
        if row is None:
            return None
        token = secrets.token_urlsafe(32)
        with self.database.transaction() as connection:
            connection.execute(sessions_table.insert().values(
                token_sha256=_sha(token), username=username, csrf=secrets.token_urlsafe(32),
                expires_at=(_now() + dt.timedelta(hours=SESSION_HOURS)).isoformat()))
            if self.hasher.check_needs_rehash(row.password_hash):
                connection.execute(update(users_table).where(users_table.c.username == username).values(
                    password_hash=self.hasher.hash(password)))
        self.audit(username, "login", username, {})
        return token

    def session(self, token: str | None) -> Session | None:
        if not token:
            return None
        query = select(sessions_table.c.csrf, sessions_table.c.expires_at, users_table.c.username, users_table.c.role).join(
            users_table, users_table.c.username == sessions_table.c.username).where(
            sessions_table.c.token_sha256 == _sha(token))
        with self.database.reading() as connection:
            row = connection.execute(query).first()
        if row is None or row.expires_at < _now().isoformat():
            return None
        return Session(User(row.username, row.role), row.csrf)

    def log_out(self, token: str) -> None:
        with self.database.transaction() as connection:
            connection.execute(delete(sessions_table).where(sessions_table.c.token_sha256 == _sha(token)))

    # -- the audit log ------------------------------------------------------------------------------------
    def audit(self, username: str, action: str, target: str, detail: dict[str, Any]) -> None:
        with self.database.transaction() as connection:
            record(connection, actor=username, action=action, target=target, detail=detail)

    def audit_log(self, *, limit: int = 200, offset: int = 0) -> list[dict[str, Any]]:
        query = select(audit_table).order_by(audit_table.c.id.desc()).limit(limit).offset(offset)
        with self.database.reading() as connection:
            return [{**row._mapping, "detail": json.loads(row.detail)} for row in connection.execute(query)]


def password_from_environment(variable: str) -> str:
    value = os.environ.get(variable)
    if value is None:
        raise UserError(f"--password-env {variable}: the variable is not set")
    if not value:
        raise UserError(f"--password-env {variable}: the variable is empty")
    return value
