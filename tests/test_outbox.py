"""The store's outbox: a change and its event commit together; delivery afterwards, retried with
the shared policy, recorded when it gives up; exactly once to a receiver that drops duplicates by
the event id, across a SIGKILL between the commit and the delivery, or during the delivery."""
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from fmeval.cli import main
from fmeval.governance.cards import ModelCard
from fmeval.governance.store import CardStore
from fmeval.retry import RetryPolicy
from fmeval.store import Database
from fmeval.store.outbox import EVENT_ID_HEADER, OutboxWorker, deliver_pending, deliveries, settle

REPO = Path(__file__).resolve().parent.parent


class Receiver:
    """A loopback webhook: answers each POST with the next of `statuses` (then 200), keeps the
    bodies and event-id headers, and can hold a request until released."""

    def __init__(self, statuses=(), *, hold=False, headers=None):
        self.statuses, self.hold, self.headers = list(statuses), hold, headers or {}
        self.posts, self.arrived, self.release = [], threading.Event(), threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.posts.append((self.headers.get(EVENT_ID_HEADER), body))
                receiver.arrived.set()
                if receiver.hold:
                    receiver.release.wait(60)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                for key, value in receiver.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def unique(self):
        """What a receiver that drops duplicates by the event id keeps."""
        kept = {}
        for event_id, body in self.posts:
            kept.setdefault(event_id, body)
        return kept

    def close(self):
        self.release.set()
        self.server.shutdown()


@pytest.fixture
def receiver():
    made = []

    def make(*args, **kwargs):
        made.append(Receiver(*args, **kwargs))
        return made[-1]

    yield make
    for one in made:
        one.close()


HOLD_AFTER_COMMIT = """
import sys
from fmeval.governance.cards import ModelCard
from fmeval.governance.store import CardStore
store = CardStore(sys.argv[1])
store.create("held", ModelCard(), author="ed")  # the change, its audit row and its event: committed
print("committed", flush=True)
sys.stdin.read()  # held here, between the commit and the delivery, until killed
"""

KILLED_MID_DELIVERY = """
import sys
from fmeval.store import Database
from fmeval.store.outbox import deliver_pending
deliver_pending(Database(sys.argv[1]), timeout_s=1.0)  # the receiver holds the POST; the process is killed
"""


