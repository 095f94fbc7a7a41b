"""A rating job: items taken from runs, raters with invite tokens, assignments, and ratings, in
one SQLite file (`job.sqlite` in the job's directory). Every answer is committed as it is given,
so a server restart loses nothing.

Items are the records the runs share (the same prompt, each run's output). Each item gets
`per_item` ratings from distinct raters; items go to the raters with the fewest assignments so
far (ties broken by the job's seed), so loads differ by at most one. The outputs are shown in an
order shuffled per rater and per item from the seed, and that order is stored with the assignment.

Rating kinds: `thumbs` (up or down per output), `likert:N` (1 to N per output), `ranking` (a rank
per output, ties allowed; needs two runs or more), `free-text` (a comment on the item).

Gold items (`gold`) are questions with known answers, mixed into each rater's queue at a set rate
and shown like any other item; they measure each rater's accuracy and never enter the results.
Every save is kept in `rating_history` (a replaced rating stays there), with the seconds since the
rater first opened the item.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import random
import re
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from fmeval.errors import DataError, UserError

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
CREATE TABLE IF NOT EXISTS gold (item_id INTEGER PRIMARY KEY, answer TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS openings (
    item_id INTEGER NOT NULL, rater_id TEXT NOT NULL, opened_at TEXT NOT NULL, PRIMARY KEY (item_id, rater_id));
CREATE TABLE IF NOT EXISTS rating_history (
    item_id INTEGER NOT NULL, rater_id TEXT NOT NULL, revision INTEGER NOT NULL, value TEXT NOT NULL,
    source TEXT NOT NULL, rated_at TEXT NOT NULL, seconds REAL, PRIMARY KEY (item_id, rater_id, revision));
"""
KIND = re.compile(r"^(thumbs|likert:(\d+)|ranking|free-text)$")
WHOLE_NUMBER = re.compile(r"^\s*\d+\s*$")
JOB_FILE = "job.sqlite"
COMMENT_LIMIT = 10_000
"""The longest comment a rater may leave, in characters; a longer one is refused, never cut."""


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
    repeated = sorted({part for part in parts if parts.count(part) > 1})
    if repeated:
        raise UserError(f"--rating: {', '.join(repeated)} is given twice; ask each question once")
    if len({part.split(":")[0] for part in parts}) < len(parts):
        raise UserError(f"--rating: one likert scale per job, got {', '.join(parts)}")
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


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def check_answer(kinds: Sequence[RatingKind], value: dict[str, Any], outputs: int, *,
                 partial: bool = False) -> dict[str, Any]:
    """A rating's values, by kind key: per output a thumb (0/1), a grade (1..N) or a rank (1..n),
    and a comment. Whole numbers come as integers or as digits (a form, a CSV cell); anything else
    (3.7, true, "3.7") is refused, never rounded. `partial`: kinds left out are allowed (gold answers)."""
    unknown = sorted(set(value) - {kind.key for kind in kinds})
    if unknown:
        raise UserError(f"{', '.join(unknown)}: not a question of this job ({', '.join(k.key for k in kinds)})")
    checked: dict[str, Any] = {}
    for kind in kinds:
        given = value.get(kind.key)
        if given is None and partial:
            continue
        if kind.name == "free-text":
            if given is not None and not isinstance(given, str):
                raise UserError(f"{kind.key}: a comment is text, got {given!r}")
            if len(given or "") > COMMENT_LIMIT:
                raise UserError(f"{kind.key}: the comment has {len(given)} characters; the limit is {COMMENT_LIMIT}")
            checked[kind.key] = given or ""
            continue
        if not isinstance(given, list) or len(given) != outputs:
            raise UserError(f"{kind.key}: give one answer per output ({outputs}), got {given!r}")
        low, high = {"thumbs": (0, 1), "likert": (1, kind.scale), "ranking": (1, outputs)}[kind.name]
        numbers = []
        for position, answer in enumerate(given, start=1):
            if answer is None:
                raise UserError(f"{kind.key}: output {position} has no answer")
            whole = isinstance(answer, int) and not isinstance(answer, bool)
            if not whole and not (isinstance(answer, str) and WHOLE_NUMBER.match(answer)):
                raise UserError(f"{kind.key}: {answer!r} is not a whole number")
            number = int(answer)
            if not low <= number <= high:
                raise UserError(f"{kind.key}: {number} is outside {low}..{high}")
            numbers.append(number)
        checked[kind.key] = numbers
    return checked


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
        self.db.executescript(SCHEMA)  # a job made by an older version gains the newer tables
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
        rating = self.db.execute("SELECT value, rated_at FROM ratings WHERE item_id = ? AND rater_id = ?",
                                 (item_id, rater)).fetchone()
        return {"item_id": item_id, "position": position, "order": json.loads(order), "status": status,
                "record_id": record_id, **json.loads(payload), "rating": json.loads(rating[0]) if rating else None,
                "rated_at": rating[1] if rating else None}

    def opened(self, rater: str, item_id: int) -> None:
        """Note when the rater first saw the item (the start of their time on it)."""
        self.db.execute("INSERT OR IGNORE INTO openings VALUES (?, ?, ?)", (item_id, rater, _now()))

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

    def save_rating(self, rater: str, item_id: int, value: dict[str, Any], *, source: str = "app") -> int:
        """Store a rater's answer for an item, checked against the job's rating kinds. A rating
        given again replaces the current one; every revision stays in the history. Returns the
        revision number (1 for a first rating)."""
        assignment = self.assignment(rater, item_id)
        if assignment is None:
            raise UserError(f"item {item_id} is not assigned to rater {rater}")
        checked = self.check(value, len(assignment["outputs"]))
        now = _now()
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            revision = self.db.execute("SELECT COUNT(*) FROM rating_history WHERE item_id = ? AND rater_id = ?",
                                       (item_id, rater)).fetchone()[0] + 1
            opened = self.db.execute("SELECT opened_at FROM openings WHERE item_id = ? AND rater_id = ?",
                                     (item_id, rater)).fetchone()
            seconds = ((dt.datetime.fromisoformat(now) - dt.datetime.fromisoformat(opened[0])).total_seconds()
                       if opened and source == "app" else None)
            self.db.execute("INSERT INTO rating_history VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (item_id, rater, revision, json.dumps(checked), source, now, seconds))
            self.db.execute("INSERT OR REPLACE INTO ratings VALUES (?, ?, ?, ?, ?)",
                            (item_id, rater, json.dumps(checked), source, now))
            self.db.execute("UPDATE assignments SET status = 'done' WHERE item_id = ? AND rater_id = ?",
                            (item_id, rater))
        return revision

    def history(self, rater: str, item_id: int) -> list[dict[str, Any]]:
        """Every rating the rater saved for the item, oldest first."""
        rows = self.db.execute("SELECT revision, value, source, rated_at, seconds FROM rating_history "
                               "WHERE item_id = ? AND rater_id = ? ORDER BY revision", (item_id, rater))
        return [{"revision": revision, "rating": json.loads(value), "source": source, "rated_at": rated_at,
                 "seconds": seconds} for revision, value, source, rated_at, seconds in rows]

    def first_ratings(self) -> list[dict[str, Any]]:
        """Each (item, rater)'s first rating: how many revisions followed it, and the seconds it took."""
        rows = self.db.execute("SELECT item_id, rater_id, seconds, (SELECT COUNT(*) FROM rating_history h "
                               "WHERE h.item_id = r.item_id AND h.rater_id = r.rater_id) FROM rating_history r "
                               "WHERE revision = 1 ORDER BY item_id, rater_id")
        return [{"item_id": item_id, "rater_id": rater, "seconds": seconds, "revisions": count}
                for item_id, rater, seconds, count in rows]

    def skip(self, rater: str, item_id: int) -> None:
        self.db.execute("UPDATE assignments SET status = 'skipped' WHERE item_id = ? AND rater_id = ? "
                        "AND status = 'pending'", (item_id, rater))

    def check(self, value: dict[str, Any], outputs: int) -> dict[str, Any]:
        return check_answer(self.kinds, value, outputs)

    def ratings(self) -> Iterator[dict[str, Any]]:
        """Every rating with its item, rater and the runs' outputs in the job's order (not the rater's)."""
        rows = self.db.execute("SELECT r.item_id, r.rater_id, r.value, r.source, r.rated_at, i.record_id "
                               "FROM ratings r JOIN items i USING (item_id) ORDER BY r.item_id, r.rater_id")
        for item_id, rater, value, source, rated_at, record_id in rows:
            yield {"item_id": item_id, "record_id": record_id, "rater_id": rater, "rating": json.loads(value),
                   "source": source, "rated_at": rated_at}

    def items(self, *, gold: bool = False) -> list[dict[str, Any]]:
        """The items rated for the results; with `gold`, the gold items instead, each with its `answer`."""
        rows = self.db.execute("SELECT i.item_id, i.record_id, i.payload, g.answer FROM items i LEFT JOIN gold g "
                               "USING (item_id) WHERE (g.answer IS NOT NULL) = ? ORDER BY i.item_id", (gold,))
        return [{"item_id": item_id, "record_id": record_id, **json.loads(payload),
                 **({"answer": json.loads(answer)} if gold else {})} for item_id, record_id, payload, answer in rows]


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


def _shared_records(runs: Sequence[Any]) -> tuple[list[str], list[dict[str, dict[str, Any]]]]:
    """The record ids every run answered, and each run's lines by record id. Runs of different
    datasets, or that gave one record id different inputs, are refused: their outputs answer
    different questions. (A dataset edited between the runs passes if the shared records agree.)"""
    ids = [run.run_id for run in runs]
    twice = sorted({run_id for run_id in ids if ids.count(run_id) > 1})
    if twice:
        raise UserError(f"--run: {', '.join(twice)} is given twice; rate each run once")
    if len({run.summary.dataset_name for run in runs}) > 1:
        described = "; ".join(f"{run.run_id} is on {run.summary.dataset_name!r}" for run in runs)
        raise UserError(f"--run: the runs are on different datasets ({described}); rate runs of one dataset")
    outputs_by_run = [{str(line["record_id"]): line for line in run.records() if line.get("model_output") is not None}
                      for run in runs]
    shared = sorted(set.intersection(*(set(o) for o in outputs_by_run)))
    if not shared:
        raise UserError("the runs share no record with an output: rate runs made on the same dataset")
    for record_id in shared:
        inputs = {json.dumps(o[record_id].get("model_input")) for o in outputs_by_run}
        if len(inputs) > 1:
            shown = " / ".join(repr(o[record_id].get("model_input")) for o in outputs_by_run)
            raise UserError(f"--run: record {record_id!r} has different inputs in the runs ({shown}); "
                            "rate runs of one dataset")
    return shared, outputs_by_run


def read_gold(path: str | Path, kinds: Sequence[RatingKind], outputs: int) -> list[dict[str, Any]]:
    """Gold items from a JSON Lines file, one per line: `model_input`, `outputs` (one per run, in
    `--run` order), `answers` (by question, e.g. {"likert:5": [5, 1]}; free text is not scored),
    and optionally `id` and `target_output`."""
    from fmeval.datasets.readers import read_jsonlines

    scored = [kind for kind in kinds if kind.name != "free-text"]
    gold = []
    try:
        for where, row in read_jsonlines(str(path)):
            if isinstance(row, DataError):
                raise row
            if not isinstance(row, dict) or not isinstance(row.get("model_input"), str):
                raise DataError(where, "a gold item is an object with model_input (text), outputs and answers")
            shown = row.get("outputs")
            if not isinstance(shown, list) or len(shown) != outputs or not all(isinstance(o, str) for o in shown):
                raise DataError(where, f"outputs: give {outputs} output text(s), one per run, got {shown!r}")
            answers = row.get("answers")
            if not isinstance(answers, dict) or not answers:
                raise DataError(where, f"answers: give the known answer to {', '.join(k.key for k in scored)}")
            try:
                checked = check_answer(scored, answers, outputs, partial=True)
            except UserError as exc:
                raise DataError(where, f"answers: {exc}") from None
            gold.append({"id": str(row.get("id") or len(gold) + 1), "model_input": row["model_input"],
                         "target_output": row.get("target_output"), "outputs": shown, "answer": checked})
    except OSError as exc:
        raise UserError(f"--gold: {exc}") from None
    if not gold:
        raise UserError(f"--gold: {path} holds no gold item")
    return gold


def create_job(directory: str | Path, *, runs: Sequence[Any], kinds: str | Sequence[str], instructions: str,
               raters: int, per_item: int, seed: int = 0, title: str | None = None, show_reference: bool = False,
               gold: str | Path | None = None, gold_rate: float = 0.1) -> dict[str, str]:
    """Build a job from loaded runs (`fmeval.runs.load_run`); return each rater's invite token
    (shown once: only its hash is stored). `show_reference`: raters see the record's target
    output. `gold`: a file of gold items (`read_gold`), making up `gold_rate` of each rater's items."""
    directory = Path(directory)
    if (directory / JOB_FILE).exists():
        raise UserError(f"{directory} already holds a rating job")
    if raters < 1 or per_item < 1:
        raise UserError("--raters and --per-item must be at least 1")
    if gold is not None and not 0 < gold_rate < 1:
        raise UserError(f"--gold-rate is the share of each rater's items that are gold: above 0, below 1, "
                        f"got {gold_rate}")
    parsed = parse_kinds(kinds, len(runs))
    shared, outputs_by_run = _shared_records(runs)
    golden = read_gold(gold, parsed, len(runs)) if gold is not None else []
    rng = random.Random(seed)
    rater_ids = [f"rater{i + 1}" for i in range(raters)]
    work = assign(len(shared), rater_ids, per_item, rng)
    gold_ids = range(len(shared), len(shared) + len(golden))
    for rater in rater_ids:  # each rater meets distinct gold items, `gold_rate` of what they see
        wanted = math.ceil(gold_rate * len(work[rater]) / (1 - gold_rate)) if golden else 0
        if wanted > len(golden):
            raise UserError(f"--gold-rate {gold_rate}: {rater} rates {len(work[rater])} item(s) and so needs {wanted} "
                            f"distinct gold items; {gold} holds {len(golden)}")
        work[rater] += rng.sample(gold_ids, wanted)
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
                    "show_reference": show_reference, "gold_rate": gold_rate if golden else 0,
                    "csrf_secret": secrets.token_hex(32),
                    "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
            db.executemany("INSERT INTO job VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()])
            for item_id, record_id in enumerate(shared):
                first = outputs_by_run[0][record_id]
                payload = {"model_input": first.get("model_input"), "prompt": first.get("prompt"),
                           "target_output": first.get("target_output"),
                           "outputs": [o[record_id]["model_output"] for o in outputs_by_run]}
                db.execute("INSERT INTO items VALUES (?, ?, ?)", (item_id, record_id, json.dumps(payload)))
            for item_id, item in zip(gold_ids, golden):
                payload = {"model_input": item["model_input"], "prompt": None, "target_output": item["target_output"],
                           "outputs": item["outputs"]}
                db.execute("INSERT INTO items VALUES (?, ?, ?)", (item_id, f"gold:{item['id']}", json.dumps(payload)))
                db.execute("INSERT INTO gold VALUES (?, ?)", (item_id, json.dumps(item["answer"])))
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
