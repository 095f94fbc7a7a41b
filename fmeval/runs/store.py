"""The run store: an index of every finished run, in SQLite (WAL) in the user data directory.

`FMEVAL_RUN_STORE` (or `--store`) puts it elsewhere. The store only indexes: the records and
summary stay in each run's output directory. An id is bound to its run's content: a directory
deleted later, or holding another run since (`--overwrite`), is reported as missing, never
read as if it were the run asked for.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fmeval.errors import UserError
from fmeval.runs.summary import EvalOutput

STORE_ENV = "FMEVAL_RUN_STORE"
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    evaluation TEXT NOT NULL,
    dataset TEXT NOT NULL,
    dataset_sha256 TEXT,
    model TEXT NOT NULL,
    runner_identity TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    scores TEXT NOT NULL,
    num_records INTEGER NOT NULL,
    num_errors INTEGER NOT NULL,
    fmeval_version TEXT,
    git_commit TEXT,
    output_dir TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_evaluation ON runs (evaluation, dataset);
CREATE INDEX IF NOT EXISTS runs_by_model ON runs (model);
"""


def default_store_path() -> Path:
    if os.environ.get(STORE_ENV):
        return Path(os.environ[STORE_ENV])
    from platformdirs import user_data_dir

    return Path(user_data_dir("fmeval")) / "runs.sqlite"


def model_label(identity: dict[str, Any]) -> str:
    """A short name for a model: the last part of its path or id."""
    name = str(identity.get("model") or identity.get("endpoint") or identity.get("type") or "model")
    if identity.get("gguf_file"):
        name = identity["gguf_file"]
    return name.rstrip("/").rsplit("/", 1)[-1]


def git_commit(directory: str | os.PathLike[str] = ".") -> str | None:
    """The commit checked out in `directory`, if it is a git working tree."""
    try:
        result = subprocess.run(["git", "-C", str(directory), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def config_hash(summary: EvalOutput) -> str:
    material = {"evaluation": summary.eval_name, "config": summary.config, "model": summary.model,
                "prompt_template": summary.prompt_template, "seed": summary.seed,
                "dataset": summary.dataset.get("sha256")}
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StoredRun:
    run_id: str
    created_at: str
    evaluation: str
    dataset: str
    dataset_sha256: str | None
    model: str
    runner_identity: dict[str, Any]
    config_hash: str
    scores: list[dict[str, Any]]
    num_records: int
    num_errors: int
    fmeval_version: str | None
    git_commit: str | None
    output_dir: str

    @property
    def status(self) -> str:
        """'ok'; 'missing' when the output directory (or its summary) was deleted; or
        'replaced by RUN_ID' when the directory now holds another run."""
        from fmeval.runs.directory import RunDirectory

        try:
            current = RunDirectory(self.output_dir).summary().run_id
        except UserError:
            return "missing"
        return "ok" if current == self.run_id else f"replaced by {current}"

    @property
    def missing(self) -> bool:
        """The run's files are gone (deleted, or overwritten by another run)."""
        return self.status != "ok"


class RunStore:
    """Index, list, show and delete runs. Safe with several processes writing at once."""

    def __init__(self, path: str | os.PathLike[str] | None = None):
        self.path = Path(path) if path is not None else default_store_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._connection = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise UserError(f"cannot open the run store {self.path}: {exc}") from exc

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def index(self, summary: EvalOutput, *, run_id: str) -> None:
        sha256 = summary.dataset.get("sha256") or []
        row = (
            run_id, summary.created_at, summary.eval_name, summary.dataset_name,
            ",".join(sha256) if sha256 else None, model_label(summary.model), json.dumps(summary.model),
            config_hash(summary), json.dumps([vars(s) for s in summary.dataset_scores]), summary.num_records,
            summary.num_errors, summary.fmeval_version, git_commit(), str(Path(summary.output_path or ".").resolve()),
        )
        self._connection.execute(f"INSERT OR REPLACE INTO runs VALUES ({','.join('?' * len(row))})", row)

    def list(self, *, model: str | None = None, evaluation: str | None = None, dataset: str | None = None) -> list[StoredRun]:
        clauses, values = [], []
        for column, value in (("model", model), ("evaluation", evaluation), ("dataset", dataset)):
            if value:
                clauses.append(f"{column} LIKE ?")
                values.append(f"%{value}%")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._connection.execute(f"SELECT * FROM runs {where} ORDER BY created_at DESC, run_id", values)
        return [self._row(row) for row in rows]

    def get(self, run_id: str) -> StoredRun:
        rows = list(self._connection.execute("SELECT * FROM runs WHERE run_id = ? OR run_id LIKE ?", (run_id, f"{run_id}%")))
        if len(rows) != 1:
            problem = "no run" if not rows else f"{len(rows)} runs"
            raise UserError(f"{problem} with id {run_id!r} in the run store {self.path}; see `fmeval runs list`")
        return self._row(rows[0])

    def delete(self, run_id: str) -> StoredRun:
        run = self.get(run_id)
        self._connection.execute("DELETE FROM runs WHERE run_id = ?", (run.run_id,))
        return run

    @staticmethod
    def _row(row: tuple[Any, ...]) -> StoredRun:
        values = list(row)
        values[6] = json.loads(values[6])
        values[8] = json.loads(values[8])
        return StoredRun(*values)
