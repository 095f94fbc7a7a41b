"""The model registry: every model that appears in a run, a monitor or a model card, with its
lineage (runs and their datasets, analyses, monitors, cards and their versions).

A model's key is its label in the run index (`runs.store.model_label` of the runner's identity).
A card belongs to the model of the runs its evaluation details name (`fmeval_run_id`), else to
the model its `model_overview.model_name` names; a schedule to the model it was made for
(`--model`). A card or monitor whose model was never evaluated here is an entry of its own.
The registry is read from the store in a few queries, not stored twice; of a card it reads only
what is shown (status, versions, risk ratings, runs), never the content.

The governing card of a model, the one whose risk rating speaks for it, is its latest approved
version across all its cards: of the cards with an approved version (archived cards excluded),
the one approved last; on equal approval times, the card whose name sorts first. A newer draft
or a version under review never governs: it is listed beside the governing card as pending. A
model without an approved card has no governing card, and its risk rating is Unknown.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, select

from fmeval.monitoring import MONITOR_KINDS
from fmeval.store import Database

MONITOR_HEALTH = ("missing", "inactive", "healthy", "in alarm")


@dataclass
class RunEntry:
    run_id: str
    created_at: str
    evaluation: str
    dataset: str
    dataset_sha256: str | None
    scores_json: str = field(repr=False)  # parsed when asked for: a models page shows a few runs of each model
    num_records: int = 0
    output_dir: str = ""

    @functools.cached_property
    def scores(self) -> list[dict[str, Any]]:
        return json.loads(self.scores_json)

    def as_dict(self) -> dict[str, Any]:
        values = {key: value for key, value in dataclasses.asdict(self).items() if key != "scores_json"}
        return {**values, "scores": self.scores}


@dataclass
class CardEntry:
    name: str
    status: str
    version: int
    risk_rating: str | None  # the latest version's
    approved_by: str | None
    updated_at: str
    run_ids: list[str]
    approved_version: int | None = None
    approved_risk_rating: str | None = None
    approved_at: str | None = None

    @property
    def governs(self) -> bool:
        """Whether this card may govern its model: it has an approved version and is not archived."""
        return self.approved_version is not None and self.status != "Archived"

    @property
    def pending(self) -> bool:
        """Whether the card's latest version is a draft or under review (not yet approved)."""
        return self.status in ("Draft", "PendingReview")

    @property
    def label(self) -> str:
        """The status, and the approved version where a newer one is not (yet) approved."""
        if self.approved_version and self.status != "Approved":
            return f"{self.status} (v{self.approved_version} approved)"
        return self.status


@dataclass
class MonitorEntry:
    name: str
    kind: str
    state: str
    health: str
    last_window: str | None
    last_status: str | None
    last_alarm: str | None  # the time of the last change to ALARM


@dataclass
class ModelEntry:
    key: str
    identity: dict[str, Any] = field(default_factory=dict)
    runs: list[RunEntry] = field(default_factory=list)  # newest first
    cards: list[CardEntry] = field(default_factory=list)
    monitors: list[MonitorEntry] = field(default_factory=list)

    @property
    def card(self) -> CardEntry | None:
        """The governing card: the latest approved version across the model's cards (see the
        module's docstring for the tie-break), or None when none is approved."""
        candidates = sorted((card for card in self.cards if card.governs), key=lambda card: card.name)
        return max(candidates, key=lambda card: card.approved_at or "", default=None)  # max keeps the first of equals

    @property
    def pending(self) -> list[CardEntry]:
        """Cards whose latest version is a draft or under review: shown beside the governing card."""
        return [card for card in self.cards if card.pending]

    @property
    def risk_rating(self) -> str:
        """The governing card's approved rating; Unknown without one."""
        card = self.card
        return (card.approved_risk_rating if card else None) or "Unknown"

    def latest_scores(self) -> list[dict[str, Any]]:
        """Per evaluation and dataset: the newest run's first score, and the one before it (the trend)."""
        seen: dict[tuple[str, str], list[RunEntry]] = {}
        for run in self.runs:
            seen.setdefault((run.evaluation, run.dataset), []).append(run)
        out = []
        for (evaluation, dataset), runs in seen.items():
            name, value = _headline(runs[0])
            previous = _headline(runs[1])[1] if len(runs) > 1 else None
            out.append({"evaluation": evaluation, "dataset": dataset, "metric": name, "value": value,
                        "previous": previous, "run_id": runs[0].run_id, "runs": len(runs)})
        return out

    def monitor_health(self) -> dict[str, str]:
        """Each monitor kind: missing, inactive, healthy or in alarm (the worst of its schedules)."""
        health = {}
        for kind in MONITOR_KINDS:
            states = [m.health for m in self.monitors if m.kind == kind]
            health[kind] = max(states, key=MONITOR_HEALTH.index) if states else "missing"
        return health

    @property
    def last_alert(self) -> str | None:
        times = [m.last_alarm for m in self.monitors if m.last_alarm]
        return max(times) if times else None


