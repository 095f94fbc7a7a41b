"""The model registry: runs, cards and monitors of each model, and its lineage."""
import datetime as dt
import json

from fmeval.cli import main
from fmeval.runs.store import RunStore
from tests.test_monitoring import T0, capture_rows, tabular
from tests.test_reports import make_run


def test_models_gather_their_runs_cards_and_monitors(tmp_path, capsys, monkeypatch):
    store = str(tmp_path / "store.sqlite")
    monkeypatch.setenv("FMEVAL_STORE", store)  # runs index themselves in the default store
    first = make_run(tmp_path, "first", [1, 0, 0, 1])
    second = make_run(tmp_path, "second", [1, 1, 1, 1])
    with RunStore(store) as runs:
        key = runs.get(second.run_id).model
        # run times have second precision: the first run an hour earlier, so that "newest" is one of them
        first.created_at = (dt.datetime.fromisoformat(second.created_at) - dt.timedelta(hours=1)).isoformat()
        runs.index(first, run_id=first.run_id)
    assert main(["cards", "create", "card-a", "--from-run", second.output_path, "--set",
                 "intended_uses.risk_rating=High"]) == 0
    assert main(["cards", "create", "by-hand", "--set", "model_overview.model_name=vendor-model"]) == 0
    import pandas as pd

    pd.DataFrame(tabular(500, 0)).to_csv(tmp_path / "reference.csv", index=False)
    assert main(["monitor", "data-quality", "baseline", "--data", str(tmp_path / "reference.csv"), "-o",
                 str(tmp_path / "base")]) == 0
    capture_rows(tmp_path / "capture", tabular(50, 1), start=T0)
    assert main(["monitor", "schedule", "create", "dq", "--baseline", str(tmp_path / "base"), "--capture",
                 str(tmp_path / "capture" / "model"), "--cron", "0 * * * *", "-o", str(tmp_path / "out"),
                 "--model", key]) == 0
    capsys.readouterr()
    assert main(["models", "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    # a draft never governs: the risk is Unknown until a version is approved, and the draft is pending
    assert f"{key}\trisk Unknown\tcard none approved\t2 run(s)\tdata-quality healthy\tpending: card-a v1 Draft (risk High)" \
        in listed
    assert any(line.startswith("vendor-model\trisk Unknown\tcard none approved\t0 run(s)") for line in listed)
    assert main(["models", "show", key, "--json"]) == 0
    entry = json.loads(capsys.readouterr().out)
    assert [run["run_id"] for run in entry["runs"]] == [second.run_id, first.run_id]  # newest first
    assert entry["cards"][0]["name"] == "card-a" and entry["cards"][0]["run_ids"] == [second.run_id]
    assert entry["monitor_health"] == {"data-quality": "healthy", "model-quality": "missing", "bias-drift": "missing",
                                       "attribution-drift": "missing", "llm-outputs": "missing"}
    trend = entry["latest_scores"][0]
    assert (trend["value"], trend["previous"], trend["runs"]) == (1.0, 0.5, 2)
    assert main(["monitor", "schedule", "stop", "dq"]) == 0
    assert main(["models", "show", key, "--json"]) == 0
    assert json.loads(capsys.readouterr().out.split("\n", 1)[1])["monitor_health"]["data-quality"] == "inactive"
    assert main(["models", "show", "nope"]) == 2


def test_the_registry_shows_the_approved_version_beside_a_newer_draft(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FMEVAL_STORE", str(tmp_path / "store.sqlite"))
    run = make_run(tmp_path, "only", [1, 1, 0, 0])
    monkeypatch.setenv("FMEVAL_USER", "alice")
    assert main(["cards", "create", "c", "--from-run", run.output_path, "--set", "intended_uses.risk_rating=Medium"]) == 0
    assert main(["cards", "submit", "c", "--version", "1"]) == 0
    assert main(["cards", "approve", "c", "--version", "1", "--as", "bob"]) == 0
    assert main(["cards", "edit", "c", "--set", "intended_uses.risk_rating=High"]) == 0  # a draft, not reviewed
    capsys.readouterr()
    assert main(["models", "list"]) == 0
    assert "\trisk Medium\tcard c v1 Approved by bob\t1 run(s)\tno monitors\tpending: c v2 Draft (risk High)" \
        in capsys.readouterr().out


def _listed(capsys, key):
    capsys.readouterr()
    assert main(["models", "list"]) == 0
    return next(line for line in capsys.readouterr().out.splitlines() if line.startswith(f"{key}\t"))


def test_the_governing_card_is_the_latest_approved_version_never_a_newer_draft(tmp_path, capsys, monkeypatch):
    """The issue's reproduction: an approved High card `a`, then a new draft `b` from the same run
    with risk Low; then a clone and an import. The model stays "High, Approved" until another
    version is approved; an archived card governs no more."""
    store = str(tmp_path / "store.sqlite")
    monkeypatch.setenv("FMEVAL_STORE", store)
    run = make_run(tmp_path, "only", [1, 1, 0, 0])
    with RunStore(store) as runs:
        key = runs.get(run.run_id).model
    assert main(["cards", "create", "a", "--from-run", run.output_path, "--set", "intended_uses.risk_rating=High",
                 "--as", "ed"]) == 0
    assert main(["cards", "submit", "a", "--version", "1", "--as", "ed"]) == 0
    assert main(["cards", "approve", "a", "--version", "1", "--as", "rev"]) == 0
    assert _listed(capsys, key) == f"{key}\trisk High\tcard a v1 Approved by rev\t1 run(s)\tno monitors"

    assert main(["cards", "create", "b", "--from-run", run.output_path, "--set", "intended_uses.risk_rating=Low",
                 "--as", "ed"]) == 0
    assert main(["cards", "clone", "a", "a-copy", "--as", "ed"]) == 0
    assert main(["cards", "edit", "a-copy", "--set", "intended_uses.risk_rating=Low", "--as", "ed"]) == 0
    assert main(["cards", "export", "a", "--format", "json", "-o", str(tmp_path / "a.json")]) == 0
    content = json.loads((tmp_path / "a.json").read_text())
    content["intended_uses"]["risk_rating"] = "Low"
    (tmp_path / "imported.json").write_text(json.dumps(content))
    assert main(["cards", "import", str(tmp_path / "imported.json"), "--name", "imported", "--as", "ed"]) == 0
    assert main(["cards", "submit", "imported", "--version", "1", "--as", "ed"]) == 0
    line = _listed(capsys, key)
    assert line.startswith(f"{key}\trisk High\tcard a v1 Approved by rev\t1 run(s)\tno monitors\tpending: ")
    assert set(line.split("pending: ")[1].split(", ")) == {
        "b v1 Draft (risk Low)", "a-copy v2 Draft (risk Low)", "imported v1 PendingReview (risk Low)"}
    assert main(["models", "show", key, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["risk_rating"] == "High" and shown["governing_card"]["name"] == "a"

    assert main(["cards", "submit", "b", "--version", "1", "--as", "ed"]) == 0
    assert main(["cards", "approve", "b", "--version", "1", "--as", "rev"]) == 0  # now the latest approved
    assert _listed(capsys, key).startswith(f"{key}\trisk Low\tcard b v1 Approved by rev\t")
    assert main(["cards", "archive", "b", "--version", "1", "--as", "rev"]) == 0  # withdrawn: a governs again
    assert _listed(capsys, key).startswith(f"{key}\trisk High\tcard a v1 Approved by rev\t")


def test_the_registry_reads_no_card_content(tmp_path, monkeypatch):
    """The registry reads each version's summary columns: a store whose content cannot be parsed
    still lists its models (the content is never read)."""
    from sqlalchemy import update

    from fmeval.governance.cards import ModelCard
    from fmeval.governance.registry import load_registry
    from fmeval.governance.store import CardStore, versions_table
    from fmeval.store import Database

    database = Database(tmp_path / "store.sqlite")
    with CardStore(database) as cards:
        cards.create("c", ModelCard.model_validate({"model_overview": {"model_name": "m"},
                                                    "intended_uses": {"risk_rating": "High"}}), author="ed")
        version = cards.version("c")
        cards.submit("c", version=1, content_hash=version.content_hash, actor="ed")
        cards.approve("c", version=1, content_hash=version.content_hash, actor="rev")
    with database.transaction() as connection:
        connection.execute(update(versions_table).values(content="not json"))
    entry = load_registry(database)["m"]
    assert (entry.risk_rating, entry.card.name, entry.card.approved_version) == ("High", "c", 1)


def test_the_governing_cards_tie_break_and_what_never_governs():
    from fmeval.governance.registry import CardEntry, ModelEntry

    def card(name, status, approved_at, risk="Low"):
        return CardEntry(name, status, 3, "High", "rev", "2026-01-01", [], approved_version=2 if approved_at else None,
                         approved_risk_rating=risk, approved_at=approved_at)

    same = "2026-02-01T00:00:00.000001+00:00"
    entry = ModelEntry("m", cards=[card("b", "Approved", same, "Medium"), card("a", "Draft", same, "Low"),
                                   card("z", "Archived", "2026-03-01T00:00:00+00:00", "High"),
                                   card("new", "PendingReview", None)])
    assert entry.card.name == "a" and entry.risk_rating == "Low"  # equal times: the name that sorts first
    assert [c.name for c in entry.pending] == ["a", "new"]  # a's newer draft is pending beside its approval
    assert ModelEntry("m", cards=[card("new", "Draft", None)]).risk_rating == "Unknown"
