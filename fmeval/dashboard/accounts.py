"""The dashboard's users, sessions and audit log, in fmeval's store.

Passwords are stored as Argon2id hashes (argon2-cffi). A session is a random token in an
HttpOnly, SameSite=Strict cookie (Secure over HTTPS); the store keeps only its SHA-256, with the
session's CSRF token and its expiry, so several dashboard processes on one store share sessions.
Roles, each with the rights of the ones before: viewer (reads), editor (writes cards, submits),
approver (approves and rejects, never their own version), admin (users, the audit log).

Logging in is rate-limited in the store (so every dashboard process on it shares the counts):
after ACCOUNT_FAILURES wrong passwords for one account within LOCKOUT_MINUTES, the account is
locked for LOCKOUT_MINUTES or until an admin lifts it; after CLIENT_FAILURES from one client
address, that client is refused for LOCKOUT_MINUTES. A locked login checks no password at all,
so a guessing attack costs at most ACCOUNT_FAILURES Argon2 checks per account per window.
Expired sessions are deleted whenever someone logs in.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Integer, String, Table, Text, delete, select, update
from sqlalchemy.exc import IntegrityError

from fmeval.errors import UserError
from fmeval.store import Database
from fmeval.store.audit import MAX_USER, record
from fmeval.store.schema import metadata

ROLES = ("viewer", "editor", "approver", "admin")
SESSION_HOURS = 12
MIN_PASSWORD = 10
ACCOUNT_FAILURES, CLIENT_FAILURES, LOCKOUT_MINUTES = 5, 20, 15

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
failures_table = Table(
    "dashboard_login_failures", metadata,
    Column("key", String(200), primary_key=True),  # "account:NAME" or "client:ADDRESS"
    Column("failures", Integer, nullable=False),
    Column("first_at", String(40), nullable=False),
    Column("locked_until", String(40)),
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class User:
    username: str
    role: str

    def can(self, role: str) -> bool:
        """Whether this user has at least `role`'s rights."""
        return ROLES.index(self.role) >= ROLES.index(role)