def _child(script, store, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", script, store], env=env, text=True, **kwargs)


def test_a_process_killed_between_commit_and_delivery_delivers_once_after_restart(tmp_path, receiver):
    hook = receiver()
    store = str(tmp_path / "store.sqlite")
    with CardStore(store) as cards:
        cards.add_webhook(hook.url, actor="admin")
    child = _child(HOLD_AFTER_COMMIT, store, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdout.readline().strip() == "committed"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(30)
    assert hook.posts == []  # killed before any delivery
    with CardStore(store) as cards:
        (event,) = cards.events("held")
        assert cards.versions("held")[0].version == 1 and event["kind"] == "card.created"
        assert event["deliveries"][hook.url]["status"] == "pending"  # kept, not lost
    # the restart: the next command delivers what the killed one left, then its own event
    assert main(["cards", "create", "after", "--as", "ed", "--store", store]) == 0
    assert deliver_pending(Database(store)) == []  # nothing left to send again
    assert [body["card"] for _, body in hook.posts] == ["held", "after"]
    assert [event_id for event_id, _ in hook.posts] == [body["event_id"] for _, body in hook.posts]
    assert hook.posts[0][0] == event["payload"]["event_id"]


def test_a_process_killed_during_delivery_is_sent_again_with_the_same_event_id(tmp_path, receiver):
    hook = receiver(hold=True)
    store = str(tmp_path / "store.sqlite")
    with CardStore(store) as cards:
        cards.add_webhook(hook.url, actor="admin")
        cards.create("c", ModelCard(), author="ed")
    child = _child(KILLED_MID_DELIVERY, store)
    assert hook.arrived.wait(60)  # the POST is at the receiver, its outcome not yet recorded
    os.kill(child.pid, signal.SIGKILL)
    child.wait(30)
    hook.hold = False
    hook.release.set()
    database = Database(store)
    (row,) = settle(database, [hook.posts[0][0]], within_s=60)  # waits out the dead process's claim
    assert row["status"] == "delivered" and row["attempts"] == 1
    assert len(hook.posts) == 2 and hook.posts[0] == hook.posts[1]  # at least once: sent twice, same id
    assert list(hook.unique()) == [row["event_id"]]  # exactly once for a receiver that drops duplicates


def test_a_webhook_that_keeps_failing_is_given_up_and_recorded(tmp_path, receiver, caplog):
    failing, refusing, throttling = receiver([503] * 10), receiver([400]), receiver([429], headers={"Retry-After": "0"})
    database = Database(tmp_path / "store.sqlite")
    with CardStore(database) as cards:
        for hook in (failing, refusing, throttling):
            cards.add_webhook(hook.url, actor="admin")
        cards.create("c", ModelCard(), author="ed")
        event_id = cards.events("c")[0]["payload"]["event_id"]
    rows = {row["url"]: row for row in settle(database, [event_id], within_s=30,
                                              policy=RetryPolicy(max_retries=2, base_delay_s=0.0))}
    assert (rows[failing.url]["status"], rows[failing.url]["attempts"], rows[failing.url]["last_status"]) == (
        "gave_up", 3, 503)
    assert rows[failing.url]["last_error"] == "HTTP 503" and rows[failing.url]["finished_at"]
    assert (rows[refusing.url]["status"], rows[refusing.url]["attempts"]) == ("gave_up", 1)  # a 4xx is final
    assert (rows[throttling.url]["status"], rows[throttling.url]["attempts"]) == ("delivered", 2)
    assert len(failing.posts) == 3 and len(refusing.posts) == 1 and len(throttling.posts) == 2
    assert "gave up after 3 attempt(s): HTTP 503" in caplog.text
    with CardStore(database) as cards:
        assert cards.events("c")[0]["deliveries"][failing.url]["status"] == "gave_up"
    assert deliver_pending(database) == []  # given up is final


def test_the_worker_delivers_in_the_background_and_stops(tmp_path, receiver):
    hook = receiver()
    database = Database(tmp_path / "store.sqlite")
    worker = OutboxWorker(database, interval_s=30.0).start()
    try:
        with CardStore(database) as cards:
            cards.add_webhook(hook.url, actor="admin")
            cards.create("c", ModelCard(), author="ed")
        worker.wake()  # after a commit: no wait for the next interval
        assert hook.arrived.wait(30)
    finally:
        worker.stop()
    (row,) = deliveries(database)
    assert row["status"] == "delivered" and hook.posts[0][1]["card"] == "c"


HOLD_ALARM = """
import sys
from fmeval.monitoring.schedules import MonitorStore
store = MonitorStore(sys.argv[1])
store.set_alarm_state("hourly", "drift", "ALARM", notify=(sys.argv[2], {"AlarmName": "drift", "NewStateValue": "ALARM"}))
print("committed", flush=True)
sys.stdin.read()
"""


def test_an_alarm_state_and_its_notification_survive_a_kill_together(tmp_path, receiver):
    from fmeval.monitoring.schedules import MonitorStore

    hook = receiver()
    store = str(tmp_path / "store.sqlite")
    Database(store).close()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", HOLD_ALARM, store, hook.url], env=env, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdout.readline().strip() == "committed"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(30)
    with MonitorStore(store) as monitors:
        assert monitors.alarm_state("hourly", "drift") == "ALARM"
        assert [row["status"] for row in deliveries(monitors.database)] == ["pending"]
        assert [d.status for d in deliver_pending(monitors.database)] == ["delivered"]
        assert deliver_pending(monitors.database) == []
    assert [body["NewStateValue"] for _, body in hook.posts] == ["ALARM"]


def test_a_webhook_that_never_answers_holds_a_command_only_for_its_delivery_budget(tmp_path, monkeypatch, caplog):
    """Five events wait for a URL that accepts connections and never answers: the next command
    tries within its budget, one event at a time, and leaves the rest pending, saying so."""
    import socket

    from fmeval.cli import cards as cards_command

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)  # connections complete in the kernel; nothing ever reads them
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    store = str(tmp_path / "store.sqlite")
    try:
        with CardStore(store) as cards:
            cards.add_webhook(url, actor="admin")
            for i in range(4):
                cards.create(f"c{i}", ModelCard(), author="ed")
        monkeypatch.setattr(cards_command, "DELIVERY_WITHIN_S", 1.0)
        monkeypatch.setattr(cards_command, "DELIVERY_TIMEOUT_S", 0.4)
        assert main(["cards", "create", "c4", "--as", "ed", "--store", store]) == 0
    finally:
        listener.close()
    rows = deliveries(Database(store))
    assert len(rows) == 5 and all(row["status"] == "pending" for row in rows)
    assert 1 <= sum(row["attempts"] for row in rows) <= 3  # within the budget, not one timeout per event
    assert all("ReadTimeout" in row["last_error"] for row in rows if row["attempts"])
    assert "webhook event(s) not delivered yet stay in the store's outbox" in caplog.text
