"""The HTML report in a real browser: headless Chromium (Debian's package, which `make test`
installs), driven by Playwright, offline. Screenshots go to test-artifacts/."""
import json
import shutil

import pytest

from fmeval import evaluate
from fmeval.datasets import DataConfig
from fmeval.reports.render import build_report, render_html
from fmeval.runs.loaded import load_runs
from tests.browser import ARTIFACTS, open_offline

PAYLOADS = [
    "<script>window.__pwned = 1; alert('xss')</script>",
    '<img src=x onerror="window.__pwned = 2; alert(2)">',
    '" autofocus onfocus="window.__pwned = 3',
    "'><svg onload=\"window.__pwned = 4\">",
    '<a href="javascript:window.__pwned = 5">click me</a>',
    '<iframe src="javascript:alert(6)"></iframe>',
]


def check_charts(page) -> int:
    charts = page.query_selector_all("svg.chart")
    assert charts, "no chart rendered"
    for chart in charts:
        box = chart.bounding_box()
        assert box and box["width"] > 0 and box["height"] > 0
    assert page.query_selector_all("svg.chart rect"), "charts without bars"
    return len(charts)


def test_untrusted_outputs_stay_text_in_the_browser(browser, tmp_path):
    data = tmp_path / "xss.jsonl"
    data.write_text("".join(json.dumps({"q": f"question {i}", "a": "target", "out": payload, "cat": f"c{i % 2}"}) + "\n"
                            for i, payload in enumerate(PAYLOADS)))
    config = DataConfig(dataset_name="xss", dataset_uri=str(data), model_input="q", target_output="a",
                        model_output="out", category="cat")
    summary = evaluate(evaluation="factual_knowledge", dataset=config, model=None, output=tmp_path / "run",
                       progress=False)
    report = tmp_path / "report.html"
    report.write_text(render_html(build_report(load_runs([summary.output_path]), examples=len(PAYLOADS))))
    page, requests, dialogs = open_offline(browser, report)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-xss.png"), full_page=True)
    assert dialogs == []
    assert page.evaluate("window.__pwned") is None
    assert page.query_selector_all("img, iframe, a[href], [onerror], [onload], [onfocus], [autofocus]") == []
    assert requests == [report.as_uri()]  # the file itself and nothing else
    text = page.inner_text("body")
    for payload in PAYLOADS:
        assert payload in text  # shown, as text
    check_charts(page)


@pytest.mark.slow
def test_report_of_two_models_on_two_evaluations_from_real_runs(browser, tmp_path):
    """The bundled SmolLM2 with its default prompts, against the same model with a terse prompt."""
    runs = []
    terse = "Answer in as few words as possible. $model_input"
    for dataset, evaluation, options in (
        ("demo_factual", "factual_knowledge", {}),
        ("demo_qa", "qa_accuracy", {"metrics": ["f1_score", "exact_match_score", "quasi_exact_match_score",
                                                "recall_over_words"]}),
    ):
        for name, template in (("default", None), ("terse", terse)):
            summary = evaluate(evaluation=evaluation, dataset=dataset, model="smollm2", num_records=12,
                               model_options={"max_new_tokens": 16}, prompt_template=template,
                               evaluation_options=options, output=tmp_path / f"{dataset}-{name}", progress=False)
            runs.append((summary.output_path, f"SmolLM2 {name} prompt"))
    loaded = load_runs([path for path, _ in runs], labels=[label for _, label in runs])
    document = build_report(loaded)
    assert [len(group["runs"]) for group in document["groups"]] == [2, 2]
    assert all(group["comparisons"][0]["method"] == "paired bootstrap" for group in document["groups"])
    report = tmp_path / "demo-report.html"
    report.write_text(render_html(document))
    page, requests, dialogs = open_offline(browser, report)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo-report.png"), full_page=True)
    shutil.copy(report, ARTIFACTS / "demo-report.html")
    assert check_charts(page) >= 2 + 4  # a chart per metric of both evaluations, and per category
    assert dialogs == [] and requests == [report.as_uri()]
    assert "SmolLM2 terse prompt compared with SmolLM2 default prompt" in page.inner_text("body")
