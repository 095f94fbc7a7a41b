"""The audit log in the store: each card change writes its row in the change's transaction, with
the acting user (CLI: --as, else FMEVAL_USER); one table with the dashboard's rows; queries by
user, card, model and time. And the store's inputs bounded before the database sees them, with
simultaneous saves on PostgreSQL a conflict, never an IntegrityError."""
import threading

import pytest

from fmeval.cli import main
from fmeval.dashboard.accounts import Accounts
from fmeval.errors import UserError
from fmeval.governance.cards import ModelCard
from fmeval.governance.store import CardConflict, CardStore
from fmeval.runs.store import RunStore
from fmeval.store import Database
from fmeval.store.audit import query_audit
from tests.test_reports import make_run


def test_cli_actions_reach_the_audit_log_with_the_acting_user(tmp_path, monkeypatch, capsys):
    store = str(tmp_path / "store.sqlite")
    monkeypatch.setenv("FMEVAL_STORE", store)
    run = make_run(tmp_path, "m", [1, 0, 1, 1])
    with RunStore(store) as runs:
        model = runs.get(run.run_id).model
    assert main(["cards", "create", "c", "--from-run", run.output_path, "--as", "ed"]) == 0
    assert main(["cards", "create", "other", "--set", "model_overview.model_name=vendor", "--as", "ed"]) == 0
    monkeypatch.setenv("FMEVAL_USER", "ed")
    assert main(["cards", "submit", "c", "--version", "1"]) == 0
    assert main(["cards", "approve", "c", "--version", "1"]) == 2  # refused: no row, no event
    monkeypatch.setenv("FMEVAL_USER", "rev")
    assert main(["cards", "approve", "c", "--version", "1", "--comment", "fine"]) == 0
    database = Database(store)
    Accounts(database).audit("root", "user.add", "alice", {"role": "editor"})  # the dashboard's rows: same table
    rows = query_audit(database, limit=10)
    assert [(r["username"], r["action"], r["target"]) for r in rows] == [
        ("root", "user.add", "alice"), ("rev", "card.approve", "c"), ("ed", "card.submit", "c"),
        ("ed", "card.create", "other"), ("ed", "card.create", "c")]
    assert rows[1]["detail"]["comment"] == "fine" and rows[1]["detail"]["version"] == 1 and rows[1]["model"] == model
    assert [r["action"] for r in query_audit(database, card="c")] == ["card.approve", "card.submit", "card.create"]
    assert [r["target"] for r in query_audit(database, model="vendor")] == ["other"]
    assert [r["action"] for r in query_audit(database, user="ed", card="c")] == ["card.submit", "card.create"]
    assert [r["action"] for r in query_audit(database, user="ed", limit=1, offset=1)] == ["card.create"]
    middle = rows[2]["time"]  # the submit
    assert [r["action"] for r in query_audit(database, card="c", since=middle)] == ["card.approve", "card.submit"]
    assert [r["action"] for r in query_audit(database, card="c", until=middle)] == ["card.create"]
    assert query_audit(database, since="2999-01-01") == [] and len(query_audit(database, until="2999-01-01")) == 5
    with CardStore(database) as cards:
        assert [e["kind"] for e in cards.events("c")] == ["card.created", "card.pendingreview", "card.approved"]
    for bad, message in (({"limit": 0}, "limit"), ({"offset": -1}, "offset"), ({"since": "yesterday"}, "since")):
        with pytest.raises(UserError, match=message):
            query_audit(database, **bad)


def test_inputs_are_bounded_before_the_database_sees_them(store_url):
    with CardStore(store_url) as cards:
        for name in ("x" * 201, "", " padded", "a/b", "tab\there"):
            with pytest.raises(UserError, match="a card name is 1 to 200"):
                cards.create(name, ModelCard(), author="ed")
        with pytest.raises(UserError, match="the acting user is 1 to 100"):
            cards.create("c", ModelCard(), author="u" * 101)
        cards.create("c", ModelCard(), author="ed")
        digest = cards.version("c").content_hash
        with pytest.raises(UserError, match="a review comment is text of at most 4000"):
            cards.submit("c", version=1, content_hash=digest, actor="ed", comment="x" * 4001)
        with pytest.raises(UserError, match="64-digit SHA-256"):
            cards.submit("c", version=1, content_hash="abc", actor="ed")
        with pytest.raises(UserError, match="at most 1000 characters"):
            cards.add_webhook("http://127.0.0.1/" + "p" * 1000, actor="admin")
        assert cards.get("c").status == "Draft" and len(query_audit(cards.database)) == 1  # only the create


def _race(database, action):
    """Two threads (a connection each, as a dashboard's requests) do `action(store, who)` at the
    same moment; each outcome, or the exception raised."""
    barrier, outcomes = threading.Barrier(2), {}

    def one(who):
        with CardStore(database) as store:
            barrier.wait()
            try:
                outcomes[who] = action(store, who)
            except Exception as exc:  # noqa: BLE001  (the assertion below says which)
                outcomes[who] = exc

    threads = [threading.Thread(target=one, args=(who,)) for who in ("ann", "ben")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return list(outcomes.values())


def test_simultaneous_saves_and_creates_are_conflicts_on_each_backend(store_url):
    """40 races of two saves of one version, and of two creates of one name: one wins, the other
    gets CardConflict, never an IntegrityError (a 500 in the dashboard)."""
    with CardStore(store_url) as store:
        for i in range(40):
            name = f"race-{i}"
            store.create(name, ModelCard(), author="ed")
            saved = _race(store.database, lambda s, who: s.save(name, ModelCard.model_validate(
                {"intended_uses": {"intended_uses": who}}), based_on=1, author=who))
            assert sorted(type(o).__name__ for o in saved) == ["CardConflict", "CardVersion"], saved
            assert store.get(name).version == 2
            created = _race(store.database, lambda s, who: s.create(f"new-{i}", ModelCard(), author=who))
            assert sorted(type(o).__name__ for o in created) == ["CardConflict", "CardVersion"], created
        conflict = next(o for o in saved if isinstance(o, CardConflict))
        assert "changed since version 1 (v2 saved by" in str(conflict)


def test_a_failed_login_with_an_overlong_name_is_audited_not_an_error(store_url):
    database = Database(store_url)
    accounts = Accounts(database)
    assert accounts.log_in("n" * 300, "some password") is None
    (row,) = query_audit(database)
    assert (row["action"], row["username"], len(row["target"])) == ("login.failed", "n" * 100, 300)
