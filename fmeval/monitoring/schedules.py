"""Monitoring schedules and their executions, in fmeval's store (SQLite beside the run index by
default), and the scheduler that runs them.

A schedule checks a capture against a baseline (`monitors`) on a cron expression. Its window k
is [tick k, tick k+1) of the cron, and runs once tick k+1 has passed, so an hourly schedule
checks the previous hour, as Model Monitor does. The first window starts at the last tick
before the schedule was made, or at `start` (to go back over earlier traffic).

Each window runs at most once: an execution is claimed by inserting its row, and the store's
unique (schedule, window) key refuses a second claim, from this process or another. A scheduler
that was stopped runs every missed window when it comes back, in order; one killed during an
execution leaves the row InProgress, and the next scheduler takes it over (its claimer's
process is gone) and runs it, once. An execution ends Completed, CompletedWithViolations,
NoData, or Failed with its reason; after it, the schedule's alarms are evaluated on the
executions' metrics and their actions fired on a change of state (`alerts`).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import socket
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from sqlalchemy import Column, Integer, String, Table, Text, UniqueConstraint, delete, select, update
from sqlalchemy.exc import IntegrityError

from fmeval.errors import NotFound, UserError
from fmeval.monitoring.windows import UTC, Window
from fmeval.store import OnStore
from fmeval.store.outbox import deliver_pending, settle
from fmeval.store.schema import metadata

STATES = ("Scheduled", "Stopped")
FINAL = ("Completed", "CompletedWithViolations", "NoData", "Failed")
ALARM_DELIVERY_S = 10.0  # how long an execution waits for its alarm's webhook before leaving it to the outbox

schedules_table = Table(
    "monitoring_schedules", metadata,
    Column("name", String(200), primary_key=True),
    Column("kind", String(40), nullable=False),
    Column("baseline", Text, nullable=False),
    Column("capture", Text, nullable=False),
    Column("ground_truth", Text),
    Column("cron", String(100), nullable=False),
    Column("state", String(20), nullable=False),
    Column("output", Text, nullable=False),
    Column("alarms", Text, nullable=False),
    Column("actions", Text, nullable=False),
    Column("start", String(40), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("model", String(500)),  # the model watched, as the run index names it (for the model registry)
)
executions_table = Table(
    "monitoring_executions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("schedule", String(200), nullable=False),
    Column("window_start", String(40), nullable=False),
    Column("window_end", String(40), nullable=False),
    Column("status", String(40), nullable=False),
    Column("reason", Text),
    Column("metrics", Text, nullable=False),
    Column("violations", Integer, nullable=False),
    Column("alarms", Text, nullable=False),
    Column("output_dir", Text, nullable=False),
    Column("claimed_by", String(200), nullable=False),
    Column("started_at", String(40), nullable=False),
    Column("finished_at", String(40)),
    UniqueConstraint("schedule", "window_start", name="one_execution_per_window"),
)
alarm_states_table = Table(
    "monitoring_alarm_states", metadata,
    Column("schedule", String(200), primary_key=True),
    Column("alarm", String(200), primary_key=True),
    Column("state", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
)


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


def _iso(when: dt.datetime) -> str:
    return when.astimezone(UTC).isoformat()


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def check_cron(cron: str) -> None:
    from croniter import croniter

    if not croniter.is_valid(cron):
        raise UserError(f"--cron {cron!r} is not a cron expression (5 fields: minute hour day month weekday, "
                        f"e.g. '0 * * * *' for hourly)")


def ticks(cron: str, start: dt.datetime, until: dt.datetime) -> list[dt.datetime]:
    """The cron's times after `start`, up to and including `until` (UTC)."""
    from croniter import croniter

    found = []
    iterator = croniter(cron, start.astimezone(UTC))
    while (tick := iterator.get_next(dt.datetime)) <= until:
        found.append(tick.astimezone(UTC))
    return found


def previous_tick(cron: str, when: dt.datetime) -> dt.datetime:
    from croniter import croniter

    return croniter(cron, when.astimezone(UTC) + dt.timedelta(microseconds=1)).get_prev(dt.datetime).astimezone(UTC)


@dataclass
class Schedule:
    name: str
    kind: str
    baseline: str
    capture: str
    cron: str
    output: str
    start: str
    ground_truth: str | None = None
    state: str = "Scheduled"
    alarms: list[dict[str, Any]] = field(default_factory=list)
    actions: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    model: str | None = None

    def windows(self, now: dt.datetime) -> list[Window]:
        """Every window of this schedule that has ended by `now`."""
        edges = [_time(self.start), *ticks(self.cron, _time(self.start), now)]
        return [Window(a, b) for a, b in zip(edges, edges[1:])]


