"""Card exports that SageMaker accepts, and Markdown, HTML and PDF exports an auditor accepts.

The oracle for SageMaker is the SageMaker Python SDK's own model card schema:
- sagemaker-core 2.27.0 (the SDK v3's core) ships `ModelCardContent`, the Pydantic shapes AWS generates from
  SageMaker's model card JSON schema; its `model_json_schema()`, checked with jsonschema, is the schema;
- sagemaker 2.257.7 ships `sagemaker/model_card/schema_constraints.py`: the list limits and enums.
Neither release ships the schema's JSON file itself, and neither imports without dependencies that would
change this environment (both install with --no-deps, see the Makefile), so each file is loaded alone.
Where those shipped shapes are looser than SageMaker's documented schema, the mutation table says so.
"""
import copy
import importlib.metadata
import importlib.util
import json
import math
import re
import subprocess
import sys
import types

import jsonschema
import pytest

from fmeval.cli import main
from fmeval.governance.cards import ModelCard
from tests.test_reports import make_run

SAGEMAKER_CORE, SAGEMAKER = "2.27.0", "2.257.7"


def _shipped(distribution: str, version: str, path: str) -> str:
    installed = importlib.metadata.distribution(distribution)
    assert installed.version == version, f"the oracle is {distribution} {version}, found {installed.version}"
    return installed.locate_file(path).read_text(encoding="utf-8")


def _anchored(node):
    """SageMaker's name patterns (`.{1,63}`) bound the whole name, as its documentation says; JSON schema's
    `pattern` matches anywhere, so the shipped pattern is anchored."""
    if isinstance(node, dict):
        return {k: (f"^(?:{v})$" if k == "pattern" else _anchored(v)) for k, v in node.items()}
    return [_anchored(v) for v in node] if isinstance(node, list) else node


@pytest.fixture(scope="session")
def sagemaker_schema():
    source = _shipped("sagemaker-core", SAGEMAKER_CORE, "sagemaker/core/shapes/model_card_shapes.py")
    # the one import is of the model package shapes, which ModelCardContent does not reach
    source = source.replace("from sagemaker.core import shapes\n", "")
    namespace = {"__name__": "sagemaker_model_card_shapes", "shapes": types.SimpleNamespace(ModelDataSource=dict,
                                                                                            BaseModel=dict)}
    exec(compile(source, "model_card_shapes.py", "exec"), namespace)
    return _anchored(namespace["ModelCardContent"].model_json_schema())


@pytest.fixture(scope="session")
def sdk_constraints():
    spec = importlib.util.spec_from_loader("sagemaker_schema_constraints", loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(_shipped("sagemaker", SAGEMAKER, "sagemaker/model_card/schema_constraints.py"), module.__dict__)
    return module


def sagemaker_refuses(schema, content) -> str | None:
    """Why SageMaker's schema refuses this content (as the JSON that is sent), or None."""
    try:
        document = json.loads(json.dumps(content, allow_nan=False))
    except ValueError as exc:
        return f"not JSON: {exc}"
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(document))
    return None if error is None else f"{'.'.join(map(str, error.absolute_path))}: {error.message}"


def assert_sagemaker_accepts(schema, content):
    assert sagemaker_refuses(schema, content) is None, sagemaker_refuses(schema, content)


def fmeval_refuses(content) -> bool:
    from pydantic import ValidationError

    try:
        ModelCard.model_validate(content)
    except ValidationError:
        return True
    return False


