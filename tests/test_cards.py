"""Model cards: SageMaker's schema, auto-fill from a real run and analysis, the review lifecycle,
versions with diffs, optimistic versioning, events to a loopback webhook, and exports (PDF and
HTML through headless Chromium)."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from fmeval.bias.analyze import analyze
from fmeval.cli import main
from fmeval.governance.cards import ModelCard
from fmeval.governance.store import CardConflict, CardStore
from tests.browser import open_offline
from tests.test_reports import make_run


@pytest.fixture
def cli(tmp_path):
    store = ["--store", str(tmp_path / "store.sqlite"), "--create"]

    def run(*words):
        return main(["cards", *words, *store])

    return run


def test_a_card_from_a_run_through_review_to_approval(tmp_path, cli, capsys, webhook):
    url, received = webhook
    summary = make_run(tmp_path, "model-a", [1, 1, 0, 1, 1, 0, 1, 1])
    assert cli("webhooks", "add", url) == 0
    assert cli("create", "qa-bot", "--from-run", summary.output_path, "--set", "intended_uses.risk_rating=Medium",
               "--set", "model_overview.model_version=1.5", "--as", "alice") == 0
    capsys.readouterr()
    assert cli("show", "qa-bot", "--json") == 0
    card = json.loads(capsys.readouterr().out)
    job = card["evaluation_details"][0]
    assert job["name"].startswith("factual_knowledge on shared (run ")
    dataset_scores = {m["name"]: m for m in job["metric_groups"][0]["metric_data"]}
    score = next(s for s in summary.dataset_scores if s.name == "factual_knowledge")
    assert dataset_scores["factual_knowledge"]["value"] == pytest.approx(6 / 8) == score.value
    assert f"[{score.ci_lower:.4f}, {score.ci_upper:.4f}]" in dataset_scores["factual_knowledge"]["notes"]
    assert [g["name"] for g in job["metric_groups"]] == ["dataset", "category: even", "category: odd"]
    assert card["intended_uses"]["risk_rating"] == "Medium" and card["model_overview"]["model_version"] == 1.5

    assert cli("edit", "qa-bot", "--set", "intended_uses.purpose_of_model=Answer support questions", "--as", "alice") == 0
    capsys.readouterr()
    assert cli("diff", "qa-bot", "1", "2") == 0
    assert '+    "purpose_of_model": "Answer support questions",' in capsys.readouterr().out
    assert cli("submit", "qa-bot", "--version", "2", "--as", "alice") == 0
    assert cli("edit", "qa-bot", "--set", "intended_uses.risk_rating=Low") == 2
    assert "reject it back to Draft" in capsys.readouterr().err
    assert cli("approve", "qa-bot", "--version", "2", "--as", "alice") == 2  # the author of the version under review
    assert "someone else must approve it" in capsys.readouterr().err
    assert cli("approve", "qa-bot", "--version", "2", "--as", "bob", "--comment", "checked the CIs") == 0
    assert cli("edit", "qa-bot", "--set", "intended_uses.risk_rating=High", "--as", "carol") == 0  # a new Draft version
    with CardStore(tmp_path / "store.sqlite") as store:
        stored = store.get("qa-bot")
        assert (stored.status, stored.version, stored.approved_version, stored.approved_by) == ("Draft", 3, 2, "bob")
        assert store.version("qa-bot", 2).card.intended_uses.risk_rating == "Medium"  # the approved version stands
        kinds = [(e["kind"], e["actor"]) for e in store.events("qa-bot")]
    assert kinds == [("card.created", "alice"), ("card.version", "alice"), ("card.pendingreview", "alice"),
                     ("card.approved", "bob"), ("card.version", "carol")]
    assert [(hook["kind"], hook["version"]) for hook in received] == [
        ("card.created", 1), ("card.version", 2), ("card.pendingreview", 2), ("card.approved", 2), ("card.version", 3)]
    assert cli("archive", "qa-bot", "--version", "3") == 0 and cli("submit", "qa-bot", "--version", "3") == 2
    assert "archived cards are final" in capsys.readouterr().err


def test_two_editors_of_one_card_the_second_gets_a_conflict(tmp_path, store_url):
    with CardStore(store_url) as store:
        name = f"card-{tmp_path.name}"
        store.create(name, ModelCard(), author="alice")
        first = ModelCard.model_validate({"intended_uses": {"intended_uses": "triage"}})
        second = ModelCard.model_validate({"intended_uses": {"intended_uses": "billing"}})
        store.save(name, first, based_on=1, author="alice")
        with pytest.raises(CardConflict, match=r"changed since version 1 \(v2 saved by alice"):
            store.save(name, second, based_on=1, author="bob")
        assert store.version(name).card == first and store.get(name).version == 2  # nothing lost, nothing overwritten
        store.delete(name)


def test_import_reports_every_bad_field_and_json_round_trips(tmp_path, cli, capsys):
    bad = {"model_overview": {"model_name": "m", "model_colour": "blue"},
           "intended_uses": {"risk_rating": "Extreme"},
           "evaluation_details": [{"name": "e", "metric_groups": [{"name": "g", "metric_data": [{"name": "x"}]}]}]}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    assert cli("import", str(tmp_path / "bad.json"), "--name", "bad") == 2
    err = capsys.readouterr().err
    assert "model_overview.model_colour: Extra inputs are not permitted" in err
    assert "intended_uses.risk_rating: Input should be 'High', 'Medium', 'Low' or 'Unknown'" in err
    assert "evaluation_details.0.metric_groups.0.metric_data.0.type: Field required" in err
    (tmp_path / "broken.json").write_text('{"model_overview": {,}')
    assert cli("import", str(tmp_path / "broken.json"), "--name", "x") == 2
    assert "broken.json:1" in capsys.readouterr().err
    good = {"model_overview": {"model_name": "m", "model_artifact": ["s3://bucket/model.tar.gz"]},
            "intended_uses": {"risk_rating": "Low"}, "additional_information": {"custom_details": {"team": "nlp"}}}
    (tmp_path / "good.json").write_text(json.dumps(good))
    assert cli("import", str(tmp_path / "good.json"), "--name", "good") == 0
    assert cli("export", "good", "--format", "json", "-o", str(tmp_path / "out.json")) == 0
    assert json.loads((tmp_path / "out.json").read_text()) == good  # SageMaker's content, unchanged


def test_a_card_with_an_analysis_exports_to_every_format_and_stays_inert(tmp_path, cli, browser):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"age": rng.integers(18, 70, 300), "gender": rng.choice(["m", "f"], 300),
                          "label": rng.integers(0, 2, 300)})
    frame["prediction"] = np.where(frame.gender == "m", 1, frame.label)
    analyze({"label": "label", "predicted_label_name_or_index": "prediction",
             "facet": [{"name_or_index": "gender", "value_or_threshold": ["f"]}],
             "methods": {"pre_training_bias": {"methods": ["CI"]}, "post_training_bias": {"methods": ["DPPL"]}}},
            frame, tmp_path / "analysis")
    payload = '<img src=x onerror="window.__pwned = 1">'
    assert cli("create", "scorer", "--from-analysis", str(tmp_path / "analysis"),
               "--set", f"additional_information.caveats_and_recommendations={payload}") == 0
    for fmt in ("md", "html"):
        assert cli("export", "scorer", "--format", fmt, "-o", str(tmp_path / f"card.{fmt}")) == 0
    # the PDF in its own process: this one's Playwright drives the browser fixture
    printed = subprocess.run([sys.executable, "-m", "fmeval", "cards", "export", "scorer", "--format", "pdf", "-o",
                              str(tmp_path / "card.pdf"), "--store", str(tmp_path / "store.sqlite")],
                             capture_output=True, text=True, timeout=120)
    assert printed.returncode == 0, printed.stderr
    markdown = (tmp_path / "card.md").read_text()
    assert "### post-training bias: gender=f" in markdown and "| DPPL |" in markdown
    assert (tmp_path / "card.pdf").read_bytes()[:5] == b"%PDF-" and (tmp_path / "card.pdf").stat().st_size > 5000
    page, requests, dialogs = open_offline(browser, tmp_path / "card.html")
    assert dialogs == [] and page.evaluate("window.__pwned") is None and page.query_selector_all("img") == []
    assert payload in page.inner_text("body") and page.query_selector_all("svg.chart")
    women, men = frame[frame.gender == "f"].prediction.mean(), frame[frame.gender == "m"].prediction.mean()
    assert f"{men - women:.4f}"[:5] in page.inner_text("body")  # DPPL, as analyze computed it


def test_the_actor_is_fmeval_user_when_not_named(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("FMEVAL_USER", "writer")
    assert cli("create", "c") == 0 and cli("submit", "c", "--version", "1") == 0
    assert cli("approve", "c", "--version", "1") == 2  # the writer may not approve their own version
    monkeypatch.setenv("FMEVAL_USER", "reviewer")
    assert cli("approve", "c", "--version", "1") == 0
    with CardStore(tmp_path / "store.sqlite") as store:
        assert store.get("c").approved_by == "reviewer" and store.version("c").author == "writer"


def _open(store, name):
    """What a reviewer's page holds: the current version's number and content hash."""
    version = store.version(name)
    return version.version, version.content_hash


def test_a_stale_approval_of_a_version_nobody_approved_is_refused(tmp_path, cli, capsys):
    """The issue's reproduction: A opens v1 (High); B rejects it; an editor saves v2 (Low) and
    resubmits; A's approval of what they saw must not approve v2."""
    with CardStore(tmp_path / "store.sqlite") as store:
        store.create("risky", ModelCard.model_validate({"intended_uses": {"risk_rating": "High"}}), author="ed")
        store.submit("risky", version=1, content_hash=store.version("risky").content_hash, actor="ed")
        seen_by_a = _open(store, "risky")
        store.reject("risky", version=1, content_hash=store.version("risky").content_hash, actor="bee",
                     comment="risk needs a second look")
        store.save("risky", ModelCard.model_validate({"intended_uses": {"risk_rating": "Low"}}), based_on=1, author="ed")
        v2 = _open(store, "risky")
        store.submit("risky", version=v2[0], content_hash=v2[1], actor="ed")
        with pytest.raises(CardConflict) as refused:
            store.approve("risky", version=seen_by_a[0], content_hash=seen_by_a[1], actor="ay")
        message = str(refused.value)
        assert "v1 rejected by bee" in message and "'risk needs a second look'" in message
        assert "v2 saved by ed" in message and "v2 submitted by ed" in message and "Open v2" in message
        with pytest.raises(CardConflict, match="content hash is"):  # the right number with what v1 held
            store.approve("risky", version=2, content_hash=seen_by_a[1], actor="ay")
        stored = store.get("risky")
        assert (stored.status, stored.approved_version, stored.approved_by) == ("PendingReview", None, None)
        seen_rejected = _open(store, "risky")
    assert cli("reject", "risky", "--version", "2", "--as", "bee") == 0
    assert cli("approve", "risky", "--version", "2", "--sha256", seen_rejected[1], "--as", "ay") == 2
    assert "no longer under review (Draft)" in capsys.readouterr().err  # a 409 in the dashboard
    with CardStore(tmp_path / "store.sqlite") as store:
        assert store.get("risky").approved_version is None
        assert [(r["action"], r["actor"]) for r in store.version("risky", 2).reviews] == [("submit", "ed"),
                                                                                           ("reject", "bee")]


