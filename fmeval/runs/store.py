"""The run store: an index of every finished run, in fmeval's store (`fmeval.store.Database`:
a SQLite file in the user data directory by default, `FMEVAL_STORE` or `--store-url` for
another file or a PostgreSQL server).

The store only indexes: the records and summary stay in each run's output directory. An id
is bound to its run's content: a directory deleted later, or holding another run since
(`--overwrite`), is reported as missing, never read as if it were the run asked for.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Index, Integer, String, Table, Text, delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from fmeval.errors import NotFound, UserError
from fmeval.runs.summary import EvalOutput
from fmeval.store import OnStore
from fmeval.store.schema import metadata

runs_table = Table(
    "runs", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("created_at", String(40), nullable=False),
    Column("evaluation", String(200), nullable=False),
    Column("dataset", String(500), nullable=False),
    Column("dataset_sha256", Text),
    Column("model", String(500), nullable=False),
    Column("runner_identity", Text, nullable=False),
    Column("config_hash", String(32), nullable=False),
    Column("scores", Text, nullable=False),
    Column("num_records", Integer, nullable=False),
    Column("num_errors", Integer, nullable=False),
    Column("fmeval_version", String(40)),
    Column("git_commit", String(64)),
    Column("output_dir", Text, nullable=False),
    Index("runs_by_evaluation", "evaluation", "dataset"),
    Index("runs_by_model", "model"),
    Index("runs_by_created_at", "created_at"),
)


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


class RunStore(OnStore):
    """Index, list, show and delete runs. Safe with several processes writing at once.
    `store`: a Database, a SQLite file, a database URL, or None for the default store."""

    def index(self, summary: EvalOutput, *, run_id: str) -> None:
        sha256 = summary.dataset.get("sha256") or []
        row = {
            "run_id": run_id, "created_at": summary.created_at, "evaluation": summary.eval_name,
            "dataset": summary.dataset_name, "dataset_sha256": ",".join(sha256) if sha256 else None,
            "model": model_label(summary.model), "runner_identity": json.dumps(summary.model),
            "config_hash": config_hash(summary), "scores": json.dumps([vars(s) for s in summary.dataset_scores]),
            "num_records": summary.num_records, "num_errors": summary.num_errors,
            "fmeval_version": summary.fmeval_version, "git_commit": git_commit(),
            "output_dir": str(Path(summary.output_path or ".").resolve()),
        }
        dialect = postgresql if self.database.engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(runs_table).values(**row)
        statement = statement.on_conflict_do_update(index_elements=["run_id"],
                                                    set_={k: v for k, v in row.items() if k != "run_id"})
        with self.database.transaction() as connection:
            connection.execute(statement)

    def list(self, *, model: str | None = None, evaluation: str | None = None, dataset: str | None = None) -> list[StoredRun]:
        query = select(runs_table).order_by(runs_table.c.created_at.desc(), runs_table.c.run_id)
        for column, value in ((runs_table.c.model, model), (runs_table.c.evaluation, evaluation),
                              (runs_table.c.dataset, dataset)):
            if value:
                query = query.where(column.contains(value, autoescape=True))
        with self.database.reading() as connection:
            return [self._row(row) for row in connection.execute(query)]

    def get(self, run_id: str) -> StoredRun:
        """The run with this id, or the only one whose id starts with it."""
        query = select(runs_table).where(or_(runs_table.c.run_id == run_id,
                                             runs_table.c.run_id.startswith(run_id, autoescape=True)))
        with self.database.reading() as connection:
            rows = list(connection.execute(query))
        exact = [row for row in rows if row.run_id == run_id]
        if len(exact) == 1 or len(rows) == 1:
            return self._row((exact or rows)[0])
        problem = "no run" if not rows else f"{len(rows)} runs"
        error = NotFound if not rows else UserError
        raise error(f"{problem} with id {run_id!r} in the run store {self.path}; see `fmeval runs list`")

    def delete(self, run_id: str) -> StoredRun:
        run = self.get(run_id)
        with self.database.transaction() as connection:
            connection.execute(delete(runs_table).where(runs_table.c.run_id == run.run_id))
        return run

    @staticmethod
    def _row(row: Any) -> StoredRun:
        values = dict(row._mapping)
        values["runner_identity"] = json.loads(values["runner_identity"])
        values["scores"] = json.loads(values["scores"])
        return StoredRun(**values)