FULL = {
    "model_overview": {"model_description": "d", "model_id": "arn:aws:sagemaker:us-east-1:123456789012:model/m",
                       "model_name": "m", "model_version": 2, "problem_type": "QA", "algorithm_type": "LLM",
                       "model_creator": "team", "model_owner": "owner", "model_artifact": ["s3://b/m.tar.gz"],
                       "inference_environment": {"container_image": ["image:1"]}},
    "intended_uses": {"purpose_of_model": "p", "intended_uses": "u", "factors_affecting_model_efficiency": "f",
                      "risk_rating": "Low", "explanations_for_risk_rating": "e"},
    "business_details": {"business_problem": "b", "business_stakeholders": "s", "line_of_business": "l"},
    "training_details": {"training_observations": "o", "training_job_details": {
        "training_arn": "arn:t", "training_datasets": ["s3://b/train"], "training_environment": {"container_image": ["t:1"]},
        "training_metrics": [{"name": "loss", "value": 0.25, "notes": "n"}],
        "user_provided_training_metrics": [{"name": "acc", "value": 0.9}],
        "hyper_parameters": [{"name": "lr", "value": "0.1"}], "user_provided_hyper_parameters": [{"name": "seed", "value": "7"}]}},
    "evaluation_details": [{"name": "eval", "evaluation_observation": "obs", "evaluation_job_arn": "arn:e",
                            "datasets": ["s3://b/test"], "metadata": {"k": "v"}, "metric_groups": [{
                                "name": "group", "metric_data": [
                                    {"name": "accuracy", "type": "number", "value": 0.75, "notes": "n"},
                                    {"name": "label", "type": "string", "value": "good"},
                                    {"name": "passed", "type": "boolean", "value": True},
                                    {"name": "roc", "type": "linear_graph", "value": [[0, 0], [1, 1]],
                                     "x_axis_name": "fpr", "y_axis_name": "tpr"},
                                    {"name": "shap", "type": "bar_chart", "value": [0.1, 0.2],
                                     "x_axis_name": ["a", "b"], "y_axis_name": "mean |SHAP|"},
                                    {"name": "confusion", "type": "matrix", "value": [[5, 1], [2, 7]],
                                     "x_axis_name": ["no", "yes"], "y_axis_name": ["no", "yes"]}]}]}],
    "additional_information": {"ethical_considerations": "e", "caveats_and_recommendations": "c",
                               "custom_details": {"team": "nlp"}},
}
METRIC = "evaluation_details.0.metric_groups.0.metric_data."
# Where SageMaker's documented schema (its developer guide; `tools/model_card/model_card_schema.json` in the
# SDK's source, which no release ships) is stricter than the shapes the SDK ships, the refusal is listed here.
DOCUMENTED = "SageMaker's documented schema"


def _mutated(path: str, value):
    content = copy.deepcopy(FULL)
    *parents, last = [int(key) if key.isdigit() else key for key in path.split(".")]
    node = content
    for key in parents:
        node = node[key]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return content


DELETE = object()