def test_a_review_without_a_version_shows_it_and_asks_or_needs_yes(tmp_path, cli, capsys):
    import os
    import pty

    assert cli("create", "c", "--set", "intended_uses.risk_rating=High", "--as", "ed") == 0
    capsys.readouterr()
    assert cli("submit", "c", "--as", "ed") == 2  # no terminal here, and neither --version nor --yes
    err = capsys.readouterr().err
    with CardStore(tmp_path / "store.sqlite") as store:
        digest = store.version("c").content_hash
        assert store.get("c").status == "Draft"
    assert f"version 1 (Draft), sha256 {digest}, risk High, by ed" in err and "--version 1, or confirm with --yes" in err
    assert cli("submit", "c", "--as", "ed", "--yes") == 0
    assert f"submit model card c version 1 (Draft), sha256 {digest}" in capsys.readouterr().err
    for answer, code, status in ((b"n\n", 2, "PendingReview"), (b"y\n", 0, "Approved")):
        leader, follower = pty.openpty()  # a real terminal on the command's stdin
        os.write(leader, answer)
        asked = subprocess.run([sys.executable, "-m", "fmeval", "cards", "approve", "c", "--as", "rev", "--store",
                                str(tmp_path / "store.sqlite")], stdin=follower, capture_output=True, text=True,
                               timeout=120)
        os.close(follower)
        os.close(leader)
        assert asked.returncode == code, asked.stderr
        assert f"approve model card c version 1 (PendingReview), sha256 {digest}" in asked.stdout
        with CardStore(tmp_path / "store.sqlite") as store:
            assert store.get("c").status == status


