"""Model cards in fmeval's store: each save an immutable version (author, time, diff against the
previous one), a checked lifecycle, optimistic versioning, an audit trail and events.

Lifecycle (SageMaker's statuses): Draft -> PendingReview -> Approved -> Archived; a card under
review goes back to Draft when rejected, and any card but an archived one may be archived.
Content is saved only in Draft; saving an Approved card makes a new Draft version (the approved
version stays as it was), and one under review must go back to Draft first.

Review actions (submit, approve, reject, archive) name the version they act on and its content
hash (`CardVersion.content_hash`, the SHA-256 of the version's canonical JSON): the reviewer's
verdict is bound to what they saw. An action on a version that is no longer the current one, or
no longer under review, is refused with `CardConflict`, which says who changed what since.

Separation of duties, per change: nobody may approve a version that holds changes of their own
since the last approved version, that is, nobody who wrote any version after the last approved
one, up to the one under review (every version, when none was approved yet). A clone carries the
changes of its source that were not approved, and so their authors (`carried_authors`).

Two editors saving the same card: each save names the version it was made from, and the second
gets a conflict that says who saved what since, instead of overwriting it.

Each change, its audit row (`fmeval.store.audit`) and its event (`fmeval.store.outbox`, one row per
registered webhook) commit in one transaction; delivery happens afterwards, from the outbox.
"""
from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, NoReturn

from sqlalchemy import Column, Index, Integer, String, Table, Text, delete, select, update
from sqlalchemy.exc import IntegrityError

from fmeval.errors import NotFound, UserError
from fmeval.governance.cards import ModelCard
from fmeval.store import OnStore
from fmeval.store.audit import check_user, record
from fmeval.store.outbox import enqueue
from fmeval.store.schema import metadata

MAX_NAME = 200
MAX_TEXT = 4000  # a note or a review comment
MAX_URL = 1000
STATUSES = ("Draft", "PendingReview", "Approved", "Archived")
TRANSITIONS = {"Draft": ("PendingReview", "Archived"), "PendingReview": ("Approved", "Draft", "Archived"),
               "Approved": ("Archived",), "Archived": ()}
REVIEW_ACTIONS = {"submit": "PendingReview", "approve": "Approved", "reject": "Draft", "archive": "Archived"}
"""Each review action and the status it moves a card to."""