def mutations(limits):
    """(field, new value, why SageMaker refuses it when neither shipped oracle does; None otherwise)."""
    many = lambda n, item: [copy.deepcopy(item) for _ in range(n)]  # noqa: E731
    return [
        ("model_overview.model_description", "x" * 1024, None),
        ("model_overview.model_description", "x" * 1025, None),
        ("model_overview.model_owner", "x" * 1025, None),
        ("model_overview.model_artifact", many(limits.MODEL_ARTIFACT_MAX_SIZE, "s3://b/m"), None),
        ("model_overview.model_artifact", many(limits.MODEL_ARTIFACT_MAX_SIZE + 1, "s3://b/m"), "SDK limit"),
        ("model_overview.model_colour", "blue", f"{DOCUMENTED}: additionalProperties false"),
        ("intended_uses.purpose_of_model", "x" * 2049, None),
        ("intended_uses.risk_rating", "Extreme", None),
        ("intended_uses.risk_rating", "Unknown", None),
        ("business_details.line_of_business", "x" * 2049, None),
        ("training_details.training_observations", "x" * 1025, None),
        ("training_details.training_job_details.training_arn", "x" * 1025, None),
        ("training_details.training_job_details.training_metrics.0.name", "", None),
        ("training_details.training_job_details.training_metrics.0.name", "x" * 255, None),
        ("training_details.training_job_details.training_metrics.0.name", "x" * 256, None),
        ("training_details.training_job_details.training_metrics.0.value", "high", None),
        ("training_details.training_job_details.training_metrics.0.value", math.nan, None),
        ("training_details.training_job_details.training_metrics",
         many(limits.TRAINING_METRICS_MAX_SIZE + 1, {"name": "m", "value": 1}), "SDK limit"),
        ("training_details.training_job_details.hyper_parameters.0.value", "x" * 256, None),
        ("training_details.training_job_details.hyper_parameters.0.value", DELETE, None),
        ("evaluation_details.0.name", "x" * 63, None),
        ("evaluation_details.0.name", "x" * 64, None),
        ("evaluation_details.0.name", "", None),
        ("evaluation_details.0.name", DELETE, None),
        ("evaluation_details.0.evaluation_observation", "x" * 2096, None),
        ("evaluation_details.0.evaluation_observation", "x" * 2097, None),
        ("evaluation_details.0.evaluation_job_arn", "x" * 257, None),
        ("evaluation_details.0.datasets", many(limits.EVALUATION_DATASETS_MAX_SIZE + 1, "s3://b/d"), None),
        ("evaluation_details.0.metadata", {"k": "x" * 1025}, f"{DOCUMENTED}: metadata values maxLength 1024"),
        ("evaluation_details.0.metric_groups.0.name", "x" * 64, None),
        ("evaluation_details.0.metric_groups.0.metric_data", DELETE, None),
        ("evaluation_details.0.metric_groups.0.metric_data", [], None),
        (METRIC + "0.type", DELETE, f"{DOCUMENTED}: a metric's type is required"),
        (METRIC + "0.type", "pie_chart", None),
        (METRIC + "0.value", math.nan, None),
        (METRIC + "0.value", -math.inf, None),
        (METRIC + "0.notes", "x" * 1025, None),
        (METRIC + "1.value", "x" * 64, f"{DOCUMENTED}: a string metric's value maxLength 63"),
        (METRIC + "3.value", [[0, 0, 1]], f"{DOCUMENTED}: linear_graph points are [x, y] number pairs"),
        (METRIC + "4.value", [], f"{DOCUMENTED}: a bar_chart value has at least 1 number"),
        (METRIC + "4.value", ["tall"], f"{DOCUMENTED}: bar_chart values are numbers"),
        (METRIC + "4.x_axis_name", "a", None),
        (METRIC + "4.x_axis_name", ["x" * 64, "b"], f"{DOCUMENTED}: axis names maxLength 63"),
        (METRIC + "5.value", many(21, [1]), f"{DOCUMENTED}: a matrix has at most 20 rows"),
        ("additional_information.caveats_and_recommendations", "x" * 2049, None),
        ("additional_information.custom_details", {"k": "x" * 1025}, f"{DOCUMENTED}: custom_property maxLength 1024"),
        ("model_package_details", {"model_package_name": "pkg", "model_package_version": 3,
                                   "model_approval_status": limits.ModelApprovalStatusEnum.APPROVED.value}, None),
        ("model_package_details", {"model_approval_status": "Maybe"}, "SDK enum ModelApprovalStatusEnum"),
    ]


def test_fmeval_refuses_exactly_what_sagemaker_refuses(sagemaker_schema, sdk_constraints):
    assert_sagemaker_accepts(sagemaker_schema, FULL)
    assert not fmeval_refuses(FULL)
    table = mutations(sdk_constraints)
    disagreements, refused = [], 0
    for path, value, documented in table:
        content = _mutated(path, value)
        expected = documented is not None or sagemaker_refuses(sagemaker_schema, content) is not None
        refused += expected
        if fmeval_refuses(content) != expected:
            disagreements.append((path, repr(value)[:40], "SageMaker refuses" if expected else "SageMaker accepts"))
    assert disagreements == []
    assert len(table) >= 39 and 0 < refused < len(table)  # both sides of each limit are tried


def test_every_limit_refused_on_save_names_its_field(tmp_path, capsys):
    store = ["--store", str(tmp_path / "store.sqlite"), "--create"]
    bad = _mutated("evaluation_details.0.name", "x" * 64)
    bad["evaluation_details"][0]["metric_groups"][0]["metric_data"][4]["value"] = ["tall"]
    bad["training_details"]["training_job_details"]["training_metrics"][0]["value"] = math.inf
    (tmp_path / "bad.json").write_text(json.dumps(bad))  # Python's json writes Infinity; the import reads it
    assert main(["cards", "import", str(tmp_path / "bad.json"), "--name", "bad", *store]) == 2
    err = capsys.readouterr().err
    assert "evaluation_details.0.name: String should have at most 63 characters" in err
    assert ("evaluation_details.0.metric_groups.0.metric_data.4.value: a bar_chart metric's value is a non-empty "
            "list of numbers, got ['tall']") in err
    assert "training_details.training_job_details.training_metrics.0.value: Input should be a finite number" in err
    # --set goes through the same rules
    assert main(["cards", "create", "c", "--set", "intended_uses.purpose_of_model=" + "x" * 2049, *store]) == 2
    assert "intended_uses.purpose_of_model: String should have at most 2048 characters" in capsys.readouterr().err