def test_separation_of_duties_is_per_change_since_the_last_approval(tmp_path, cli, capsys):
    """The issue's reproduction: ap wrote v1, ed made a trivial edit (v2): ap may not approve v2."""
    assert cli("create", "sod", "--set", "intended_uses.risk_rating=High", "--as", "ap") == 0
    assert cli("edit", "sod", "--set", "intended_uses.intended_uses=triage", "--as", "ed") == 0
    assert cli("submit", "sod", "--version", "2", "--as", "ed") == 0
    capsys.readouterr()
    assert cli("approve", "sod", "--version", "2", "--as", "ap") == 2
    assert "ap wrote v1 of 'sod'" in capsys.readouterr().err
    assert cli("approve", "sod", "--version", "2", "--as", "ed") == 2
    assert cli("approve", "sod", "--version", "2", "--as", "third") == 0
    # after an approval, only the versions since it count: ap's v1 is reviewed already
    assert cli("edit", "sod", "--set", "intended_uses.intended_uses=billing", "--as", "ed") == 0
    assert cli("submit", "sod", "--version", "3", "--as", "ed") == 0
    assert cli("approve", "sod", "--version", "3", "--as", "ap") == 0
    assert cli("edit", "sod", "--set", "intended_uses.intended_uses=support", "--as", "ap") == 0
    assert cli("edit", "sod", "--set", "intended_uses.risk_rating=Low", "--as", "ed") == 0
    assert cli("submit", "sod", "--version", "5", "--as", "ed") == 0
    capsys.readouterr()
    assert cli("approve", "sod", "--version", "5", "--as", "ap") == 2  # ap wrote v4, since the approval of v3
    assert "ap wrote v4 of 'sod', changes under review since the last approved version (v3)" in capsys.readouterr().err
    with CardStore(tmp_path / "store.sqlite") as store:
        assert (store.get("sod").status, store.get("sod").approved_version) == ("PendingReview", 3)


