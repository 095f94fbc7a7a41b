"""The transactional outbox: events written in the same transaction as the change they tell of,
and delivered to webhooks afterwards, so that a change is never without its event and an event
never tells of a change that did not commit.

`enqueue(connection, ...)` adds one row per destination inside the caller's transaction.
Delivery (`deliver_pending`, one pass; `OutboxWorker`, a background thread) claims due rows,
POSTs each once, and records the outcome: delivered, or another attempt scheduled with the
shared retry policy (`fmeval.retry.RetryPolicy`, honouring Retry-After), or given up (a final
status, or the retries spent), with the last error. A process killed mid-delivery leaves its
claim to expire, and the row is sent again: delivery is at least once, and every event carries
an id (`event_id` in the body and the `X-Fmeval-Event-Id` header) by which receivers drop
duplicates.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import random
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from sqlalchemy import Column, Index, Integer, String, Table, Text, UniqueConstraint, select, update

from fmeval.retry import RetryPolicy
from fmeval.store.schema import metadata

logger = logging.getLogger("fmeval.outbox")

EVENT_ID_HEADER = "X-Fmeval-Event-Id"
PENDING, DELIVERED, GAVE_UP = "pending", "delivered", "gave_up"
DELIVERY_POLICY = RetryPolicy(max_retries=5, base_delay_s=0.5, max_delay_s=60.0)
"""Six attempts in all, over about a minute at most (full jitter)."""
CLAIM_MARGIN_S = 5.0

outbox_table = Table(
    "store_outbox", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False),
    Column("topic", String(100), nullable=False),
    Column("url", String(1000), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", String(40), nullable=False),
    Column("claimed_until", String(40)),
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("finished_at", String(40)),
    UniqueConstraint("event_id", "url", name="uq_store_outbox_event_url"),
    Index("ix_store_outbox_due", "status", "next_attempt_at"),
)


def _stamp(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def enqueue(connection: Any, *, topic: str, payload: dict[str, Any], urls: Iterable[str]) -> str:
    """Add an event for each URL inside the caller's transaction; its id (also put in the payload
    as `event_id`)."""
    event_id = uuid.uuid4().hex
    body = json.dumps({**payload, "event_id": event_id}, default=str)
    stamp = _stamp(_now())
    rows = [{"event_id": event_id, "topic": topic, "url": url, "payload": body, "created_at": stamp, "status": PENDING,
             "attempts": 0, "next_attempt_at": stamp} for url in dict.fromkeys(urls)]
    if rows:
        connection.execute(outbox_table.insert(), rows)
    return event_id


@dataclass(frozen=True)
class Delivery:
    """A row's state after an attempt: `status` pending (another attempt at `next_attempt_at`),
    delivered or gave_up."""

    event_id: str
    url: str
    status: str
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: str | None


def deliveries(database: Any, event_ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Each outbox row (without its body), oldest first; only those of `event_ids` when given."""
    query = select(*(c for c in outbox_table.c if c.name != "payload")).order_by(outbox_table.c.id)
    if event_ids is not None:
        query = query.where(outbox_table.c.event_id.in_(list(event_ids)))
    with database.reading() as connection:
        return [dict(row._mapping) for row in connection.execute(query)]


def _claim(database: Any, row_id: int, now: dt.datetime, timeout_s: float) -> bool:
    """Take a due row for one attempt; False when another deliverer holds it or finished it."""
    stamp = _stamp(now)
    with database.transaction() as connection:
        taken = connection.execute(update(outbox_table).where(
            (outbox_table.c.id == row_id) & (outbox_table.c.status == PENDING)
            & ((outbox_table.c.claimed_until.is_(None)) | (outbox_table.c.claimed_until < stamp))).values(
            claimed_until=_stamp(now + dt.timedelta(seconds=timeout_s + CLAIM_MARGIN_S))))
        return taken.rowcount == 1