def test_model_package_details_import_and_export_unchanged(tmp_path, sagemaker_schema):
    # the content SageMaker returns for a card made from a model package version (the SDK's own example fields)
    content = {"model_overview": {"model_id": "arn:aws:sagemaker:us-west-2:123456789012:model-package/grp/1"},
               "model_package_details": {
                   "model_package_arn": "arn:aws:sagemaker:us-west-2:123456789012:model-package/grp/1",
                   "model_package_name": "grp", "model_package_group_name": "grp", "model_package_version": 1,
                   "model_package_description": "a package", "model_package_status": "Completed",
                   "model_approval_status": "PendingManualApproval", "approval_description": "waiting",
                   "created_by": {"user_profile_name": "ana"}, "domain": "NLP", "task": "TEXT_GENERATION",
                   "source_algorithms": [{"algorithm_name": "xgboost", "model_data_url": "s3://b/m.tar.gz"}],
                   "inference_specification": {"containers": [{"image": "123.dkr.ecr/img:1",
                                                               "model_data_url": "s3://b/m.tar.gz",
                                                               "nearest_model_name": "xgb"}]}}}
    (tmp_path / "package.json").write_text(json.dumps(content))
    store = ["--store", str(tmp_path / "store.sqlite"), "--create"]
    assert main(["cards", "import", str(tmp_path / "package.json"), "--name", "pkg", *store]) == 0
    assert main(["cards", "export", "pkg", "--format", "json", "-o", str(tmp_path / "out.json"), *store]) == 0
    exported = json.loads((tmp_path / "out.json").read_text())
    assert exported == content
    assert_sagemaker_accepts(sagemaker_schema, exported)


def _with_scores(run_dir, scores):
    """Overwrite a finished run's dataset scores (as a metric that yields NaN or Infinity would write them)."""
    path = run_dir / "summary.json"
    summary = json.loads(path.read_text())
    for entry in summary["dataset_scores"]:
        entry["value"] = scores.get(entry["name"], entry["value"])
    path.write_text(json.dumps(summary))  # Python's json writes NaN and Infinity as such


def test_a_card_from_a_run_fits_sagemaker_names_and_never_writes_nan(tmp_path, sagemaker_schema, capsys):
    long_dataset = "customer-support-questions-2026-q4-frozen-holdout"
    first = make_run(tmp_path, "model-a", [1, 0, 1, 1], dataset=long_dataset)
    second = make_run(tmp_path, "model-b", [1, 1, 1, 0], dataset=long_dataset)
    names = [s.name for s in first.dataset_scores]
    _with_scores(tmp_path / "model-a", {names[0]: math.nan})
    store = ["--store", str(tmp_path / "store.sqlite"), "--create"]
    assert main(["cards", "create", "c", "--from-run", str(tmp_path / "model-a"), "--from-run",
                 str(tmp_path / "model-b"), *store]) == 0
    assert main(["cards", "export", "c", "--format", "json", "-o", str(tmp_path / "c.json"), *store]) == 0
    text = (tmp_path / "c.json").read_text()
    exported = json.loads(text, parse_constant=lambda token: pytest.fail(f"{token} written into the JSON"))
    assert_sagemaker_accepts(sagemaker_schema, exported)
    jobs = exported["evaluation_details"]
    assert len(jobs) == 2 and all(len(job["name"]) <= 63 for job in jobs)  # 82 characters before
    for job, summary in zip(jobs, (first, second)):
        assert job["name"].endswith(f" (run {job['metadata']['fmeval_run_id']})")
        assert job["name"].startswith("factual_knowledge on customer-sup… (run ")
        assert job["metadata"]["dataset"] == long_dataset and job["metadata"]["evaluation"] == "factual_knowledge"
    nan = next(m for m in jobs[0]["metric_groups"][0]["metric_data"] if m["name"] == names[0])
    assert nan["type"] == "string" and nan["value"] == "NaN" and nan["notes"].startswith("not a finite number")
    kept = {m["name"]: m["value"] for m in jobs[1]["metric_groups"][0]["metric_data"]}
    assert kept[names[0]] == pytest.approx(next(s.value for s in second.dataset_scores if s.name == names[0]))


# -- Markdown, HTML and PDF --------------------------------------------------------------------------------
from tests.browser import ARTIFACTS, open_offline  # noqa: E402
from tests.test_report_browser import PAYLOADS  # noqa: E402