def test_a_clone_carries_the_authors_of_its_unapproved_changes(tmp_path, cli, capsys):
    """A clone by someone else is no way around separation of duties: ap writes a card nobody approved,
    ed clones it and submits the clone, and ap may not approve what is still ap's own text. Once ap's text is
    approved by another, a clone of the approved version carries no one's changes."""
    assert cli("create", "src", "--set", "model_overview.model_name=m", "--set", "intended_uses.risk_rating=Low",
               "--as", "ap") == 0
    assert cli("clone", "src", "copy", "--as", "ed") == 0
    assert cli("submit", "copy", "--version", "1", "--as", "ed") == 0
    capsys.readouterr()
    assert cli("approve", "copy", "--version", "1", "--as", "ap") == 2
    assert "ap wrote v1's source (cloned) of 'copy'" in capsys.readouterr().err
    assert cli("approve", "copy", "--version", "1", "--as", "ed") == 2  # ed made the clone
    assert cli("submit", "src", "--version", "1", "--as", "ap") == 0
    assert cli("approve", "src", "--version", "1", "--as", "third") == 0
    assert cli("clone", "src", "approved-copy", "--as", "ed") == 0
    assert cli("submit", "approved-copy", "--version", "1", "--as", "ed") == 0
    assert cli("approve", "approved-copy", "--version", "1", "--as", "ap") == 0
    with CardStore(tmp_path / "store.sqlite") as store:
        assert (store.get("copy").status, store.get("copy").approved_version) == ("PendingReview", None)


