"""The dashboard in headless Chromium, over real HTTP: a user journey from a run to an approved
card and its PDF, authorisation and CSRF, XSS payloads that stay text, binding rules, and two
dashboard processes on one store. Screenshots go to test-artifacts/."""
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from fmeval.cli import main
from fmeval.monitoring.monitors import make_baseline
from fmeval.monitoring.schedules import MonitorStore, Schedule
from fmeval.runs.store import RunStore
from tests.browser import ARTIFACTS
from tests.test_monitoring import tabular
from tests.test_reports import make_run

PASSWORD = "correct horse battery"
PAYLOAD = '<img src=x onerror="window.__pwned = 1">'


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_dashboard(store: str, port: int) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "fmeval", "dashboard", "--port", str(port), "--store", store],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/login", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"the dashboard did not start: {process.communicate()[1]}")


def add_users(store: str, **roles: str) -> None:
    os.environ["FMEVAL_TEST_PASSWORD"] = PASSWORD
    for name, role in roles.items():
        assert main(["users", "add", name, "--role", role, "--password-env", "FMEVAL_TEST_PASSWORD", "--store", store]) == 0


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A store with two runs of one model (one output carries an XSS payload), a monitor on that model,
    four users, and a dashboard serving it."""
    store = str(tmp_path / "store.sqlite")
    monkeypatch.setenv("FMEVAL_STORE", store)
    make_run(tmp_path, "first", [1, 0, 1, 0])
    run = make_run(tmp_path, "second", [1, 1, 1, 0], outputs=[PAYLOAD, "a", "b", "c"])
    with RunStore(store) as runs:
        model = runs.get(run.run_id).model
    (tmp_path / "capture").mkdir()
    pd.DataFrame(tabular(300, 0)).to_csv(tmp_path / "reference.csv", index=False)
    make_baseline("data-quality", {"data": tmp_path / "reference.csv"}, tmp_path / "base")
    with MonitorStore(store) as monitors:
        monitors.create(Schedule(name="dq", kind="", baseline=str(tmp_path / "base"), capture=str(tmp_path / "capture"),
                                 cron="0 * * * *", output=str(tmp_path / "out"), start="2026-12-01T00:00:00+00:00",
                                 model=model))
    add_users(store, alice="editor", bob="approver", carol="viewer", root="admin")
    port = free_port()
    process = start_dashboard(store, port)
    yield {"url": f"http://127.0.0.1:{port}", "model": model, "run": run, "store": store}
    process.terminate()
    process.wait(10)


def log_in(browser, url, user):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{url}/")
    assert "/login" in page.url
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Log in')")
    page.wait_for_load_state("load")
    return page, dialogs


def review_form(page, action):
    """The hidden fields of the card page's form for `action`: CSRF token, version, hash, status, last event."""
    return {field.get_attribute("name"): field.get_attribute("value")
            for field in page.query_selector_all(f"form[action$='/{action}'] input[type=hidden]")}


def test_from_a_run_to_an_approved_card_and_its_pdf(site, browser):
    url, model = site["url"], site["model"]
    page, dialogs = log_in(browser, url, "alice")
    assert page.url == f"{url}/", page.inner_text("body")
    assert model in page.inner_text("table")
    assert "data-quality: healthy" in page.inner_text("table") and "model-quality: missing" in page.inner_text("table")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-models.png"), full_page=True)
    page.click(f"text={model}")
    page.click("text=Create a model card from the latest run")
    page.fill("input[name=name]", "qa-card")
    page.select_option("select[name='intended_uses.risk_rating']", "Medium")
    page.fill("textarea[name='intended_uses.purpose_of_model']", f"Answers questions {PAYLOAD}")
    page.click("button:has-text('Save')")
    assert page.url == f"{url}/cards/qa-card"
    body = page.inner_text("body")
    assert "Status Draft, version 1" in body and f"Answers questions {PAYLOAD}" in body
    assert f"factual_knowledge on shared (run {site['run'].run_id})" in body  # the run's evaluation, filled in
    assert page.query_selector("text=Approve") is None  # an editor may not approve
    page.click("button:has-text('Submit')")
    assert "Status PendingReview" in page.inner_text("body")
    page.screenshot(path=str(ARTIFACTS / "dashboard-card.png"), full_page=True)

    reviewer, more_dialogs = log_in(browser, url, "bob")
    reviewer.goto(f"{url}/cards/qa-card")
    reviewer.click("button:has-text('Approve')")
    assert "Status Approved, version 1, approved by bob (version 1)" in reviewer.inner_text("body")
    pdf = reviewer.request.get(f"{url}/cards/qa-card/export/pdf")
    assert pdf.status == 200 and pdf.body()[:5] == b"%PDF-"
    reviewer.goto(f"{url}/")
    row = reviewer.inner_text(f"tr:has-text('{model}')")
    assert "Medium" in row and "Approved" in row and "▲" in row  # the second run scored higher than the first
    reviewer.goto(f"{url}/models/{model}")
    assert "card: qa-card (Approved)" in reviewer.text_content("svg[aria-label=lineage]")
    reviewer.screenshot(path=str(ARTIFACTS / "dashboard-model.png"), full_page=True)
    reviewer.goto(f"{url}/runs")
    reviewer.screenshot(path=str(ARTIFACTS / "dashboard-runs.png"), full_page=True)
    reviewer.goto(f"{url}/runs/{site['run'].run_id}/report")  # the run's report, with the model output as text
    assert PAYLOAD in reviewer.inner_text("body")
    for view in (page, reviewer):
        assert view.evaluate("window.__pwned") is None and view.query_selector_all("img") == []
    assert dialogs == more_dialogs == []

    admin, _ = log_in(browser, url, "root")
    admin.goto(f"{url}/audit")
    log = admin.inner_text("table")
    assert re.search(r"bob\s+card\.approve\s+qa-card", log) and re.search(r"alice\s+card\.create\s+qa-card", log)