def _payload_card(tmp_path):
    """A card whose every kind of text carries the XSS payloads the report and dashboard tests use."""
    content = copy.deepcopy(FULL)
    text = " ".join(PAYLOADS)
    content["model_overview"]["model_description"] = text
    content["additional_information"]["custom_details"] = {f"key {i} {p}"[:200]: p for i, p in enumerate(PAYLOADS)}
    job = content["evaluation_details"][0]
    job["evaluation_observation"], job["datasets"] = text, PAYLOADS[:3]
    job["metric_groups"][0]["name"] = PAYLOADS[0][:63]
    job["metric_groups"][0]["metric_data"][0].update(name=PAYLOADS[1], notes=text)
    job["metric_groups"][0]["metric_data"][1]["value"] = PAYLOADS[5][:63]
    job["metric_groups"][0]["metric_data"][4]["x_axis_name"] = [PAYLOADS[3][:63], PAYLOADS[4][:63]]
    (tmp_path / "payloads.json").write_text(json.dumps(content))
    return content


def test_markdown_export_keeps_raw_html_inert_in_a_renderer_and_a_browser(tmp_path, browser, sagemaker_schema):
    from markdown_it import MarkdownIt  # markdown-it-py 4.3.0: CommonMark, raw HTML allowed, as GitHub-like viewers

    content = _payload_card(tmp_path)
    store = ["--store", str(tmp_path / "store.sqlite"), "--create"]
    assert main(["cards", "import", str(tmp_path / "payloads.json"), "--name", "xss", *store]) == 0
    for fmt in ("md", "html", "json"):
        assert main(["cards", "export", "xss", "--format", fmt, "-o", str(tmp_path / f"xss.{fmt}"), *store]) == 0
    assert_sagemaker_accepts(sagemaker_schema, json.loads((tmp_path / "xss.json").read_text()))
    markdown = (tmp_path / "xss.md").read_text()
    assert "<script" not in markdown and "<img" not in markdown and "<iframe" not in markdown
    rendered = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)
    (tmp_path / "xss-md.html").write_text(f"<!DOCTYPE html><html><body>{rendered}</body></html>")
    for page_file in ("xss-md.html", "xss.html"):
        page, requests, dialogs = open_offline(browser, tmp_path / page_file)
        assert dialogs == [] and page.evaluate("window.__pwned") is None, page_file
        assert page.query_selector_all("script, img, iframe, a, [onerror], [onload], [onfocus]") == [], page_file
        body = page.inner_text("body")
        for payload in PAYLOADS:
            assert payload in body, (page_file, payload)  # shown as the text it is
        assert [r for r in requests if not r.startswith("file://")] == []
    assert len(content["additional_information"]["custom_details"]) == len(PAYLOADS)


def _audited_card(tmp_path):
    """v1 by alice, submitted, approved by bob with a comment; then carol's v2 Draft (risk Low, unapproved)."""
    store = ["--store", str(tmp_path / "store.sqlite"), "--create"]
    summary = make_run(tmp_path, "model-a", [1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1])  # 11/12 right: 1/12 wrong
    content = copy.deepcopy(FULL)
    group = content["evaluation_details"][0]["metric_groups"][0]
    group["metric_data"][0]["value"] = 1 / 12
    (tmp_path / "card.json").write_text(json.dumps(content))
    assert main(["cards", "create", "audited", "--file", str(tmp_path / "card.json"), "--from-run",
                 summary.output_path, "--set", "intended_uses.risk_rating=High", "--as", "alice", *store]) == 0
    assert main(["cards", "submit", "audited", "--version", "1", "--as", "alice", *store]) == 0
    assert main(["cards", "approve", "audited", "--version", "1", "--as", "bob", "--comment", "risk reviewed",
                 *store]) == 0
    assert main(["cards", "edit", "audited", "--set", "intended_uses.risk_rating=Low", "--as", "carol", *store]) == 0
    return store


def _pdf_text(pdf, first=1, last=None) -> str:
    words = ["pdftotext", "-layout", "-f", str(first)] + (["-l", str(last)] if last else []) + [str(pdf), "-"]
    return subprocess.run(words, capture_output=True, text=True, check=True).stdout