def deliver_pending(database: Any, *, policy: RetryPolicy = DELIVERY_POLICY, timeout_s: float = 10.0,
                    event_ids: Sequence[str] | None = None, limit: int = 100, deadline: float | None = None,
                    rng: random.Random | None = None) -> list[Delivery]:
    """One pass: every due row (of `event_ids`, when given) is claimed, POSTed once and its outcome
    recorded; no row is started after `deadline` (a `time.monotonic()` value), and after a failed
    attempt to a URL, its other rows wait for the next pass (a URL that never answers costs one
    timeout per pass, not one per event). Returns the rows attempted, in order."""
    from fmeval.webhooks import post_once

    rng = rng or random.Random()
    now = _now()
    query = select(outbox_table.c.id, outbox_table.c.event_id, outbox_table.c.url, outbox_table.c.payload,
                   outbox_table.c.attempts).where(
        (outbox_table.c.status == PENDING) & (outbox_table.c.next_attempt_at <= _stamp(now))).order_by(
        outbox_table.c.id).limit(limit)
    if event_ids is not None:
        query = query.where(outbox_table.c.event_id.in_(list(event_ids)))
    with database.reading() as connection:
        due = list(connection.execute(query))
    done, failing = [], set()
    for row in due:
        if row.url in failing or (deadline is not None and time.monotonic() >= deadline):
            continue
        if not _claim(database, row.id, _now(), timeout_s):
            continue
        try:
            outcome = post_once(row.url, json.loads(row.payload), headers={EVENT_ID_HEADER: row.event_id},
                                timeout_s=timeout_s)
        except Exception as exc:  # noqa: BLE001  (a URL the poster refuses: no attempt will do better)
            outcome_status, http_status, error, retry_after = GAVE_UP, None, f"{type(exc).__name__}: {exc}", None
        else:
            http_status, error, retry_after = outcome.status, outcome.error, outcome.retry_after
            if outcome.delivered:
                outcome_status = DELIVERED
            elif outcome.retryable and row.attempts < policy.max_retries:
                outcome_status = PENDING
            else:
                outcome_status = GAVE_UP
        attempts = row.attempts + 1
        finished = _now()
        values: dict[str, Any] = {"status": outcome_status, "attempts": attempts, "last_status": http_status,
                                  "last_error": error, "claimed_until": None}
        if outcome_status == PENDING:
            values["next_attempt_at"] = _stamp(finished + dt.timedelta(
                seconds=policy.delay(row.attempts, retry_after, rng)))
        else:
            values["finished_at"] = _stamp(finished)
        with database.transaction() as connection:
            connection.execute(update(outbox_table).where(outbox_table.c.id == row.id).values(**values))
        if outcome_status != DELIVERED:
            failing.add(row.url)
        if outcome_status == GAVE_UP:
            logger.warning("event %s to %s: gave up after %d attempt(s): %s", row.event_id,
                           _safe(row.url), attempts, error)
        done.append(Delivery(row.event_id, row.url, outcome_status, attempts, http_status, error,
                             values.get("next_attempt_at")))
    return done


def _safe(url: str) -> str:
    from fmeval.webhooks import safe_url

    return safe_url(url)


def _next_due(database: Any, event_ids: Sequence[str] | None = None) -> dt.datetime | None:
    """When the next pending row may be attempted: its retry time, or the end of another
    deliverer's claim on it."""
    query = select(outbox_table.c.next_attempt_at, outbox_table.c.claimed_until).where(outbox_table.c.status == PENDING)
    if event_ids is not None:
        query = query.where(outbox_table.c.event_id.in_(list(event_ids)))
    with database.reading() as connection:
        times = [max(row.next_attempt_at, row.claimed_until or "") for row in connection.execute(query)]
    return dt.datetime.fromisoformat(min(times)) if times else None


def settle(database: Any, event_ids: Sequence[str] | None = None, *, within_s: float,
           policy: RetryPolicy = DELIVERY_POLICY, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """Deliver, waiting for each retry's time, until the events (all pending ones, without
    `event_ids`) are delivered or given up, or `within_s` seconds have passed; what is left stays
    pending for the next deliverer. Returns the rows' states."""
    deadline = time.monotonic() + within_s
    while True:
        deliver_pending(database, policy=policy, timeout_s=timeout_s, event_ids=event_ids, deadline=deadline)
        due = _next_due(database, event_ids)
        if due is None:
            break
        wait = max(0.0, (due - _now()).total_seconds())
        if time.monotonic() + wait > deadline:
            break
        time.sleep(wait)  # the retry policy's backoff, not a wait for another process
    return deliveries(database, event_ids) if event_ids is not None else []


class OutboxWorker:
    """Delivers the outbox in a background thread: a pass every `interval_s` seconds (sooner when
    `wake()` is called, e.g. after a commit). For a web app's lifespan: `start()`, then `stop()`."""

    def __init__(self, database: Any, *, interval_s: float = 1.0, policy: RetryPolicy = DELIVERY_POLICY,
                 timeout_s: float = 10.0):
        if interval_s <= 0 or timeout_s <= 0:
            raise ValueError("interval_s and timeout_s must be > 0")
        self.database, self.interval_s, self.policy, self.timeout_s = database, interval_s, policy, timeout_s
        self._stopping, self._woken = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> OutboxWorker:
        if self._thread is not None:
            raise RuntimeError("the outbox worker is running already")
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="fmeval-outbox", daemon=True)
        self._thread.start()
        return self

    def wake(self) -> None:
        self._woken.set()

    def stop(self, *, timeout_s: float | None = None) -> None:
        """Stop after the attempt in flight (at most the POST's timeout)."""
        self._stopping.set()
        self._woken.set()
        if self._thread is not None:
            self._thread.join(timeout_s if timeout_s is not None else self.timeout_s + CLAIM_MARGIN_S)
            self._thread = None

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                deliver_pending(self.database, policy=self.policy, timeout_s=self.timeout_s)
                due = _next_due(self.database)
            except Exception:  # noqa: BLE001  (a store that is briefly unreachable: try again next pass)
                logger.exception("outbox delivery pass failed")
                due = None
            wait = self.interval_s if due is None else min(self.interval_s, max(0.0, (due - _now()).total_seconds()))
            self._woken.wait(wait)
            self._woken.clear()
