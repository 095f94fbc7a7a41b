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
    store = ["--store", str(tmp_path / "store.sqlite")]

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
    assert cli("submit", "qa-bot", "--as", "alice") == 0
    assert cli("edit", "qa-bot", "--set", "intended_uses.risk_rating=Low") == 2
    assert "reject it back to Draft" in capsys.readouterr().err
    assert cli("approve", "qa-bot", "--as", "alice") == 2  # the author of the version under review
    assert "someone else must approve it" in capsys.readouterr().err
    assert cli("approve", "qa-bot", "--as", "bob") == 0
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
    assert cli("archive", "qa-bot") == 0 and cli("submit", "qa-bot") == 2
    assert "archived cards are final" in capsys.readouterr().err


def test_two_editors_of_one_card_the_second_gets_a_conflict(tmp_path, store_url):
    with CardStore(store_url) as store:
        name = f"card-{tmp_path.name}"
        store.create(name, ModelCard(), author="alice")
        first = ModelCard.model_validate({"intended_uses": {"intended_uses": "triage"}})
        second = ModelCard.model_validate({"intended_uses": {"intended_uses": "billing"}})
        store.save(name, first, based_on=1, author="alice")
        with pytest.raises(CardConflict, match=r"changed since version 1 \(v2 by alice"):
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
    assert cli("create", "c") == 0 and cli("submit", "c") == 0
    assert cli("approve", "c") == 2  # the writer may not approve their own version
    monkeypatch.setenv("FMEVAL_USER", "reviewer")
    assert cli("approve", "c") == 0
    with CardStore(tmp_path / "store.sqlite") as store:
        assert store.get("c").approved_by == "reviewer" and store.version("c").author == "writer"
