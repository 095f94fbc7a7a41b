"""Model cards in fmeval's store: each save an immutable version (author, time, diff against the
previous one), a checked lifecycle, optimistic versioning, and events.

Lifecycle (SageMaker's statuses): Draft -> PendingReview -> Approved -> Archived; a card under
review goes back to Draft when rejected, and any card but an archived one may be archived.
Content is saved only in Draft; saving an Approved card makes a new Draft version (the approved
version stays as it was), and one under review must go back to Draft first. The approver must
not be the author of the version under review.

Two editors saving the same card: each save names the version it was made from, and the second
gets a conflict that says who saved what since, instead of overwriting it.

Every new version and change of status is an event, kept in the store's event log and POSTed as
JSON to each registered webhook (retried with backoff; the delivery is recorded with the event).
"""
from __future__ import annotations

import datetime as dt
import difflib
import json
import os
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Integer, String, Table, Text, delete, select, update
from sqlalchemy.exc import IntegrityError

from fmeval.errors import NotFound, UserError
from fmeval.governance.cards import ModelCard
from fmeval.store import OnStore
from fmeval.store.schema import metadata

STATUSES = ("Draft", "PendingReview", "Approved", "Archived")
TRANSITIONS = {"Draft": ("PendingReview", "Archived"), "PendingReview": ("Approved", "Draft", "Archived"),
               "Approved": ("Archived",), "Archived": ()}