class LockedOut(UserError):
    """Too many wrong passwords: the account or the client must wait (or an admin lifts it)."""


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
    def log_in(self, username: str, password: str, *, client: str = "unknown") -> str | None:
        """A new session's token, or None for a wrong user name or password; LockedOut while the
        account or the client is locked (no password is checked then)."""
        from argon2.exceptions import VerificationError

        keys = (f"account:{username[:MAX_USER]}", f"client:{client}"[:200])  # within the key column's 200
        now = _now()
        with self.database.reading() as connection:
            row = connection.execute(select(users_table).where(users_table.c.username == username)).first()
            locks = {r.key: r.locked_until for r in connection.execute(
                select(failures_table).where(failures_table.c.key.in_(keys))) if r.locked_until}
        for key, until in locks.items():
            if until > now.isoformat():
                self.audit(username, "login.locked", username, {"client": client, "locked": key, "until": until})
                who = "this account" if key == keys[0] else "this address"
                raise LockedOut(f"too many wrong passwords for {who}: try again after {until} "
                                "(or ask an admin to lift the lockout)")
        try:
            self.hasher.verify(row.password_hash if row else self._dummy, password)
        except VerificationError:
            self._count_failure(keys, now)
            self.audit(username, "login.failed", username, {"client": client})
            return None
        if row is None:
            return None
        token = secrets.token_urlsafe(32)
        with self.database.transaction() as connection:
            connection.execute(delete(sessions_table).where(sessions_table.c.expires_at < now.isoformat()))
            connection.execute(delete(failures_table).where(failures_table.c.key == keys[0]))
            connection.execute(sessions_table.insert().values(
                token_sha256=_sha(token), username=username, csrf=secrets.token_urlsafe(32),
                expires_at=(now + dt.timedelta(hours=SESSION_HOURS)).isoformat()))
            if self.hasher.check_needs_rehash(row.password_hash):
                connection.execute(update(users_table).where(users_table.c.username == username).values(
                    password_hash=self.hasher.hash(password)))
        self.audit(username, "login", username, {"client": client})
        return token

    def _count_failure(self, keys: tuple[str, str], now: dt.datetime) -> None:
        window = dt.timedelta(minutes=LOCKOUT_MINUTES)
        for key, limit in zip(keys, (ACCOUNT_FAILURES, CLIENT_FAILURES)):
            for _ in range(2):  # a concurrent first failure inserts the row: count again on it
                try:
                    with self.database.transaction() as connection:
                        row = connection.execute(select(failures_table).where(failures_table.c.key == key)).first()
                        if row is None:
                            connection.execute(failures_table.insert().values(key=key, failures=1,
                                                                              first_at=now.isoformat()))
                            failures = 1
                        else:
                            fresh = row.first_at < (now - window).isoformat()
                            failures = 1 if fresh else row.failures + 1
                            connection.execute(update(failures_table).where(failures_table.c.key == key).values(
                                failures=failures, first_at=now.isoformat() if fresh else row.first_at,
                                locked_until=None))
                        if failures >= limit:
                            connection.execute(update(failures_table).where(failures_table.c.key == key).values(
                                locked_until=(now + window).isoformat()))
                    break
                except IntegrityError:
                    continue

    def lockouts(self) -> dict[str, str]:
        """Locked accounts: user name -> locked until."""
        with self.database.reading() as connection:
            rows = connection.execute(select(failures_table).where(
                failures_table.c.key.startswith("account:") & (failures_table.c.locked_until > _now().isoformat())))
            return {row.key.removeprefix("account:"): row.locked_until for row in rows}

    def unlock(self, username: str, *, actor: str) -> None:
        with self.database.transaction() as connection:
            if connection.execute(delete(failures_table).where(
                    failures_table.c.key == f"account:{username}")).rowcount == 0:
                raise UserError(f"user {username!r} is not locked out")
        self.audit(actor, "user.unlock", username, {})

    def set_role(self, username: str, role: str, *, actor: str) -> None:
        if role not in ROLES:
            raise UserError(f"a role is one of {', '.join(ROLES)}, got {role!r}")
        with self.database.transaction() as connection:
            before = connection.execute(select(users_table.c.role).where(users_table.c.username == username)).first()
            if before is None:
                raise UserError(f"no user {username!r}")
            connection.execute(update(users_table).where(users_table.c.username == username).values(role=role))
        self.audit(actor, "user.role", username, {"from": before.role, "to": role})

    def change_password(self, username: str, current: str, new: str) -> None:
        """The user's own change: the current password must be right."""
        from argon2.exceptions import VerificationError

        if len(new) < MIN_PASSWORD:
            raise UserError(f"a password needs at least {MIN_PASSWORD} characters")
        with self.database.reading() as connection:
            row = connection.execute(select(users_table).where(users_table.c.username == username)).first()
        try:
            self.hasher.verify(row.password_hash if row else self._dummy, current)
        except VerificationError:
            self.audit(username, "password.refused", username, {})
            raise UserError("the current password is wrong; nothing changed") from None
        with self.database.transaction() as connection:
            connection.execute(update(users_table).where(users_table.c.username == username).values(
                password_hash=self.hasher.hash(new)))
        self.audit(username, "password.change", username, {})

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
        """One row (`fmeval.store.audit`); a user name from a form is cut to the column's size."""
        with self.database.transaction() as connection:
            record(connection, actor=_printable(username)[:MAX_USER] or "(empty)", action=action, target=target,
                   detail=detail)


def password_from_environment(variable: str) -> str:
    value = os.environ.get(variable)
    if value is None:
        raise UserError(f"--password-env {variable}: the variable is not set")
    if not value:
        raise UserError(f"--password-env {variable}: the variable is empty")
    return value
