"""fmeval's store on embedded SQLite and on PostgreSQL: migrations, concurrency, the run index."""
import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import inspect, text

from fmeval import evaluate
from fmeval.cli import main
from fmeval.model_runners.function import FunctionRunner
from fmeval.runs.store import RunStore
from fmeval.store import Database
from fmeval.store.database import VERSION_TABLE, _heads

REPO = Path(__file__).resolve().parent.parent


def test_opening_a_store_brings_every_migration_branch_to_its_head(store_url):
    with Database(store_url) as db:
        with db.reading() as connection:
            assert inspect(connection).has_table("runs")
            applied = {row[0] for row in connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))}
    # outbox_0001 depends on dashboard_0001 (the audit table); dashboard_0002 (login failures) is the dashboard's head
    assert applied == _heads() and {head.split("_")[0] for head in applied} == {"runs", "monitoring", "governance", "outbox",
                                                                              "dashboard"}
    with Database(store_url) as db, db.reading() as connection:
        assert {"dashboard_audit", "store_outbox", "governance_reviews"} <= set(inspect(connection).get_table_names())


def test_the_migrations_create_exactly_the_tables_the_code_declares(store_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import importlib

    from fmeval.store.schema import metadata

    for module in ("fmeval.runs.store", "fmeval.monitoring.schedules", "fmeval.governance.store",
                   "fmeval.dashboard.accounts", "fmeval.store.audit", "fmeval.store.outbox"):  # each declares its tables
        importlib.import_module(module)

    with Database(store_url) as db, db.reading() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert [d for d in differences if not (d[0] == "remove_table" and d[1].name == VERSION_TABLE)] == []


def _open(url, barrier):
    barrier.wait()  # all processes open the new store at the same moment
    Database(url).close()


def test_processes_opening_a_new_store_at_once_migrate_it_once(store_url):
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(4)
    workers = [context.Process(target=_open, args=(store_url, barrier)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    with Database(store_url) as db, db.reading() as connection:
        assert connection.execute(text(f"SELECT count(*) FROM {VERSION_TABLE}")).scalar() == len(_heads())


def test_an_up_to_date_store_opens_without_loading_alembic(tmp_path):
    url = str(tmp_path / "s.sqlite")
    Database(url).close()
    probe = "import sys; from fmeval.store import Database; Database(sys.argv[1]).close(); print('alembic' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe, url], capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.stdout.strip() == "False"


def _run(tmp_path, name, store):
    data = tmp_path / f"{name}.jsonl"
    data.write_text("".join(json.dumps({"model_input": f"q{i}", "target_output": "Q"}) + "\n" for i in range(3)))
    return evaluate(evaluation="factual_knowledge", dataset=data, model=FunctionRunner(str.upper), store=store,
                    output=tmp_path / name, progress=False)


def test_the_run_index_on_each_backend(store_url, tmp_path, capsys):
    summary = _run(tmp_path, "a", store_url)
    other = _run(tmp_path, "b", store_url)
    with RunStore(store_url) as store:
        assert [run.run_id for run in store.list()] in ([other.run_id, summary.run_id], [summary.run_id, other.run_id])
        stored = store.get(summary.run_id)
        assert stored.num_records == 3 and stored.scores[0]["value"] == 1.0 and stored.status == "ok"
        assert store.list(evaluation="factual", dataset="b")[0].run_id == other.run_id
        assert store.list(model="100%_no_such") == []  # LIKE wildcards in a filter are literal
        store.index(summary, run_id=summary.run_id)  # indexing again replaces, never duplicates
        assert len(store.list()) == 2
    assert main(["runs", "--store-url", store_url, "show", summary.run_id]) == 0
    assert json.loads(capsys.readouterr().out)["output_dir"] == str((tmp_path / "a").resolve())
    assert main(["report", summary.run_id, "--store-url", store_url, "-o", str(tmp_path / "r.md")]) == 0
    assert main(["runs", "--store-url", store_url, "delete", summary.run_id]) == 0
    assert main(["runs", "--store-url", store_url, "show", summary.run_id]) == 2


def _index_many(url, worker, directory):
    from fmeval.runs.summary import EvalOutput
    from fmeval.scores import EvalScore

    with RunStore(url) as store:
        for i in range(40):
            summary = EvalOutput(eval_name="e", dataset_name="d", dataset_scores=[EvalScore("m", 0.5)],
                                 output_path=directory, created_at="2026-01-01T00:00:00")
            store.index(summary, run_id=f"{worker}-{i}")


def test_concurrent_writers_lose_nothing(store_url, tmp_path):
    RunStore(store_url).close()
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_index_many, args=(store_url, w, str(tmp_path))) for w in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    with RunStore(store_url) as store:
        assert len(store.list()) == 120


def test_a_store_that_cannot_be_opened_is_a_clear_error(tmp_path, capsys):
    assert main(["runs", "--store-url", "postgresql://fmeval:s3cret@127.0.0.1:1/nowhere", "list"]) == 2
    err = capsys.readouterr().err
    assert "cannot open the store postgresql+psycopg://fmeval:***@127.0.0.1:1/nowhere" in err and "s3cret" not in err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["runs", "--store-url", str(blocker / "store.sqlite"), "--create", "list"]) == 2
    assert "cannot open the store" in capsys.readouterr().err


def test_a_store_made_before_a_migration_is_upgraded_with_its_rows(store_url):
    """monitoring_0002 adds the model a schedule watches: a store at monitoring_0001 keeps its schedules."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    from fmeval.store.database import MIGRATIONS, database_url

    engine = create_engine(database_url(store_url))
    with engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"], config.attributes["version_table"] = connection, VERSION_TABLE
        command.upgrade(config, "monitoring_0001")
        connection.execute(text("INSERT INTO monitoring_schedules (name, kind, baseline, capture, cron, state, output, "
                                "alarms, actions, start, created_at) VALUES ('old', 'data-quality', 'b', 'c', "
                                "'0 * * * *', 'Scheduled', 'o', '[]', '{}', '2026-01-01T00:00:00+00:00', 'now')"))
    engine.dispose()
    with Database(store_url) as db, db.reading() as connection:
        rows = list(connection.execute(text("SELECT name, model FROM monitoring_schedules")))
        applied = {row[0] for row in connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))}
    assert rows == [("old", None)] and "monitoring_0002" in applied


def test_cards_and_audit_rows_made_before_the_outbox_and_reviews_are_upgraded(store_url):
    """governance_0002 reads each version's summary (risk, model, runs) from its content, and
    outbox_0001 keeps the dashboard's audit rows: a store at governance_0001 and dashboard_0001
    keeps its approved card as its model's governing card."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    from fmeval.governance.registry import load_registry
    from fmeval.store.audit import query_audit
    from fmeval.store.database import MIGRATIONS, database_url

    engine = create_engine(database_url(store_url))
    with engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"], config.attributes["version_table"] = connection, VERSION_TABLE
        command.upgrade(config, "governance_0001")
        command.upgrade(config, "dashboard_0001")
        content = json.dumps({"model_overview": {"model_name": "old-model"}, "intended_uses": {"risk_rating": "High"}})
        connection.execute(text("INSERT INTO governance_cards (name, status, version, created_at, updated_at, "
                                "approved_version, approved_by) VALUES ('old', 'Approved', 1, '2026-01-01T00:00:00+00:00', "
                                "'2026-01-02T00:00:00+00:00', 1, 'rev')"))
        connection.execute(text("INSERT INTO governance_card_versions (name, version, status, content, author, created_at, "
                                "diff) VALUES ('old', 1, 'Draft', :content, 'ed', '2026-01-01T00:00:00+00:00', '')"),
                           {"content": content})
        connection.execute(text("INSERT INTO dashboard_audit (time, username, action, target, detail) VALUES "
                                "('2026-01-02T00:00:00+00:00', 'rev', 'card.approve', 'old', '{}')"))
    engine.dispose()
    with Database(store_url) as db:
        entry = load_registry(db)["old-model"]
        assert (entry.risk_rating, entry.card.name, entry.card.approved_at) == ("High", "old", "2026-01-02T00:00:00+00:00")
        assert [(r["username"], r["action"], r["model"]) for r in query_audit(db, card="old")] == [
            ("rev", "card.approve", None)]


def test_a_mistyped_store_path_is_an_error_not_a_new_empty_store(tmp_path, capsys, monkeypatch):
    real = tmp_path / "store.sqlite"
    typo = tmp_path / "stroe.sqlite"
    assert main(["cards", "create", "c", "--as", "ed", "--store", str(real), "--create"]) == 0
    for words in (["cards", "list"], ["models", "list"], ["runs", "list"]):
        assert main([*words[:1], "--store", str(typo), *words[1:]] if words[0] == "runs"
                    else [*words, "--store", str(typo)]) == 2
        assert f"--store {typo}: no such store file" in capsys.readouterr().err
    assert not typo.exists()
    assert main(["cards", "list", "--store", str(real)]) == 0 and "c\tDraft" in capsys.readouterr().out
    monkeypatch.setenv("FMEVAL_STORE", str(tmp_path / "default" / "fmeval.sqlite"))  # the default store: made
    assert main(["cards", "list"]) == 0 and (tmp_path / "default" / "fmeval.sqlite").exists()


def test_a_store_upgraded_by_a_newer_fmeval_is_a_clear_error_not_a_bug(tmp_path, capsys):
    """A revision this fmeval has no script for (a newer fmeval migrated the store): exit 2 naming
    the store and the revision; Alembic's "Can't locate revision" used to exit 3, as a bug."""
    path = tmp_path / "s.sqlite"
    Database(str(path)).close()
    database = Database(str(path))
    with database.transaction() as connection:
        connection.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = 'runs_0099_from_the_future' "
                                "WHERE version_num LIKE 'runs_%'"))
    database.close()
    assert main(["runs", "--store", str(path), "list"]) == 2
    err = capsys.readouterr().err
    assert "was upgraded by a newer fmeval" in err and "runs_0099_from_the_future" in err and "Traceback" not in err