@dataclass
class Execution:
    id: int
    schedule: str
    window_start: str
    window_end: str
    status: str
    reason: str | None
    metrics: dict[str, Any]
    violations: int
    alarms: dict[str, Any]
    output_dir: str
    claimed_by: str
    started_at: str
    finished_at: str | None

    @property
    def window(self) -> Window:
        return Window(_time(self.window_start), _time(self.window_end))


def _claimer() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _claimer_alive(claimer: str) -> bool:
    host, _, pid = claimer.rpartition(":")
    if host != socket.gethostname():
        return True  # another machine's: never taken over from here
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


class MonitorStore(OnStore):
    """Schedules, executions and alarm states. `store`: a Database, a SQLite file, a URL, or None
    for fmeval's default store."""

    # -- schedules --------------------------------------------------------------------------------------
    def create(self, schedule: Schedule) -> Schedule:
        from fmeval.monitoring.alerts import Alarm
        from fmeval.monitoring.monitors import metric_names, read_monitor

        check_cron(schedule.cron)
        if not schedule.name or len(schedule.name) > 200 or "/" in schedule.name or schedule.name.startswith("."):
            raise UserError(f"a schedule's name is 1 to 200 characters, without '/' and not starting with '.'; "
                            f"got {schedule.name!r} (it names the folder of its executions)")
        webhook = schedule.actions.get("webhook")
        if webhook is not None and not str(webhook).startswith(("http://", "https://")):
            raise UserError(f"--webhook {webhook!r}: an http(s) URL")
        schedule.alarms = [asdict(Alarm(**spec)) for spec in schedule.alarms]  # checked now, with every default
        if len({spec["name"] for spec in schedule.alarms}) < len(schedule.alarms):
            raise UserError("two alarms of a schedule share a name; give each its own")
        kind = read_monitor(schedule.baseline)["kind"]
        known = metric_names(schedule.baseline)
        for alarm in schedule.alarms:
            if alarm["metric"] not in known:
                raise UserError(f"alarm {alarm['name']!r} watches {alarm['metric']!r}, which a {kind} monitor does not "
                                f"report; it reports: {', '.join(sorted(known)[:30])}")
        if schedule.kind and schedule.kind != kind:
            raise UserError(f"--kind {schedule.kind} does not match the baseline's kind {kind} ({schedule.baseline})")
        if not Path(schedule.capture).exists():
            raise UserError(f"--capture {schedule.capture}: no such directory")
        schedule.kind = kind
        schedule.created_at = _iso(_now())
        row = {**asdict(schedule), "alarms": json.dumps(schedule.alarms), "actions": json.dumps(schedule.actions)}
        try:
            with self.database.transaction() as connection:
                connection.execute(schedules_table.insert().values(**row))
        except IntegrityError:
            raise UserError(f"a schedule named {schedule.name!r} exists; delete it first or pick another name") from None
        return schedule

    def get(self, name: str) -> Schedule:
        with self.database.reading() as connection:
            row = connection.execute(select(schedules_table).where(schedules_table.c.name == name)).first()
        if row is None:
            raise NotFound(f"no schedule named {name!r}; see `fmeval monitor schedule list`")
        return self._schedule(row)

    def list(self) -> list[Schedule]:
        with self.database.reading() as connection:
            return [self._schedule(row) for row in connection.execute(select(schedules_table).order_by(schedules_table.c.name))]

    def set_state(self, name: str, state: str) -> Schedule:
        self.get(name)
        with self.database.transaction() as connection:
            connection.execute(update(schedules_table).where(schedules_table.c.name == name).values(state=state))
        return self.get(name)

    def delete(self, name: str) -> Schedule:
        schedule = self.get(name)
        with self.database.transaction() as connection:
            connection.execute(delete(executions_table).where(executions_table.c.schedule == name))
            connection.execute(delete(alarm_states_table).where(alarm_states_table.c.schedule == name))
            connection.execute(delete(schedules_table).where(schedules_table.c.name == name))
        return schedule

    @staticmethod
    def _schedule(row: Any) -> Schedule:
        values = dict(row._mapping)
        values["alarms"], values["actions"] = json.loads(values["alarms"]), json.loads(values["actions"])
        return Schedule(**values)

    # -- executions ---------------------------------------------------------------------------------------
    def executions(self, name: str, *, until: str | None = None, last: int | None = None) -> list[Execution]:
        """A schedule's executions in window order: all, or the `last` whose window starts at or before `until`."""
        query = select(executions_table).where(executions_table.c.schedule == name)
        if until is not None:
            query = query.where(executions_table.c.window_start <= until)
        start = executions_table.c.window_start
        # the newest `last` through the (schedule, window) index, not the whole history
        query = query.order_by(start.desc()).limit(last) if last is not None else query.order_by(start)
        with self.database.reading() as connection:
            rows = [self._execution(row) for row in connection.execute(query)]
        return rows[::-1] if last is not None else rows

    def claim(self, schedule: Schedule, window: Window, *, rerun: bool = False) -> int | None:
        """The id of a new execution of the window, or None when it has one already (or one that
        a live process is running). `rerun` replaces a finished one."""
        output = Path(schedule.output) / schedule.name / window.start.strftime("%Y-%m-%dT%H-%M-%SZ")
        row = {"schedule": schedule.name, "window_start": _iso(window.start), "window_end": _iso(window.end),
               "status": "InProgress", "metrics": "{}", "violations": 0, "alarms": "{}", "output_dir": str(output),
               "claimed_by": _claimer(), "started_at": _iso(_now())}
        key = (executions_table.c.schedule == schedule.name) & (executions_table.c.window_start == row["window_start"])
        try:
            with self.database.transaction() as connection:
                existing = connection.execute(select(executions_table).where(key)).first()
                if existing is None:
                    return connection.execute(executions_table.insert().values(**row)).inserted_primary_key[0]
                running_elsewhere = existing.status == "InProgress" and _claimer_alive(existing.claimed_by)
                if running_elsewhere or (existing.status != "InProgress" and not rerun):
                    return None
                taken = connection.execute(update(executions_table).where(
                    (executions_table.c.id == existing.id) & (executions_table.c.claimed_by == existing.claimed_by)
                    & (executions_table.c.status == existing.status)).values(
                    **{k: v for k, v in row.items() if k not in ("schedule", "window_start")}, reason=None,
                    finished_at=None))
                return existing.id if taken.rowcount == 1 else None
        except IntegrityError:  # another process inserted the same window first (a server database's race)
            return None

    def finish(self, execution_id: int, *, status: str, reason: str | None, metrics: dict[str, Any],
               violations: int) -> None:
        with self.database.transaction() as connection:
            connection.execute(update(executions_table).where(executions_table.c.id == execution_id).values(
                status=status, reason=reason, metrics=json.dumps(_finite(metrics)), violations=violations,
                finished_at=_iso(_now())))

    def record_alarms(self, execution_id: int, alarms: dict[str, Any]) -> None:
        with self.database.transaction() as connection:
            connection.execute(update(executions_table).where(executions_table.c.id == execution_id).values(
                alarms=json.dumps(alarms)))

    def execution(self, execution_id: int) -> Execution:
        with self.database.reading() as connection:
            return self._execution(connection.execute(
                select(executions_table).where(executions_table.c.id == execution_id)).one())

    @staticmethod
    def _execution(row: Any) -> Execution:
        values = dict(row._mapping)
        values["metrics"], values["alarms"] = json.loads(values["metrics"]), json.loads(values["alarms"])
        return Execution(**values)

    # -- alarm states -------------------------------------------------------------------------------------
    def alarm_state(self, schedule: str, alarm: str) -> str | None:
        key = (alarm_states_table.c.schedule == schedule) & (alarm_states_table.c.alarm == alarm)
        with self.database.reading() as connection:
            row = connection.execute(select(alarm_states_table.c.state).where(key)).first()
        return row[0] if row else None

    def set_alarm_state(self, schedule: str, alarm: str, state: str, *,
                        notify: tuple[str, dict[str, Any]] | None = None) -> str | None:
        """Record an alarm's new state; with `notify` (a webhook URL and its body), its notification
        goes into the outbox in the same transaction, so neither is kept without the other. Returns
        the notification's event id."""
        from fmeval.store.outbox import enqueue

        key = (alarm_states_table.c.schedule == schedule) & (alarm_states_table.c.alarm == alarm)
        with self.database.transaction() as connection:
            if connection.execute(update(alarm_states_table).where(key).values(
                    state=state, updated_at=_iso(_now()))).rowcount == 0:
                connection.execute(alarm_states_table.insert().values(schedule=schedule, alarm=alarm, state=state,
                                                                      updated_at=_iso(_now())))
            if notify is not None:
                url, payload = notify
                return enqueue(connection, topic="alarm.state", payload=payload, urls=[url])
        return None