def test_roles_csrf_and_origins_are_enforced(site, browser):
    url = site["url"]
    assert main(["cards", "create", "card", "--store", site["store"], "--as", "alice"]) == 0
    viewer, _ = log_in(browser, url, "carol")
    viewer.goto(f"{url}/cards/card")
    assert viewer.query_selector("text=Edit") is None and viewer.query_selector("button:has-text('Submit')") is None
    assert viewer.request.get(f"{url}/cards/card/edit").status == 403
    editor, _ = log_in(browser, url, "alice")
    editor.goto(f"{url}/cards/card")
    token = editor.get_attribute("input[name=csrf]", "value")
    assert editor.request.post(f"{url}/cards/card/submit", form={}).status == 403  # no token: a forged request
    assert editor.request.post(f"{url}/cards/card/submit", form={"csrf": "guess"}).status == 403
    assert editor.request.post(f"{url}/cards/card/submit", form={"csrf": token},
                               headers={"Origin": "https://evil.example"}).status == 403
    assert viewer.request.post(f"{url}/cards/card/submit",
                               form={"csrf": viewer.get_attribute("input[name=csrf]", "value")}).status == 403
    assert editor.request.post(f"{url}/cards/card/submit", form={"csrf": token}).status == 400  # which version?
    assert editor.request.post(f"{url}/cards/card/submit", form=review_form(editor, "submit")).status == 200
    anonymous = httpx.Client(base_url=url)
    assert anonymous.get("/cards", follow_redirects=False).headers["location"].startswith("/login?next=")
    assert anonymous.post("/cards/card/approve", data={"csrf": token}).status_code == 403
    login = anonymous.post("/login", data={"username": "alice", "password": "wrong password!", "next": "//evil.example"})
    assert login.status_code == 401
    response = anonymous.post("/login", data={"username": "alice", "password": PASSWORD, "next": "//evil.example/x"},
                              follow_redirects=False)
    assert response.headers["location"] == "/"  # never off-site
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    headers = anonymous.get("/login").headers
    assert "script-src" not in headers["content-security-policy"] and "default-src 'none'" in headers["content-security-policy"]


def test_binding_beyond_loopback_needs_tls(capsys):
    assert main(["dashboard", "--host", "0.0.0.0"]) == 2
    assert "--tls-cert and --tls-key" in capsys.readouterr().err


def test_two_dashboards_on_one_store_see_each_others_changes(store_url, tmp_path):
    add_users(store_url, alice="editor")
    ports = [free_port(), free_port()]
    processes = [start_dashboard(store_url, port) for port in ports]
    try:
        first, second = (httpx.Client(base_url=f"http://127.0.0.1:{port}", follow_redirects=True) for port in ports)
        first.post("/login", data={"username": "alice", "password": PASSWORD})
        form = first.get("/cards/new").text
        token = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
        created = first.post("/cards", data={"csrf": token, "name": "shared-card",
                                             "intended_uses.risk_rating": "Low"})
        assert created.status_code == 200 and "Model card shared-card" in created.text
        second.cookies.update(first.cookies)  # a session made by one process is valid in the other
        assert "shared-card" in second.get("/cards").text
        edited = second.post("/cards/shared-card/edit", data={"csrf": token, "based_on": "1",
                                                             "intended_uses.risk_rating": "High"})
        assert edited.status_code == 200
        stale = first.post("/cards/shared-card/edit", data={"csrf": token, "based_on": "1",
                                                           "intended_uses.risk_rating": "Medium"})
        assert stale.status_code == 409 and "changed since version 1" in stale.text  # nothing overwritten
        bad = first.post("/cards/shared-card/edit", data={"csrf": token, "based_on": "2",
                                                         "model_overview.model_version": "one"})
        assert bad.status_code == 400 and "model_overview.model_version: Input should be a valid number" in bad.text
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)


def test_a_card_whose_run_was_deleted_shows_it_missing(site, browser):
    import shutil

    url, run = site["url"], site["run"]
    assert main(["cards", "create", "kept", "--from-run", run.output_path, "--store", site["store"]]) == 0
    later = make_run(Path(run.output_path).parent, "third", [0, 0, 1, 1])
    assert main(["cards", "edit", "kept", "--from-run", later.output_path, "--store", site["store"]]) == 0
    shutil.rmtree(run.output_path)
    page, _ = log_in(browser, url, "carol")
    page.goto(f"{url}/cards/kept")
    text = page.inner_text("body")
    assert f"run {run.run_id} is kept on this card, but the run itself is missing" in text
    assert f"(run {later.run_id})" in text and text.count("Evaluation: factual_knowledge") == 2  # runs are appended
    assert page.request.get(f"{url}/runs/{run.run_id}/report").status == 404


def test_odd_addresses_get_clear_answers(site):
    client = httpx.Client(base_url=site["url"], follow_redirects=True)
    client.post("/login", data={"username": "carol", "password": PASSWORD})
    assert client.get("/runs/compare").status_code == 400 and "Pick two runs" in client.get("/runs/compare?a=x").text
    assert client.get("/runs?page=99999999999999999999").status_code == 200  # no overflow in the database
    assert client.get("/cards/no-such-card").status_code == 404
    assert client.get("/runs/no-such-run/report").status_code == 404
    assert client.get(f"/runs/compare?a={site['run'].run_id}&b=no-such-run").status_code == 404
