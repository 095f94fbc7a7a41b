"""A rating job: items taken from runs, raters with invite tokens, assignments, and ratings, in
one SQLite file (`job.sqlite` in the job's directory). Every answer is committed as it is given,
so a server restart loses nothing.

Items are the records the runs share (the same prompt, each run's output). Each item gets
`per_item` ratings from distinct raters; items go to the raters with the fewest assignments so
far (ties broken by the job's seed), so loads differ by at most one. The outputs are shown in an
order shuffled per rater and per item from the seed, and that order is stored with the assignment.

Rating kinds: `thumbs` (up or down per output), `likert:N` (1 to N per output), `ranking` (a rank
per output, ties allowed; needs two runs or more), `free-text` (a comment on the item).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import re
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from fmeval.errors import UserError

SCHEMA = """
CREATE TABLE IF NOT EXISTS job (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (item_id INTEGER PRIMARY KEY, record_id TEXT NOT NULL, payload TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS raters (rater_id TEXT PRIMARY KEY, token_sha256 TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS assignments (
    item_id INTEGER NOT NULL, rater_id TEXT NOT NULL, position INTEGER NOT NULL, output_order TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending', PRIMARY KEY (item_id, rater_id));
CREATE TABLE IF NOT EXISTS ratings (
    item_id INTEGER NOT NULL, rater_id TEXT NOT NULL, value TEXT NOT NULL, source TEXT NOT NULL,
    rated_at TEXT NOT NULL, PRIMARY KEY (item_id, rater_id));
"""
KIND = re.compile(r"^(thumbs|likert:(\d+)|ranking|free-text)$")
JOB_FILE = "job.sqlite"


@dataclass(frozen=True)
class RatingKind:
    """One question asked about an item: its name, and for likert the top of the scale."""

    name: str
    scale: int | None = None

    @property
    def key(self) -> str:
        return f"likert:{self.scale}" if self.name == "likert" else self.name


def parse_kinds(spec: str | Sequence[str], runs: int) -> list[RatingKind]:
    parts = [p.strip() for p in (spec.split(",") if isinstance(spec, str) else spec) if p.strip()]
    kinds = []
    for part in parts:
        match = KIND.match(part)
        if match is None:
            raise UserError(f"--rating: {part!r} is not one of thumbs, likert:N, ranking, free-text")
        if match.group(2) is not None:
            scale = int(match.group(2))
            if not 2 <= scale <= 10:
                raise UserError(f"--rating: a likert scale runs from 1 to 2..10, got {part!r}")
            kinds.append(RatingKind("likert", scale))
        else:
            kinds.append(RatingKind(part))
    if not kinds:
        raise UserError("--rating: give at least one of thumbs, likert:N, ranking, free-text")
    if any(k.name == "ranking" for k in kinds) and runs < 2:
        raise UserError("--rating ranking needs two runs or more (--run A --run B)")
    return kinds


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Job:
    """A job's database: open it with `Job(directory)`; `create_job` makes one."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        path = self.directory / JOB_FILE
        if not path.is_file():
            raise UserError(f"no rating job in {self.directory} (no {JOB_FILE}); create one with `fmeval human create`")
        self.db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # an answer survives a crash once it is acknowledged
        self.meta = {key: json.loads(value) for key, value in self.db.execute("SELECT key, value FROM job")}
        self.kinds = [RatingKind(k["name"], k.get("scale")) for k in self.meta["kinds"]]

    def close(self) -> None:
        self.db.close()

    # -- raters and their work ---------------------------------------------------------------------
    def rater_of(self, token: str) -> str | None:
        row = self.db.execute("SELECT rater_id FROM raters WHERE token_sha256 = ?", (token_hash(token),)).fetchone()
        return row[0] if row else None

    def raters(self) -> list[str]:
        return [row[0] for row in self.db.execute("SELECT rater_id FROM raters ORDER BY rater_id")]

    def assignment(self, rater: str, item_id: int) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT a.position, a.output_order, a.status, i.record_id, i.payload FROM assignments a "
            "JOIN items i USING (item_id) WHERE a.rater_id = ? AND a.item_id = ?", (rater, item_id)).fetchone()
        if row is None:
            return None
        position, order, status, record_id, payload = row
        rating = self.db.execute("SELECT value FROM ratings WHERE item_id = ? AND rater_id = ?",
                                 (item_id, rater)).fetchone()
        return {"item_id": item_id, "position": position, "order": json.loads(order), "status": status,
                "record_id": record_id, **json.loads(payload), "rating": json.loads(rating[0]) if rating else None}

    def next_item(self, rater: str, after: int | None = None) -> int | None:
        """The rater's next item: pending ones in their order (after `after` first), then skipped ones."""
        rows = self.db.execute("SELECT item_id, status, position FROM assignments WHERE rater_id = ? ORDER BY position",
                               (rater,)).fetchall()
        current = next((position for item, _, position in rows if item == after), -1)
        pending = [item for item, status, _ in rows if status == "pending"]
        later = [item for item, status, position in rows if status == "pending" and position > current]
        skipped = [item for item, status, _ in rows if status == "skipped" and item != after]
        return (later or pending or skipped or [None])[0]

    def progress(self, rater: str) -> dict[str, int]:
        counts = dict(self.db.execute("SELECT status, COUNT(*) FROM assignments WHERE rater_id = ? GROUP BY status",
                                      (rater,)).fetchall())
        return {"done": counts.get("done", 0), "skipped": counts.get("skipped", 0),
                "total": sum(counts.values())}

    def save_rating(self, rater: str, item_id: int, value: dict[str, Any], *, source: str = "app") -> None:
        """Store (or replace) a rater's answer for an item, checked against the job's rating kinds."""
        assignment = self.assignment(rater, item_id)
        if assignment is None:
            raise UserError(f"item {item_id} is not assigned to rater {rater}")
        checked = self.check(value, len(assignment["outputs"]))
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("INSERT OR REPLACE INTO ratings VALUES (?, ?, ?, ?, ?)",
                            (item_id, rater, json.dumps(checked), source, now))
            self.db.execute("UPDATE assignments SET status = 'done' WHERE item_id = ? AND rater_id = ?",
                            (item_id, rater))

    def skip(self, rater: str, item_id: int) -> None:
        self.db.execute("UPDATE assignments SET status = 'skipped' WHERE item_id = ? AND rater_id = ? "
                        "AND status = 'pending'", (item_id, rater))

    def check(self, value: dict[str, Any], outputs: int) -> dict[str, Any]:
        """A rating's values, by kind key: per output a thumb (0/1), a grade (1..N) or a rank (1..n)."""
        checked: dict[str, Any] = {}
        for kind in self.kinds:
            given = value.get(kind.key)
            if kind.name == "free-text":
                checked[kind.key] = str(given or "")[:10_000]
                continue
            if not isinstance(given, list) or len(given) != outputs:
                raise UserError(f"{kind.key}: give one answer per output ({outputs}), got {given!r}")
            low, high = {"thumbs": (0, 1), "likert": (1, kind.scale), "ranking": (1, outputs)}[kind.name]
            numbers = []
            for answer in given:
                try:
                    number = int(answer)
                except (TypeError, ValueError):
                    raise UserError(f"{kind.key}: {answer!r} is not a whole number") from None
                if not low <= number <= high:
                    raise UserError(f"{kind.key}: {number} is outside {low}..{high}")
                numbers.append(number)
            checked[kind.key] = numbers
        return checked

    def ratings(self) -> Iterator[dict[str, Any]]:
        """Every rating with its item, rater and the runs' outputs in the job's order (not the rater's)."""
        rows = self.db.execute("SELECT r.item_id, r.rater_id, r.value, r.source, r.rated_at, i.record_id "
                               "FROM ratings r JOIN items i USING (item_id) ORDER BY r.item_id, r.rater_id")
        for item_id, rater, value, source, rated_at, record_id in rows:
            yield {"item_id": item_id, "record_id": record_id, "rater_id": rater, "rating": json.loads(value),
                   "source": source, "rated_at": rated_at}

    def items(self) -> list[dict[str, Any]]:
        return [{"item_id": item_id, "record_id": record_id, **json.loads(payload)}
                for item_id, record_id, payload in self.db.execute("SELECT item_id, record_id, payload FROM items "
                                                                   "ORDER BY item_id")]


def assign(items: int, raters: Sequence[str], per_item: int, rng: random.Random) -> dict[str, list[int]]:
    """`per_item` distinct raters per item, each item to the least-loaded raters (ties at random)."""
    if per_item > len(raters):
        raise UserError(f"--per-item {per_item} needs at least that many raters (--raters {len(raters)})")
    load = {rater: 0 for rater in raters}
    work: dict[str, list[int]] = {rater: [] for rater in raters}
    for item in range(items):
        ranked = sorted(raters, key=lambda r: (load[r], rng.random()))
        for rater in ranked[:per_item]:
            load[rater] += 1
            work[rater].append(item)
    return work


def create_job(directory: str | Path, *, runs: Sequence[Any], kinds: str | Sequence[str], instructions: str,
               raters: int, per_item: int, seed: int = 0, title: str | None = None) -> dict[str, str]:
    """Build a job from loaded runs (`fmeval.runs.load_run`); return each rater's invite token
    (shown once: only its hash is stored)."""
    directory = Path(directory)
    if (directory / JOB_FILE).exists():
        raise UserError(f"{directory} already holds a rating job")
    if raters < 1 or per_item < 1:
        raise UserError("--raters and --per-item must be at least 1")
    parsed = parse_kinds(kinds, len(runs))
    outputs_by_run = [{str(line["record_id"]): line for line in run.records() if line.get("model_output") is not None}
                      for run in runs]
    shared = sorted(set.intersection(*(set(o) for o in outputs_by_run)))
    if not shared:
        raise UserError("the runs share no record with an output: rate runs made on the same dataset")
    rng = random.Random(seed)
    rater_ids = [f"rater{i + 1}" for i in range(raters)]
    work = assign(len(shared), rater_ids, per_item, rng)
    tokens = {rater: secrets.token_urlsafe(24) for rater in rater_ids}
    directory.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(directory / JOB_FILE, isolation_level=None)
    try:
        db.executescript(SCHEMA)
        with db:
            db.execute("BEGIN")
            meta = {"title": title or "Rate the model outputs", "instructions": instructions, "seed": seed,
                    "per_item": per_item, "kinds": [{"name": k.name, "scale": k.scale} for k in parsed],
                    "runs": [{"run_id": run.run_id, "label": run.label} for run in runs],
                    "csrf_secret": secrets.token_hex(32),
                    "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
            db.executemany("INSERT INTO job VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()])
            for item_id, record_id in enumerate(shared):
                first = outputs_by_run[0][record_id]
                payload = {"model_input": first.get("model_input"), "prompt": first.get("prompt"),
                           "target_output": first.get("target_output"),
                           "outputs": [o[record_id]["model_output"] for o in outputs_by_run]}
                db.execute("INSERT INTO items VALUES (?, ?, ?)", (item_id, record_id, json.dumps(payload)))
            for rater in rater_ids:
                db.execute("INSERT INTO raters VALUES (?, ?)", (rater, token_hash(tokens[rater])))
                order = work[rater][:]
                random.Random(f"{seed}:{rater}").shuffle(order)  # each rater meets the items in their own order
                for position, item_id in enumerate(order):
                    shown = list(range(len(runs)))
                    random.Random(f"{seed}:{rater}:{item_id}").shuffle(shown)
                    db.execute("INSERT INTO assignments (item_id, rater_id, position, output_order) VALUES (?, ?, ?, ?)",
                               (item_id, rater, position, json.dumps(shown)))
    finally:
        db.close()
    return tokens