def test_the_pdf_shows_the_approved_version_its_trail_tables_and_page_numbers(tmp_path, capsys):
    from fmeval.governance.store import CardStore

    store = _audited_card(tmp_path)
    capsys.readouterr()
    printed = subprocess.run([sys.executable, "-m", "fmeval", "cards", "export", "audited", "--format", "pdf", "-o",
                              str(tmp_path / "audited.pdf"), *store], capture_output=True, text=True, timeout=120)
    assert printed.returncode == 0, printed.stderr
    assert "version 1, the approved version (the default); the card's latest version is 2 (Draft)" in printed.stdout
    pdf = tmp_path / "audited.pdf"
    pages = int(re.search(r"Pages:\s+(\d+)", subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True,
                                                             check=True).stdout).group(1))
    assert pages >= 2
    text = _pdf_text(pdf)
    flat = " ".join(text.split())
    assert "This export shows version 1, the approved version (the default); the card's latest version is 2 (Draft)" in flat
    with CardStore(tmp_path / "store.sqlite") as cards:
        sha256 = cards.version("audited", 1).content_hash
    assert re.search(r"Version 1 of 2 Status Approved Author alice Saved \S+ Content sha256 [0-9a-f ]+ Approval by bob "
                     r"Approval at \S+", flat)
    assert f"Contentsha256{sha256}Approvalbybob" in "".join(text.split())  # the hash may wrap in its cell
    assert "rounded to 4 decimal places" in flat
    assert "Risk rating High" in flat and "Risk rating Low" not in flat  # the approved content, not the draft
    trail = re.findall(r"(created|new version|submitted for review|approved) +(\d) +(\w+)", text)
    assert trail == [("created", "1", "alice"), ("submitted for review", "1", "alice"), ("approved", "1", "bob"),
                     ("new version", "2", "carol")]
    assert "risk reviewed" in flat
    for page in range(1, pages + 1):
        assert f"page {page} of {pages}" in _pdf_text(pdf, page, page), page
    assert "0.0833" in flat and "0.08333" not in flat  # rounded to the stated precision
    assert "{'name'" not in text and "[[" not in text and "'value'" not in text  # tables, not Python reprs
    assert re.search(r"loss +0\.2500 +n", text) and re.search(r"lr +0\.1", text)  # training metrics, hyperparameters
    assert re.search(r"no +5 +1", text) and re.search(r"yes +2 +7", text)  # the confusion matrix as rows
    ARTIFACTS.mkdir(exist_ok=True)
    for old in ARTIFACTS.glob("card-export-page-*.png"):
        old.unlink()
    subprocess.run(["pdftoppm", "-png", "-r", "60", str(pdf), str(ARTIFACTS / "card-export-page")], check=True)
    shots = sorted(ARTIFACTS.glob("card-export-page-*.png"))
    assert len(shots) == pages and all(shot.stat().st_size > 5000 for shot in shots)


def test_a_group_with_numbers_and_a_bar_chart_keeps_both_charts(tmp_path, browser):
    store = _audited_card(tmp_path)
    assert main(["cards", "export", "audited", "--format", "html", "-o", str(tmp_path / "a.html"), *store]) == 0
    page, _, dialogs = open_offline(browser, tmp_path / "a.html")
    titles = [chart.get_attribute("aria-label") for chart in page.query_selector_all("svg.chart")]
    assert "group" in titles and "shap" in titles  # the group's numbers, and its bar chart metric
    shap = page.query_selector('svg.chart[aria-label="shap"]')
    assert len(shap.query_selector_all("rect")) == 2 and shap.inner_html().count("0.200") == 1