cards_table = Table(
    "governance_cards", metadata,
    Column("name", String(MAX_NAME), primary_key=True),
    Column("status", String(20), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
    Column("approved_version", Integer),
    Column("approved_by", String(200)),
    Column("approved_at", String(40)),
)
versions_table = Table(
    "governance_card_versions", metadata,
    Column("name", String(MAX_NAME), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("status", String(20), nullable=False),
    Column("content", Text, nullable=False),
    Column("author", String(200), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("diff", Text, nullable=False),
    Column("note", Text),
    # read from the content at save, so that the registry never parses it
    Column("risk_rating", String(20)),
    Column("model_name", Text),
    Column("run_ids", Text),
    Column("carried_authors", Text),  # JSON list: who wrote the unapproved changes a clone took from its source
)
reviews_table = Table(
    "governance_reviews", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(MAX_NAME), nullable=False),
    Column("version", Integer, nullable=False),
    Column("action", String(20), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("time", String(40), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("comment", Text),
    Index("ix_governance_reviews_card", "name", "version"),
)
events_table = Table(
    "governance_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", String(40), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("card", String(MAX_NAME), nullable=False),
    Column("version", Integer),
    Column("actor", String(200), nullable=False),
    Column("payload", Text, nullable=False),
    Column("deliveries", Text, nullable=False),  # {"event_id", "webhooks"}: where the outbox sends it
    Index("ix_governance_events_card", "card"),
)
webhooks_table = Table(
    "governance_webhooks", metadata,
    Column("url", String(MAX_URL), primary_key=True),
    Column("created_at", String(40), nullable=False),
)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def default_actor() -> str:
    """Who acts when no one is named: FMEVAL_USER, else the login name."""
    return os.environ.get("FMEVAL_USER") or os.environ.get("USER") or "unknown"


def _text(card: ModelCard) -> str:
    return json.dumps(card.to_sagemaker(), indent=2, sort_keys=True)


def content_sha256(content: str | ModelCard) -> str:
    """SHA-256 of a card's canonical JSON (SageMaker's content, keys sorted, no spaces, UTF-8)."""
    data = json.loads(content) if isinstance(content, str) else content.to_sagemaker()
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def card_diff(before: str, after: str, *, old: str, new: str) -> str:
    """A unified diff of two cards' JSON."""
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        fromfile=old, tofile=new))


def card_owner(name: str, run_ids: Iterable[str], model_name: str | None,
               model_of_run: Callable[[str], str | None]) -> str:
    """The model a card belongs to (the registry's key): the model of the first of its runs the
    run index knows, else the model its overview names, else `card:<name>`."""
    owner = next((model for model in map(model_of_run, run_ids) if model), None)
    return owner or model_name or f"card:{name}"


def _summary(card: ModelCard) -> dict[str, Any]:
    """What the registry shows of a version, kept beside its content."""
    run_ids = [job.metadata.get("fmeval_run_id") for job in card.evaluation_details]
    return {"risk_rating": card.intended_uses.risk_rating, "model_name": card.model_overview.model_name,
            "run_ids": json.dumps([run_id for run_id in run_ids if run_id])}


def _bounded(value: str | None, what: str, limit: int = MAX_TEXT) -> str | None:
    if value is not None and (not isinstance(value, str) or len(value) > limit):
        raise UserError(f"{what} is text of at most {limit} characters, got {len(value) if isinstance(value, str) else value!r}")
    return value


def check_name(name: str) -> str:
    """A card name: 1 to 200 printable characters, without '/' or surrounding spaces."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME or "/" in name or not name.isprintable() \
            or name != name.strip():
        shown = name if not isinstance(name, str) or len(name) <= 40 else name[:40] + "..."
        raise UserError(f"a card name is 1 to {MAX_NAME} printable characters without '/' or surrounding spaces, "
                        f"got {shown!r}")
    return name


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
    content_hash: str
    reviews: list[dict[str, Any]]  # the review actions on this version, oldest first (with comments)


@dataclass
class StoredCard:
    name: str
    status: str
    version: int
    created_at: str
    updated_at: str
    approved_version: int | None
    approved_by: str | None
    approved_at: str | None


class CardConflict(UserError):
    """The card changed since the version an edit or a review action was made on (HTTP 409)."""


class CardStore(OnStore):
    """Model cards, their versions, reviews and events. `store`: a Database, a SQLite file, a URL,
    or None for fmeval's default store."""

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
            return self._version(row, self._reviews(connection, name).get(number, []))

    def versions(self, name: str) -> list[CardVersion]:
        self.get(name)
        query = select(versions_table).where(versions_table.c.name == name).order_by(versions_table.c.version)
        with self.database.reading() as connection:
            reviews = self._reviews(connection, name)
            return [self._version(row, reviews.get(row.version, [])) for row in connection.execute(query)]

    def diff(self, name: str, old: int, new: int) -> str:
        return card_diff(_text(self.version(name, old).card), _text(self.version(name, new).card),
                         old=f"{name} v{old}", new=f"{name} v{new}")

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The event log (oldest first), each event with its deliveries from the outbox."""
        from fmeval.store.outbox import deliveries

        query = select(events_table).order_by(events_table.c.id)
        if name:
            query = query.where(events_table.c.card == name)
        with self.database.reading() as connection:
            events = [{**row._mapping, "payload": json.loads(row.payload)} for row in connection.execute(query)]
        sent: dict[str, dict[str, Any]] = {}
        for row in deliveries(self.database, [e["payload"].get("event_id") for e in events]):
            sent.setdefault(row["event_id"], {})[row["url"]] = {
                key: row[key] for key in ("status", "attempts", "last_status", "last_error", "finished_at")}
        return [{**event, "deliveries": sent.get(event["payload"].get("event_id"), {})} for event in events]

    @staticmethod
    def _reviews(connection: Any, name: str) -> dict[int, list[dict[str, Any]]]:
        reviews: dict[int, list[dict[str, Any]]] = {}
        for row in connection.execute(select(reviews_table).where(reviews_table.c.name == name)
                                      .order_by(reviews_table.c.id)):
            reviews.setdefault(row.version, []).append(
                {key: row._mapping[key] for key in ("action", "actor", "time", "content_hash", "comment")})
        return reviews

    @staticmethod
    def _version(row: Any, reviews: list[dict[str, Any]]) -> CardVersion:
        values = {key: row._mapping[key] for key in ("name", "version", "status", "author", "created_at", "diff", "note")}
        return CardVersion(**values, card=ModelCard.from_stored(json.loads(row.content)),
                           content_hash=content_sha256(row.content), reviews=reviews)

    # -- writing ---------------------------------------------------------------------------------------
    def create(self, name: str, card: ModelCard, *, author: str | None = None, note: str | None = None,
               carried_authors: Iterable[str] = ()) -> CardVersion:
        check_name(name)
        author, now, text = self._actor(author), _now(), _text(card)
        _bounded(note, "a note")
        carried = sorted(set(carried_authors))
        try:
            with self.database.transaction() as connection:
                connection.execute(cards_table.insert().values(name=name, status="Draft", version=1, created_at=now,
                                                               updated_at=now))
                connection.execute(versions_table.insert().values(
                    name=name, version=1, status="Draft", content=text, author=author, created_at=now,
                    diff=card_diff("", text, old="(none)", new=f"{name} v1"), note=note,
                    carried_authors=json.dumps(carried) if carried else None, **_summary(card)))
                self._changed(connection, "card.create", "card.created", name, 1, author, card,
                              {"status": "Draft", "note": note})
        except IntegrityError:  # the same name created at once elsewhere (a server database's race)
            raise CardConflict(f"a model card named {name!r} exists; edit it, or pick another name") from None
        return self.version(name, 1)

    def clone(self, source: str, name: str, *, author: str | None = None) -> CardVersion:
        """A new Draft card with the latest content of `source`, carrying the authors of the source's changes
        since its last approved version (all of them, when none was approved), for the approval rule."""
        stored, latest = self.get(source), self.version(source)
        with self.database.reading() as connection:
            carried = self._authors(connection, source, stored.approved_version or 0, latest.version)
        return self.create(name, latest.card, author=author, note=f"cloned from {source}", carried_authors=carried)

    def save(self, name: str, card: ModelCard, *, based_on: int, author: str | None = None,
             note: str | None = None) -> CardVersion:
        """A new version of the card's content, made from version `based_on`."""
        author, now, text = self._actor(author), _now(), _text(card)
        _bounded(note, "a note")
        if isinstance(based_on, bool) or not isinstance(based_on, int) or based_on < 1:
            raise UserError(f"based_on is a version number (an integer >= 1), got {based_on!r}")
        try:
            with self.database.transaction() as connection:
                current = self._current(connection, name)
                self._check_current(name, current, based_on, connection)
                if current.status in ("PendingReview", "Archived"):
                    raise UserError(f"model card {name!r} is {current.status}: "
                                    + ("reject it back to Draft to edit it" if current.status == "PendingReview"
                                       else "an archived card is not edited; clone it"))
                previous = connection.execute(select(versions_table.c.content).where(
                    (versions_table.c.name == name) & (versions_table.c.version == current.version))).scalar_one()
                if previous == text:
                    raise UserError(f"nothing changed in model card {name!r} (version {current.version})")
                version = current.version + 1
                connection.execute(versions_table.insert().values(
                    name=name, version=version, status="Draft", content=text, author=author, created_at=now,
                    diff=card_diff(previous, text, old=f"{name} v{current.version}", new=f"{name} v{version}"),
                    note=note, **_summary(card)))
                connection.execute(update(cards_table).where(cards_table.c.name == name).values(
                    version=version, status="Draft", updated_at=now))
                self._changed(connection, "card.edit", "card.version", name, version, author, card,
                              {"status": "Draft", "from_status": current.status, "note": note})
        except IntegrityError:  # another save of the same version won the race
            return self._raced(name, based_on)
        return self.version(name, version)

    def submit(self, name: str, *, version: int, content_hash: str, actor: str | None = None,
               comment: str | None = None) -> StoredCard:
        """Draft -> PendingReview, for the version named (the current one)."""
        return self._review(name, "submit", version=version, content_hash=content_hash, actor=actor, comment=comment)

    def approve(self, name: str, *, version: int, content_hash: str, actor: str | None = None,
                comment: str | None = None) -> StoredCard:
        """PendingReview -> Approved, for the version under review, by someone who wrote none of
        the versions since the last approved one."""
        return self._review(name, "approve", version=version, content_hash=content_hash, actor=actor, comment=comment)

    def reject(self, name: str, *, version: int, content_hash: str, actor: str | None = None,
               comment: str | None = None) -> StoredCard:
        """PendingReview -> Draft, for the version under review."""
        return self._review(name, "reject", version=version, content_hash=content_hash, actor=actor, comment=comment)

    def archive(self, name: str, *, version: int, content_hash: str, actor: str | None = None,
                comment: str | None = None) -> StoredCard:
        """Any status but Archived -> Archived (final), for the current version."""
        return self._review(name, "archive", version=version, content_hash=content_hash, actor=actor, comment=comment)

    def _review(self, name: str, action: str, *, version: int, content_hash: str, actor: str | None,
                comment: str | None) -> StoredCard:
        actor, status = self._actor(actor), REVIEW_ACTIONS[action]
        _bounded(comment, "a review comment")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise UserError(f"{action}: the version acted on is an integer >= 1, got {version!r}")
        if not isinstance(content_hash, str) or len(content_hash) != 64:
            raise UserError(f"{action}: the content hash is the version's 64-digit SHA-256, got {content_hash!r}")
        with self.database.transaction() as connection:
            current = self._current(connection, name)
            if current.version != version:
                raise CardConflict(f"{action} of model card {name!r} v{version} refused: it is no longer the current "
                                   f"version; since then: {self._since(connection, name, version)}. Open v{current.version} "
                                   f"and review it")
            row = connection.execute(select(versions_table.c.content, versions_table.c.author).where(
                (versions_table.c.name == name) & (versions_table.c.version == version))).one()
            seen = content_sha256(row.content)
            if seen != content_hash:
                raise CardConflict(f"{action} of model card {name!r} v{version} refused: its content hash is "
                                   f"{seen[:12]}..., not the {content_hash[:12]}... you acted on; "
                                   f"{self._since(connection, name, version)}")
            if status not in TRANSITIONS[current.status]:
                if action in ("approve", "reject") and current.status != "Archived":
                    raise CardConflict(f"{action} of model card {name!r} v{version} refused: it is no longer under "
                                       f"review ({current.status}); {self._since(connection, name, version)}")
                allowed = ", ".join(TRANSITIONS[current.status]) or "none (archived cards are final)"
                raise UserError(f"model card {name!r} is {current.status}; it can move to: {allowed}")
            now = _now()
            values: dict[str, Any] = {"status": status, "updated_at": now}
            if action == "approve":
                self._check_duties(connection, name, current, actor)
                # to the microsecond: the latest approval across a model's cards governs it
                values.update(approved_version=version, approved_by=actor,
                              approved_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds"))
            connection.execute(update(cards_table).where(cards_table.c.name == name).values(**values))
            connection.execute(reviews_table.insert().values(name=name, version=version, action=action, actor=actor,
                                                             time=now, content_hash=seen, comment=comment))
            card = ModelCard.from_stored(json.loads(row.content))
            self._changed(connection, f"card.{action}", f"card.{status.lower()}", name, version, actor, card,
                          {"status": status, "from_status": current.status, "content_hash": seen, "comment": comment})
        return self.get(name)

    def delete(self, name: str, *, actor: str | None = None) -> StoredCard:
        actor = self._actor(actor)
        with self.database.transaction() as connection:
            current = self._current(connection, name)
            content = connection.execute(select(versions_table.c.content).where(
                (versions_table.c.name == name) & (versions_table.c.version == current.version))).scalar_one()
            self._changed(connection, "card.delete", "card.deleted", name, current.version, actor,
                          ModelCard.from_stored(json.loads(content)), {"status": current.status})
            for table in (reviews_table, versions_table, cards_table):
                connection.execute(delete(table).where(table.c.name == name))
        return StoredCard(**current._mapping)

    # -- checks ------------------------------------------------------------------------------------------
    @staticmethod
    def _actor(actor: str | None) -> str:
        return check_user(actor or default_actor(), "the acting user")

    @staticmethod
    def _current(connection: Any, name: str) -> Any:
        """The card's row, locked for this transaction on a server database (SQLite's writers queue)."""
        current = connection.execute(select(cards_table).where(cards_table.c.name == name).with_for_update()).first()
        if current is None:
            raise NotFound(f"no model card named {name!r}")
        return current

    def _raced(self, name: str, based_on: int) -> NoReturn:
        with self.database.reading() as connection:
            raise self._conflict(connection, name, based_on)

    def _check_current(self, name: str, current: Any, based_on: int, connection: Any) -> None:
        if current.version != based_on:
            raise self._conflict(connection, name, based_on)

    def _conflict(self, connection: Any, name: str, based_on: int) -> CardConflict:
        latest = connection.execute(select(cards_table.c.version).where(cards_table.c.name == name)).scalar()
        return CardConflict(f"model card {name!r} changed since version {based_on} "
                            f"({self._since(connection, name, based_on)}): your edit was not saved; open version "
                            f"{latest} and make it again")

    @staticmethod
    def _since(connection: Any, name: str, version: int) -> str:
        """Who changed what since `version` was made: later versions and review actions, in order."""
        made = connection.execute(select(versions_table.c.created_at).where(
            (versions_table.c.name == name) & (versions_table.c.version == version))).scalar()
        changes = [(t, f"v{v} saved by {a} at {t}") for v, a, t in connection.execute(
            select(versions_table.c.version, versions_table.c.author, versions_table.c.created_at).where(
                (versions_table.c.name == name) & (versions_table.c.version > version)))]
        past = {"submit": "submitted", "approve": "approved", "reject": "rejected", "archive": "archived"}
        changes += [(t, f"v{v} {past[a]} by {who} at {t}" + (f" ({c!r})" if c else "")) for v, a, who, t, c in
                    connection.execute(select(reviews_table.c.version, reviews_table.c.action, reviews_table.c.actor,
                                              reviews_table.c.time, reviews_table.c.comment).where(
                        (reviews_table.c.name == name) & (reviews_table.c.version >= version)
                        & (reviews_table.c.time >= (made or ""))).order_by(reviews_table.c.id))]
        return "; ".join(text for _, text in sorted(changes, key=lambda change: change[0])) or "no change recorded"

    @staticmethod
    def _authors(connection: Any, name: str, since: int, until: int) -> dict[str, list[str]]:
        """Who wrote the changes of versions since+1..until, and which (`v2`; `v1's source`: a change a
        clone carried)."""
        authors: dict[str, list[str]] = {}
        for version, author, carried in connection.execute(
                select(versions_table.c.version, versions_table.c.author, versions_table.c.carried_authors).where(
                    (versions_table.c.name == name) & (versions_table.c.version > since)
                    & (versions_table.c.version <= until)).order_by(versions_table.c.version)):
            authors.setdefault(author, []).append(f"v{version}")
            for writer in json.loads(carried or "[]"):
                if writer != author:
                    authors.setdefault(writer, []).append(f"v{version}'s source (cloned)")
        return authors

    @classmethod
    def _check_duties(cls, connection: Any, name: str, current: Any, actor: str) -> None:
        """Separation of duties per change: the approver wrote none of the versions since the last
        approved one (or of any version, when none was approved), nor the changes a clone carried."""
        since = current.approved_version or 0
        own = cls._authors(connection, name, since, current.version).get(actor)
        if own:
            basis = f"since the last approved version (v{since})" if since else "and no version was approved before"
            raise UserError(f"{actor} wrote {', '.join(own)} of {name!r}, changes under review {basis}: "
                            "someone else must approve it")

    # -- events ------------------------------------------------------------------------------------------
    def add_webhook(self, url: str, *, actor: str | None = None) -> None:
        from fmeval.webhooks import check_url

        check_url(url)
        if len(url) > MAX_URL:
            raise UserError(f"a webhook URL is at most {MAX_URL} characters, got {len(url)}")
        actor = self._actor(actor)
        try:
            with self.database.transaction() as connection:
                connection.execute(webhooks_table.insert().values(url=url, created_at=_now()))
                record(connection, actor=actor, action="webhook.add", target="governance webhooks", detail={})
        except IntegrityError:
            raise UserError("that webhook URL is registered already") from None

    def webhooks(self) -> list[str]:
        with self.database.reading() as connection:
            return [row.url for row in connection.execute(select(webhooks_table).order_by(webhooks_table.c.url))]

    def remove_webhook(self, url: str, *, actor: str | None = None) -> None:
        actor = self._actor(actor)
        with self.database.transaction() as connection:
            if connection.execute(delete(webhooks_table).where(webhooks_table.c.url == url)).rowcount == 0:
                raise UserError("that URL is not a registered webhook; see `fmeval cards webhooks list`")
            record(connection, actor=actor, action="webhook.remove", target="governance webhooks", detail={})

    def _changed(self, connection: Any, action: str, kind: str, name: str, version: int, actor: str, card: ModelCard,
                 detail: dict[str, Any]) -> None:
        """The audit row and the event of a change, in the change's transaction."""
        from fmeval.runs.store import runs_table

        summary = _summary(card)
        run_ids = json.loads(summary["run_ids"])
        models = {row.run_id: row.model for row in connection.execute(
            select(runs_table.c.run_id, runs_table.c.model).where(runs_table.c.run_id.in_(run_ids)))} if run_ids else {}
        model = card_owner(name, run_ids, summary["model_name"], models.get)
        detail = {"version": version, **{k: v for k, v in detail.items() if v is not None}}
        record(connection, actor=actor, action=action, target=name, detail=detail, model=model)
        urls = [row.url for row in connection.execute(select(webhooks_table.c.url).order_by(webhooks_table.c.url))]
        event = {"kind": kind, "card": name, "version": version, "actor": actor, "time": _now(), "model": model,
                 **detail}
        event_id = enqueue(connection, topic=kind, payload=event, urls=urls)
        connection.execute(events_table.insert().values(
            time=event["time"], kind=kind, card=name, version=version, actor=actor,
            payload=json.dumps({**event, "event_id": event_id}),
            deliveries=json.dumps({"event_id": event_id, "webhooks": urls})))