def _finite(metrics: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe metrics: infinities and NaN become None (a missing datapoint)."""
    return {k: (v if not isinstance(v, float) or v == v and abs(v) != float("inf") else None) for k, v in metrics.items()}


# -- running ---------------------------------------------------------------------------------------------
def execute(store: MonitorStore, schedule: Schedule, window: Window, *, rerun: bool = False,
            cloudwatch_client: Any = None) -> Execution | None:
    """Run one window of a schedule (None when it was run already, or is running elsewhere). A
    window that has not ended is refused: its traffic is still arriving, and an execution recorded
    now would stand for the whole window."""
    from fmeval.monitoring.monitors import check_window

    if window.end > _now():
        raise UserError(f"window {window} has not ended: its traffic is still arriving; run it after {_iso(window.end)} "
                        f"(or check it without recording, with `fmeval monitor {schedule.kind} check`)")

    execution_id = store.claim(schedule, window, rerun=rerun)
    if execution_id is None:
        return None
    output = Path(store.execution(execution_id).output_dir)
    try:
        result = check_window(schedule.baseline, schedule.capture, window, output, ground_truth=schedule.ground_truth)
        store.finish(execution_id, status=result["status"], reason=result.get("reason"), metrics=result["metrics"],
                     violations=len(result["violations"]))
    except Exception as exc:  # a failed check is recorded, and the scheduler goes on with the next window
        reason = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
        output.mkdir(parents=True, exist_ok=True)
        (output / "failure.txt").write_text(traceback.format_exc(), encoding="utf-8")
        store.finish(execution_id, status="Failed", reason=reason, metrics={}, violations=0)
    store.record_alarms(execution_id, evaluate_alarms(store, schedule, store.execution(execution_id),
                                                      cloudwatch_client=cloudwatch_client))
    return store.execution(execution_id)


def evaluate_alarms(store: MonitorStore, schedule: Schedule, execution: Execution, *,
                    cloudwatch_client: Any = None) -> dict[str, Any]:
    """Each alarm's state after this execution, its webhook delivery on a change of state, and
    the metrics sent to CloudWatch."""
    from fmeval.monitoring import alerts

    outcome: dict[str, Any] = {}
    periods = max((spec.get("evaluation_periods", 1) for spec in schedule.alarms), default=0)
    history = store.executions(schedule.name, until=execution.window_start, last=periods) if periods else []
    for spec in schedule.alarms:
        alarm = alerts.Alarm(**spec)
        points = [e.metrics.get(alarm.metric) if e.status in FINAL else None for e in history][-alarm.evaluation_periods:]
        previous = store.alarm_state(schedule.name, alarm.name)
        state = alerts.evaluate_alarm(alarm, points, previous_state=previous)
        entry: dict[str, Any] = {"state": state, "previous": previous, "datapoints": points}
        if alerts.transitions(previous, state):
            notify = None
            if schedule.actions.get("webhook"):
                notify = (schedule.actions["webhook"], alerts.alarm_payload(
                    alarm, state=state, previous_state=previous, monitor=schedule.name,
                    execution={"id": execution.id, "status": execution.status, "window": execution.window,
                               "failure_reason": execution.reason}, datapoints=points))
            event_id = store.set_alarm_state(schedule.name, alarm.name, state, notify=notify)
            if event_id is not None:  # delivered now (retried); what is left, the outbox delivers later
                (row,) = settle(store.database, [event_id], within_s=ALARM_DELIVERY_S)
                entry["webhook"] = {"delivered": row["status"] == "delivered",  # not the URL: it may hold a token
                                    **{key: row[key] for key in ("event_id", "status", "attempts", "last_error")}}
        outcome[alarm.name] = entry
    namespace = schedule.actions.get("cloudwatch_namespace")
    if namespace and execution.metrics:
        try:
            sent = alerts.put_metrics(execution.metrics, namespace=namespace,
                                      dimensions={"MonitoringSchedule": schedule.name}, timestamp=execution.window.end,
                                      client=cloudwatch_client, region=schedule.actions.get("cloudwatch_region"))
            outcome["_cloudwatch"] = {"sent": sent}
        except Exception as exc:  # noqa: BLE001  (metrics not sent are recorded, the execution stands)
            outcome["_cloudwatch"] = {"sent": 0, "error": f"{type(exc).__name__}: {exc}"}
    return outcome


def run_due(store: MonitorStore, *, now: dt.datetime | None = None, names: Sequence[str] | None = None,
            on_execution: Callable[[Execution], None] | None = None, cloudwatch_client: Any = None) -> list[Execution]:
    """Run every ended window of every started schedule that has no execution yet, oldest first."""
    now = now or _now()
    done = []
    deliver_pending(store.database)  # notifications an earlier run left in the outbox
    for schedule in store.list():
        if schedule.state != "Scheduled" or (names and schedule.name not in names):
            continue
        finished = {e.window_start for e in store.executions(schedule.name) if e.status != "InProgress"}
        for window in schedule.windows(now):
            if _iso(window.start) in finished:
                continue
            execution = execute(store, schedule, window, cloudwatch_client=cloudwatch_client)
            if execution is not None:
                done.append(execution)
                if on_execution:
                    on_execution(execution)
    return done


def scheduler(store: MonitorStore, *, poll_seconds: float = 30.0, once: bool = False,
              on_execution: Callable[[Execution], None] | None = None) -> None:
    """Run due windows now and then every `poll_seconds` (or once), until interrupted."""
    while True:
        run_due(store, on_execution=on_execution)
        if once:
            return
        time.sleep(poll_seconds)