def test_an_asked_for_version_says_so_and_export_to_a_directory_exits_2(tmp_path, capsys, sagemaker_schema):
    from fmeval.governance.export import card_meta
    from fmeval.governance.store import CardStore

    store = _audited_card(tmp_path)
    capsys.readouterr()
    assert main(["cards", "export", "audited", "--version", "2", "--format", "md", "-o", str(tmp_path / "v2.md"),
                 *store]) == 0
    assert "version 2, as asked for (--version 2); the approved version is 1" in capsys.readouterr().out
    draft = (tmp_path / "v2.md").read_text()
    assert "Status **Draft**, version 2." in draft
    assert "- **Risk rating**: Low" in draft and "- **Risk rating**: High" not in draft  # the draft's content
    assert "| Author | carol |" in draft and "| Approval by | — |" in draft
    with CardStore(tmp_path / "store.sqlite") as cards:
        version, meta = card_meta(cards, "audited", 2)
        assert version.version == 2 and version.card.intended_uses.risk_rating == "Low"
        assert meta["status"] == "Draft" and meta["approved_by"] is None and meta["author"] == "carol"
        cards.create("fresh", ModelCard(), author="dan")
        assert card_meta(cards, "fresh")[1]["basis"] == "version 1, the latest: no version of this card is approved"
    assert main(["cards", "export", "audited", "--format", "md", "-o", str(tmp_path), *store]) == 2
    err = capsys.readouterr().err
    assert f"--output {tmp_path} is a directory" in err and "Traceback" not in err
    assert main(["cards", "export", "audited", "--format", "md", "-o", str(tmp_path / "a.md"), *store]) == 0
    markdown = (tmp_path / "a.md").read_text()
    assert "| accuracy | number | 0.0833 |" in markdown and "0.08333" not in markdown
    assert "| approved | 1 | bob | risk reviewed |" in markdown
    for version in ("1", "2"):
        assert main(["cards", "export", "audited", "--version", version, "--format", "json", "-o",
                     str(tmp_path / f"v{version}.json"), *store]) == 0
        assert_sagemaker_accepts(sagemaker_schema, json.loads((tmp_path / f"v{version}.json").read_text()))


def test_a_card_stored_by_an_earlier_fmeval_still_opens_and_exports_valid(tmp_path, sagemaker_schema):
    from sqlalchemy import update

    from fmeval.governance.store import CardStore, versions_table

    legacy = {"evaluation_details": [{"name": "factual_knowledge on " + "d" * 40 + " (run 20261207-101010-abcdef)",
                                      "metric_groups": [{"name": "category: " + "c" * 70, "metric_data": [
                                          {"name": "score", "type": "number", "value": math.inf}]},
                                          {"name": "empty"}]}]}
    with CardStore(tmp_path / "store.sqlite") as cards:
        cards.create("old", ModelCard(), author="alice")
        with cards.database.transaction() as connection:  # the row as the earlier fmeval wrote it
            connection.execute(update(versions_table).where(versions_table.c.name == "old")
                               .values(content=json.dumps(legacy)))
        card = cards.version("old").card
    content = card.to_sagemaker()
    assert_sagemaker_accepts(sagemaker_schema, content)
    job = content["evaluation_details"][0]
    assert len(job["name"]) == 63 and job["name"].endswith("…")
    assert [g["name"] for g in job["metric_groups"]] == ["category: " + "c" * 52 + "…", "empty"]
    assert job["metric_groups"][0]["metric_data"][0]["value"] == "Infinity"
    assert job["metric_groups"][1]["metric_data"] == []


def test_a_card_from_an_analysis_is_valid_sagemaker_content(tmp_path, sagemaker_schema):
    import numpy as np
    import pandas as pd

    from fmeval.bias.analyze import analyze

    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"age": rng.integers(18, 70, 200), "customer_segment_of_the_account_holder":
                          rng.choice(["retail-banking-premium-tier", "smb"], 200), "label": rng.integers(0, 2, 200)})
    frame["prediction"] = frame.label
    analyze({"label": "label", "predicted_label_name_or_index": "prediction",
             "facet": [{"name_or_index": "customer_segment_of_the_account_holder",
                        "value_or_threshold": ["retail-banking-premium-tier"]}],
             "methods": {"pre_training_bias": {"methods": ["CI", "DPL"]}, "post_training_bias": {"methods": ["DPPL"]}}},
            frame, tmp_path / "analysis")
    store = ["--store", str(tmp_path / "store.sqlite"), "--create"]
    assert main(["cards", "create", "scorer", "--from-analysis", str(tmp_path / "analysis"), *store]) == 0
    assert main(["cards", "export", "scorer", "--format", "json", "-o", str(tmp_path / "s.json"), *store]) == 0
    content = json.loads((tmp_path / "s.json").read_text())
    assert_sagemaker_accepts(sagemaker_schema, content)
    groups = content["evaluation_details"][0]["metric_groups"]
    assert len(groups) == 2 and all(len(g["name"]) <= 63 for g in groups)
    assert groups[0]["name"].startswith("pre-training bias: customer_segment") and groups[0]["name"].endswith("…")
    assert {m["name"] for m in groups[0]["metric_data"]} == {"CI", "DPL"}