def test_show_and_export_take_a_version_beside_the_top_level_version(tmp_path, cli, capsys):
    """`--version N` after a command is the command's (it printed the package version before)."""
    assert cli("create", "c", "--set", "intended_uses.risk_rating=High", "--as", "ed") == 0
    assert cli("submit", "c", "--version", "1", "--as", "ed") == 0
    assert cli("approve", "c", "--version", "1", "--as", "rev") == 0
    assert cli("edit", "c", "--set", "intended_uses.risk_rating=Low", "--as", "ed") == 0  # a newer draft, v2
    capsys.readouterr()
    assert cli("show", "c", "--version", "1", "--json") == 0
    assert json.loads(capsys.readouterr().out)["intended_uses"]["risk_rating"] == "High"
    assert cli("export", "c", "--version", "1", "--format", "json", "-o", str(tmp_path / "approved.json")) == 0
    assert json.loads((tmp_path / "approved.json").read_text())["intended_uses"]["risk_rating"] == "High"
    assert cli("show", "c") == 0 and "version 2 of 2" in capsys.readouterr().out
    from fmeval.version import __version__

    assert main(["--version"]) == 0 and capsys.readouterr().out.strip() == __version__


def test_review_comments_stay_with_the_history_and_the_events(tmp_path, cli, capsys, webhook):
    url, received = webhook
    assert cli("webhooks", "add", url) == 0
    assert cli("create", "c", "--as", "ed") == 0 and cli("submit", "c", "--version", "1", "--as", "ed") == 0
    assert cli("reject", "c", "--version", "1", "--as", "rev", "--comment", "no owner named") == 0
    assert cli("edit", "c", "--set", "model_overview.model_owner=nlp team", "--as", "ed") == 0
    assert cli("submit", "c", "--version", "2", "--as", "ed") == 0
    assert cli("approve", "c", "--version", "2", "--as", "rev", "--comment", "owner named, approved") == 0
    capsys.readouterr()
    assert cli("versions", "c") == 0
    history = capsys.readouterr().out
    assert "\trev\treject\tno owner named" in history and "\trev\tapprove\towner named, approved" in history
    with CardStore(tmp_path / "store.sqlite") as store:
        v2 = store.version("c", 2)
        assert [(r["action"], r["comment"]) for r in v2.reviews] == [("submit", None), ("approve", "owner named, approved")]
        assert all(r["content_hash"] == v2.content_hash for r in v2.reviews)
        events = store.events("c")
    approved = next(e for e in events if e["kind"] == "card.approved")
    assert approved["payload"]["comment"] == "owner named, approved" and approved["payload"]["content_hash"] == v2.content_hash
    assert approved["deliveries"][url]["status"] == "delivered"
    hook = next(h for h in received if h["kind"] == "card.approved")
    assert hook["comment"] == "owner named, approved" and hook["event_id"] == approved["payload"]["event_id"]
    assert [h["kind"] for h in received].count("card.draft") == 1  # the rejection, delivered once


def test_content_hash_is_the_sha256_of_the_canonical_json(tmp_path):
    import hashlib

    card = ModelCard.model_validate({"model_overview": {"model_name": "m"}, "intended_uses": {"risk_rating": "Low"}})
    with CardStore(tmp_path / "store.sqlite") as store:
        version = store.create("c", card, author="ed")
    canonical = '{"intended_uses":{"risk_rating":"Low"},"model_overview":{"model_name":"m"}}'
    assert version.content_hash == hashlib.sha256(canonical.encode()).hexdigest()