def _headline(run: RunEntry) -> tuple[str, float | None]:
    """A run's first score (its evaluation's main metric)."""
    score = run.scores[0] if run.scores else {}
    return score.get("name", ""), score.get("value")


def _card_rows(connection: Any) -> list[Any]:
    """Each card with its latest and approved versions' summaries (never their content)."""
    from fmeval.governance.store import cards_table, versions_table

    approved = versions_table.alias("approved")
    query = select(cards_table.c.name, cards_table.c.status, cards_table.c.version, cards_table.c.approved_by,
                   cards_table.c.updated_at, cards_table.c.approved_version, cards_table.c.approved_at,
                   versions_table.c.risk_rating, versions_table.c.model_name, versions_table.c.run_ids,
                   approved.c.risk_rating.label("approved_risk_rating")).join(
        versions_table, and_(versions_table.c.name == cards_table.c.name,
                             versions_table.c.version == cards_table.c.version)).outerjoin(
        approved, and_(approved.c.name == cards_table.c.name, approved.c.version == cards_table.c.approved_version))
    return list(connection.execute(query))


def _monitor_rows(connection: Any) -> list[MonitorEntry | Any]:
    from fmeval.monitoring.schedules import alarm_states_table, executions_table, schedules_table

    latest: dict[str, Any] = {}
    for row in connection.execute(select(executions_table.c.schedule, executions_table.c.window_start,
                                         executions_table.c.window_end, executions_table.c.status)
                                  .order_by(executions_table.c.window_start)):
        latest[row.schedule] = row
    alarms: dict[str, list[Any]] = {}
    for row in connection.execute(select(alarm_states_table)):
        alarms.setdefault(row.schedule, []).append(row)
    entries = []
    for row in connection.execute(select(schedules_table.c.name, schedules_table.c.kind, schedules_table.c.state,
                                         schedules_table.c.model)):
        last = latest.get(row.name)
        alarming = [a for a in alarms.get(row.name, []) if a.state == "ALARM"]
        if row.state != "Scheduled":
            health = "inactive"
        elif alarming or (last is not None and last.status in ("CompletedWithViolations", "Failed")):
            health = "in alarm"
        else:
            health = "healthy"
        entries.append((row.model, MonitorEntry(
            name=row.name, kind=row.kind, state=row.state, health=health,
            last_window=f"{last.window_start}/{last.window_end}" if last else None,
            last_status=last.status if last else None,
            last_alarm=max((a.updated_at for a in alarming), default=None))))
    return entries


def load_registry(database: Database, *, model: str | None = None) -> dict[str, ModelEntry]:
    """Every model, keyed by its label, with its runs (newest first), cards and monitors; only
    `model`'s entry when given (the runs of other models are then read but not kept: the one
    order of runs, ties included, is the same on every page)."""
    from fmeval.runs.store import runs_table

    models: dict[str, ModelEntry] = {}
    run_model: dict[str, str] = {}
    query = select(runs_table.c.run_id, runs_table.c.created_at, runs_table.c.evaluation, runs_table.c.dataset,
                   runs_table.c.dataset_sha256, runs_table.c.model, runs_table.c.runner_identity, runs_table.c.scores,
                   runs_table.c.num_records, runs_table.c.output_dir).order_by(runs_table.c.created_at.desc())
    with database.reading() as connection:
        # unpacked rows: at 10,000 runs, named access to each column costs more than the query
        for run_id, created, evaluation, dataset, sha256, label, identity, scores, records, output in \
                connection.execute(query):
            run_model[run_id] = label
            if model is not None and label != model:
                continue
            entry = models.get(label)
            if entry is None:  # the identity is parsed once per model, from its newest run
                entry = models[label] = ModelEntry(label, json.loads(identity))
            entry.runs.append(RunEntry(run_id, created, evaluation, dataset, sha256, scores, records, output))
        cards = _card_rows(connection)
        monitors = _monitor_rows(connection)
    from fmeval.governance.store import card_owner

    for row in cards:
        run_ids = json.loads(row.run_ids or "[]")
        owner = card_owner(row.name, run_ids, row.model_name, run_model.get)
        models.setdefault(owner, ModelEntry(owner)).cards.append(CardEntry(
            row.name, row.status, row.version, row.risk_rating, row.approved_by, row.updated_at, run_ids,
            row.approved_version, row.approved_risk_rating, row.approved_at))
    for watched, monitor in monitors:
        key = watched or f"monitor:{monitor.name}"
        models.setdefault(key, ModelEntry(key)).monitors.append(monitor)
    return models if model is None else {model: models[model]} if model in models else {}