cards_table = Table(
    "governance_cards", metadata,
    Column("name", String(200), primary_key=True),
    Column("status", String(20), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
    Column("approved_version", Integer),
    Column("approved_by", String(200)),
)
versions_table = Table(
    "governance_card_versions", metadata,
    Column("name", String(200), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("status", String(20), nullable=False),
    Column("content", Text, nullable=False),
    Column("author", String(200), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("diff", Text, nullable=False),
    Column("note", Text),
)
events_table = Table(
    "governance_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", String(40), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("card", String(200), nullable=False),
    Column("version", Integer),
    Column("actor", String(200), nullable=False),
    Column("payload", Text, nullable=False),
    Column("deliveries", Text, nullable=False),
)
webhooks_table = Table(
    "governance_webhooks", metadata,
    Column("url", String(1000), primary_key=True),
    Column("created_at", String(40), nullable=False),
)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def default_actor() -> str:
    """Who acts when no one is named: FMEVAL_USER, else the login name."""
    return os.environ.get("FMEVAL_USER") or os.environ.get("USER") or "unknown"


def _text(card: ModelCard) -> str:
    return json.dumps(card.to_sagemaker(), indent=2, sort_keys=True)


def card_diff(before: str, after: str, *, old: str, new: str) -> str:
    """A unified diff of two cards' JSON."""
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        fromfile=old, tofile=new))


@dataclass
class CardVersion:
    name: str
    version: int
    status: str
    card: ModelCard
    author: str
    created_at: str
    diff: str
    note: str | None


@dataclass
class StoredCard:
    name: str
    status: str
    version: int
    created_at: str
    updated_at: str
    approved_version: int | None
    approved_by: str | None


class CardConflict(UserError):
    """The card changed since the version an edit was made from."""


class CardStore(OnStore):
    """Model cards, their versions and events. `store`: a Database, a SQLite file, a URL, or None
    for fmeval's default store."""

    # -- reading ---------------------------------------------------------------------------------------
    def get(self, name: str) -> StoredCard:
        with self.database.reading() as connection:
            row = connection.execute(select(cards_table).where(cards_table.c.name == name)).first()
        if row is None:
            raise NotFound(f"no model card named {name!r}; see `fmeval cards list`")
        return StoredCard(**row._mapping)

    def list(self, *, status: str | None = None) -> list[StoredCard]:
        query = select(cards_table).order_by(cards_table.c.name)
        if status:
            query = query.where(cards_table.c.status == status)
        with self.database.reading() as connection:
            return [StoredCard(**row._mapping) for row in connection.execute(query)]

    def version(self, name: str, version: int | None = None) -> CardVersion:
        """One version of a card (the latest by default)."""
        number = version if version is not None else self.get(name).version
        query = select(versions_table).where((versions_table.c.name == name) & (versions_table.c.version == number))
        with self.database.reading() as connection:
            row = connection.execute(query).first()
        if row is None:
            raise NotFound(f"model card {name!r} has no version {number}; see `fmeval cards versions {name}`")
        return self._version(row)

    def versions(self, name: str) -> list[CardVersion]:
        self.get(name)
        query = select(versions_table).where(versions_table.c.name == name).order_by(versions_table.c.version)
        with self.database.reading() as connection:
            return [self._version(row) for row in connection.execute(query)]

    def diff(self, name: str, old: int, new: int) -> str:
        return card_diff(_text(self.version(name, old).card), _text(self.version(name, new).card),
                         old=f"{name} v{old}", new=f"{name} v{new}")

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        query = select(events_table).order_by(events_table.c.id)
        if name:
            query = query.where(events_table.c.card == name)
        with self.database.reading() as connection:
            return [{**row._mapping, "payload": json.loads(row.payload), "deliveries": json.loads(row.deliveries)}
                    for row in connection.execute(query)]

    @staticmethod
    def _version(row: Any) -> CardVersion:
        values = dict(row._mapping)
        values["card"] = ModelCard.model_validate(json.loads(values.pop("content")))
        return CardVersion(**values)

    # -- writing ---------------------------------------------------------------------------------------
    def create(self, name: str, card: ModelCard, *, author: str | None = None, note: str | None = None) -> CardVersion:
        if not name or len(name) > 200 or "/" in name:
            raise UserError(f"a card name is 1 to 200 characters without '/', got {name!r}")
        author, now = author or default_actor(), _now()
        try:
            with self.database.transaction() as connection:
                connection.execute(cards_table.insert().values(name=name, status="Draft", version=1, created_at=now,
                                                               updated_at=now))
                connection.execute(versions_table.insert().values(
                    name=name, version=1, status="Draft", content=_text(card), author=author, created_at=now,
                    diff=card_diff("", _text(card), old="(none)", new=f"{name} v1"), note=note))
        except IntegrityError:
            raise UserError(f"a model card named {name!r} exists; edit it, or pick another name") from None
        self._emit("card.created", name, 1, author, {"status": "Draft"})
        return self.version(name, 1)

    def save(self, name: str, card: ModelCard, *, based_on: int, author: str | None = None,
             note: str | None = None) -> CardVersion:
        """A new version of the card's content, made from version `based_on`."""
        author, now = author or default_actor(), _now()
        with self.database.transaction() as connection:
            current = connection.execute(select(cards_table).where(cards_table.c.name == name)).first()
            if current is None:
                raise NotFound(f"no model card named {name!r}")
            self._check_current(name, current, based_on, connection)
            if current.status in ("PendingReview", "Archived"):
                raise UserError(f"model card {name!r} is {current.status}: "
                                + ("reject it back to Draft to edit it" if current.status == "PendingReview"
                                   else "an archived card is not edited; clone it"))
            previous = connection.execute(select(versions_table.c.content).where(
                (versions_table.c.name == name) & (versions_table.c.version == current.version))).scalar_one()
            if previous == _text(card):
                raise UserError(f"nothing changed in model card {name!r} (version {current.version})")
            version = current.version + 1
            connection.execute(versions_table.insert().values(
                name=name, version=version, status="Draft", content=_text(card), author=author, created_at=now,
                diff=card_diff(previous, _text(card), old=f"{name} v{current.version}", new=f"{name} v{version}"),
                note=note))
            connection.execute(update(cards_table).where(cards_table.c.name == name).values(
                version=version, status="Draft", updated_at=now))
        self._emit("card.version", name, version, author, {"status": "Draft", "from_status": current.status})
        return self.version(name, version)

    def transition(self, name: str, status: str, *, actor: str | None = None, based_on: int | None = None,
                   note: str | None = None) -> StoredCard:
        """Move the card to `status`, as the lifecycle allows; approving needs someone other than
        the author of the version under review."""
        if status not in STATUSES:
            raise UserError(f"a card's status is one of {', '.join(STATUSES)}, got {status!r}")
        actor = actor or default_actor()
        with self.database.transaction() as connection:
            current = connection.execute(select(cards_table).where(cards_table.c.name == name)).first()
            if current is None:
                raise NotFound(f"no model card named {name!r}")
            if based_on is not None:
                self._check_current(name, current, based_on, connection)
            if status not in TRANSITIONS[current.status]:
                allowed = ", ".join(TRANSITIONS[current.status]) or "none (archived cards are final)"
                raise UserError(f"model card {name!r} is {current.status}; it can move to: {allowed}")
            values: dict[str, Any] = {"status": status, "updated_at": _now()}
            if status == "Approved":
                author = connection.execute(select(versions_table.c.author).where(
                    (versions_table.c.name == name) & (versions_table.c.version == current.version))).scalar_one()
                if author == actor:
                    raise UserError(f"{actor} wrote version {current.version} of {name!r}: someone else must approve it")
                values.update(approved_version=current.version, approved_by=actor)
            connection.execute(update(cards_table).where(cards_table.c.name == name).values(**values))
        self._emit(f"card.{status.lower()}", name, current.version, actor,
                   {"status": status, "from_status": current.status, "note": note})
        return self.get(name)

    def delete(self, name: str, *, actor: str | None = None) -> StoredCard:
        card = self.get(name)
        with self.database.transaction() as connection:
            connection.execute(delete(versions_table).where(versions_table.c.name == name))
            connection.execute(delete(cards_table).where(cards_table.c.name == name))
        self._emit("card.deleted", name, card.version, actor or default_actor(), {"status": card.status})
        return card

    def _check_current(self, name: str, current: Any, based_on: int, connection: Any) -> None:
        if current.version == based_on:
            return
        later = connection.execute(select(versions_table.c.version, versions_table.c.author,
                                          versions_table.c.created_at).where(
            (versions_table.c.name == name) & (versions_table.c.version > based_on)).order_by(versions_table.c.version))
        since = "; ".join(f"v{v} by {a} at {t}" for v, a, t in later) or f"now version {current.version}"
        raise CardConflict(f"model card {name!r} changed since version {based_on} ({since}): your edit was not "
                           f"saved; open version {current.version} and make it again")

    # -- events ------------------------------------------------------------------------------------------
    def add_webhook(self, url: str) -> None:
        if not url.startswith(("http://", "https://")):
            raise UserError(f"a webhook is an http(s) URL, got {url!r}")
        try:
            with self.database.transaction() as connection:
                connection.execute(webhooks_table.insert().values(url=url, created_at=_now()))
        except IntegrityError:
            raise UserError(f"{url} is registered already") from None

    def webhooks(self) -> list[str]:
        with self.database.reading() as connection:
            return [row.url for row in connection.execute(select(webhooks_table).order_by(webhooks_table.c.url))]

    def remove_webhook(self, url: str) -> None:
        with self.database.transaction() as connection:
            if connection.execute(delete(webhooks_table).where(webhooks_table.c.url == url)).rowcount == 0:
                raise UserError(f"{url} is not a registered webhook")

    def _emit(self, kind: str, card: str, version: int | None, actor: str, payload: dict[str, Any]) -> None:
        from fmeval.monitoring.alerts import post_webhook

        event = {"kind": kind, "card": card, "version": version, "actor": actor, "time": _now(), **payload}
        deliveries = {url: post_webhook(url, event, attempts=4, backoff_s=0.5) for url in self.webhooks()}
        with self.database.transaction() as connection:
            connection.execute(events_table.insert().values(
                time=event["time"], kind=kind, card=card, version=version, actor=actor, payload=json.dumps(event),
                deliveries=json.dumps({url: {k: v for k, v in d.items() if k in ("delivered", "attempts", "status")}
                                       for url, d in deliveries.items()})))
