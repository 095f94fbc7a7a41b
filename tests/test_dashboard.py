"""The dashboard in headless Chromium, over real HTTP: a user journey from a run to an approved
card and its PDF, authorisation and CSRF, XSS payloads that stay text, binding rules, two
dashboard processes on one store, stale approvals refused, a reviewer's history and diff, the
audit page, login lockouts, bounded inputs, and a webhook that never answers stalling no one.
Screenshots go to test-artifacts/."""
import csv
import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import httpx
import pandas as pd
import pytest

from fmeval.cli import main
from fmeval.governance.store import CardStore
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
        assert main(["users", "add", name, "--role", role, "--password-env", "FMEVAL_TEST_PASSWORD", "--store", store,
                     "--create"]) == 0


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
    add_users(store, alice="editor", bob="approver", carol="viewer", root="admin", dave="approver")
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
    assert page.query_selector("button:has-text('Approve')") is None  # an editor may not approve
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


def review_form_of(html, action):
    """The hidden fields of a card page's form for `action` (from its HTML)."""
    form = html.split(f'action="/cards/')[1:]
    form = next(part for part in form if part.split('"', 1)[0].endswith(f"/{action}"))
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', form.split("</form>")[0]))


def client_for(url, user):
    client = httpx.Client(base_url=url, follow_redirects=True, timeout=30)
    assert client.post("/login", data={"username": user, "password": PASSWORD}).status_code == 200
    return client


def csrf_of(client):
    return re.search(r'name="csrf" value="([^"]+)"', client.get("/cards").text).group(1)


def act(client, name, action, **fields):
    """Post the card page's `action` form as a user would (what the page shows, plus `fields`)."""
    return client.post(f"/cards/{name}/{action}", data={**review_form_of(client.get(f"/cards/{name}").text, action),
                                                        **fields})


def test_a_stale_approval_is_refused(site, browser):
    """Approver bob opens v1 (risk High); dave rejects it, alice saves v2 (risk Low) and resubmits;
    bob's Approve on his stale page is refused with 409, naming who changed what, and nothing is approved."""
    url, store = site["url"], site["store"]
    assert main(["cards", "create", "race", "--store", store, "--as", "alice",
                 "--set", "intended_uses.risk_rating=High"]) == 0
    dave, alice = client_for(url, "dave"), client_for(url, "alice")
    assert act(alice, "race", "submit").status_code == 200
    stale, _ = log_in(browser, url, "bob")
    stale.goto(f"{url}/cards/race")
    assert "High" in stale.inner_text("body")
    fields = review_form_of(dave.get("/cards/race").text, "reject")
    assert dave.post("/cards/race/reject", data={**fields, "comment": "too risky"}).status_code == 200
    edited = alice.post("/cards/race/edit", data={"csrf": csrf_of(alice), "based_on": "1",
                                                  "intended_uses.risk_rating": "Low"})
    assert edited.status_code == 200
    assert act(alice, "race", "submit").status_code == 200
    with stale.expect_response(f"{url}/cards/race/approve") as answer:
        stale.click("button:has-text('Approve')")
    assert answer.value.status == 409
    text = stale.inner_text("body")
    assert "approve of model card 'race' v1 refused: it is no longer the current version" in text
    for change in (r"v1 rejected by dave at [^;]+ \('too risky'\)", "v2 saved by alice at", "v2 submitted by alice"):
        assert re.search(change, text), text  # who changed what since
    stale.screenshot(path=str(ARTIFACTS / "dashboard-stale-approval.png"), full_page=True)
    shown = alice.get("/cards/race").text
    assert "Status <strong>PendingReview</strong>, version 2" in shown and "approved by" not in shown
    bob = client_for(url, "bob")
    tampered = {**fields, "csrf": csrf_of(bob), "version": "2"}  # the current version with v1's content hash
    refused = bob.post("/cards/race/approve", data=tampered)
    assert refused.status_code == 409 and "its content hash is" in refused.text


def test_a_clone_made_in_the_dashboard_keeps_its_sources_author_from_approving_it(site):
    """bob (an approver) wrote a card nobody approved; alice clones it in the dashboard and submits the
    clone: bob's approval is refused, naming the cloned source, and dave (who wrote none of it) approves."""
    url, store = site["url"], site["store"]
    assert main(["cards", "create", "bobs", "--store", store, "--as", "bob",
                 "--set", "intended_uses.risk_rating=Low"]) == 0
    alice, bob, dave = client_for(url, "alice"), client_for(url, "bob"), client_for(url, "dave")
    cloned = alice.post("/cards/bobs/clone", data={"csrf": csrf_of(alice), "new_name": "alices"})
    assert cloned.status_code == 200 and cloned.url.path == "/cards/alices"
    assert act(alice, "alices", "submit").status_code == 200
    refused = act(bob, "alices", "approve")
    assert refused.status_code >= 400
    assert "bob wrote v1&#39;s source (cloned) of &#39;alices&#39;" in refused.text
    assert act(dave, "alices", "approve").status_code == 200
    with CardStore(store) as cards:
        assert (cards.get("alices").approved_by, cards.get("bobs").status) == ("dave", "Draft")


def test_a_reviewer_reads_the_history_diffs_two_versions_and_approves_with_a_comment(site, browser):
    url, store = site["url"], site["store"]
    assert main(["cards", "create", "hist", "--store", store, "--as", "alice",
                 "--set", "intended_uses.risk_rating=High"]) == 0
    assert main(["cards", "edit", "hist", "--store", store, "--as", "alice",
                 "--set", "intended_uses.purpose_of_model=Answers questions"]) == 0
    assert act(client_for(url, "alice"), "hist", "submit").status_code == 200
    page, _ = log_in(browser, url, "bob")
    page.goto(f"{url}/cards/hist")
    page.click("text=History")
    table = page.inner_text("table")
    assert re.search(r"v1\s+alice", table) and re.search(r"v2\s+alice.*PendingReview", table)
    page.select_option("select[name=old]", "1")
    page.select_option("select[name=new]", "2")
    page.click("button:has-text('Show the changes')")
    diff = page.inner_text("pre.diff")
    assert '+    "purpose_of_model": "Answers questions"' in diff and "hist v1" in diff and "hist v2" in diff
    page.screenshot(path=str(ARTIFACTS / "dashboard-diff.png"), full_page=True)
    page.goto(f"{url}/cards/hist")
    page.fill("form[action$='/approve'] textarea[name=comment]", "Risk accepted <b>for now</b>")
    page.click("button:has-text('Approve')")
    assert "Status Approved, version 2, approved by bob (version 2)" in page.inner_text("body")
    page.goto(f"{url}/cards/hist/history")
    assert "bob: approved “Risk accepted <b>for now</b>”" in page.inner_text("table")  # a comment stays text
    page.screenshot(path=str(ARTIFACTS / "dashboard-history.png"), full_page=True)
    old = page.request.get(f"{url}/cards/hist/export/json?version=1")
    assert old.status == 200 and "purpose_of_model" not in old.text() and old.json()["intended_uses"]["risk_rating"] == "High"
    page.goto(f"{url}/cards/hist?version=1")
    assert "You are looking at version 1" in page.inner_text("body")
    assert page.query_selector("button:has-text('Approve')") is None  # a review acts on the latest version only
    assert page.request.get(f"{url}/cards/hist/export/pdf?version=1").body()[:5] == b"%PDF-"


def test_the_audit_page_filters_and_exports_csv(site, browser):
    url, store = site["url"], site["store"]
    alice = client_for(url, "alice")
    token = csrf_of(alice)
    assert alice.post("/cards", data={"csrf": token, "name": "=HYPERLINK(1)", "run": site["run"].run_id}).status_code == 200
    assert alice.post("/cards", data={"csrf": token, "name": "other"}).status_code == 200
    client_for(url, "carol")
    admin, _ = log_in(browser, url, "root")
    admin.goto(f"{url}/audit")
    admin.fill("input[name=user]", "alice")
    admin.click("button:has-text('Filter')")
    rows = admin.inner_text("table")
    assert "card.create" in rows and "carol" not in rows
    admin.screenshot(path=str(ARTIFACTS / "dashboard-audit.png"), full_page=True)
    admin.goto(f"{url}/audit?model={urllib.parse.quote(site['model'])}")  # the model's cards only
    rows = admin.inner_text("table")
    assert "=HYPERLINK(1)" in rows and "other" not in rows
    admin.goto(f"{url}/audit?until=2000-01-01")
    assert admin.query_selector_all("table tr") and len(admin.query_selector_all("table tr")) == 1  # the header only
    csv_text = admin.request.get(f"{url}/audit.csv?user=alice&card=%3DHYPERLINK(1)").text()
    lines = list(csv.reader(io.StringIO(csv_text)))
    assert lines[0] == ["time", "user", "action", "target", "model", "detail"]
    assert [line[1:5] for line in lines[1:]] == [["alice", "card.create", "'=HYPERLINK(1)", site["model"]]]  # no formula
    assert admin.request.get(f"{url}/audit?since=yesterday").status == 400


@pytest.mark.slow
def test_logins_are_rate_limited_and_an_admin_lifts_the_lockout(site):
    """50 wrong passwords on loopback: 5 are checked (401), then the account is locked (429, no
    password checked), so the 50 take well under the time of 50 Argon2 checks."""
    url = site["url"]
    anonymous = httpx.Client(base_url=url, timeout=30)
    started = time.monotonic()
    statuses = [anonymous.post("/login", data={"username": "alice", "password": f"wrong {i}"}).status_code
                for i in range(50)]
    elapsed = time.monotonic() - started
    assert statuses == [401] * 5 + [429] * 45, statuses
    assert anonymous.post("/login", data={"username": "alice", "password": PASSWORD}).status_code == 429
    print(f"50 wrong passwords: {elapsed:.2f} s")
    admin = client_for(url, "root")
    assert "locked until" in admin.get("/users").text
    lifted = admin.post("/users/alice/unlock", data={"csrf": csrf_of(admin)})
    assert lifted.status_code == 200 and "lockout of alice was lifted" in lifted.text
    assert re.search(r"root</td><td>user\.unlock</td><td>alice", admin.get("/audit").text)
    assert anonymous.post("/login", data={"username": "alice", "password": PASSWORD}).status_code == 303
    for i in range(20):  # one client trying many accounts is stopped too (other accounts than alice)
        anonymous.post("/login", data={"username": f"nobody{i % 4}", "password": "wrong"})
    assert anonymous.post("/login", data={"username": "carol", "password": PASSWORD}).status_code == 429


def test_passwords_roles_and_expired_sessions(site):
    from sqlalchemy import select

    from fmeval.dashboard.accounts import Accounts, sessions_table
    from fmeval.store import Database

    url = site["url"]
    carol = client_for(url, "carol")
    wrong = carol.post("/account/password", data={"csrf": csrf_of(carol), "current": "nope", "new": "a new password!"})
    assert wrong.status_code == 400 and "current password is wrong" in wrong.text
    changed = carol.post("/account/password", data={"csrf": csrf_of(carol), "current": PASSWORD,
                                                    "new": "a new password!"})
    assert changed.status_code == 200 and "was changed" in changed.text
    fresh = httpx.Client(base_url=url)
    assert fresh.post("/login", data={"username": "carol", "password": PASSWORD}).status_code == 401
    assert fresh.post("/login", data={"username": "carol", "password": "a new password!"}).status_code == 303
    admin = client_for(url, "root")
    assert admin.post("/users/carol/role", data={"csrf": csrf_of(admin), "role": "editor"}).status_code == 200
    assert "carol (editor)" in carol.get("/").text
    assert admin.post("/users/carol/role", data={"csrf": csrf_of(admin), "role": "king"}).status_code == 400
    assert carol.post("/users/carol/role", data={"csrf": csrf_of(carol), "role": "admin"}).status_code == 403
    with Database(site["store"]) as database:
        with database.transaction() as connection:
            connection.execute(sessions_table.insert().values(token_sha256="x" * 64, username="carol", csrf="c",
                                                              expires_at="2000-01-01T00:00:00+00:00"))
        assert Accounts(database).log_in("bob", PASSWORD, client="test")
        with database.reading() as connection:
            assert connection.execute(select(sessions_table).where(sessions_table.c.token_sha256 == "x" * 64)).first() is None


def test_inputs_are_bounded_before_the_store_sees_them(store_url, tmp_path):
    """On PostgreSQL a 101-character user name or a 501-character path gave 500 (the columns'
    sizes) and no audit row; `based_on=abc` gave 500 on both."""
    from fmeval.store import Database
    from fmeval.store.audit import query_audit

    add_users(store_url, alice="editor", root="admin")
    port = free_port()
    process = start_dashboard(store_url, port)
    try:
        url = f"http://127.0.0.1:{port}"
        anonymous = httpx.Client(base_url=url)
        long_name = anonymous.post("/login", data={"username": "u" * 101, "password": "x"})
        assert long_name.status_code == 400 and "at most 100 characters" in long_name.text
        assert anonymous.get("/cards/" + "p" * 501).status_code == 414
        alice = client_for(url, "alice")
        assert alice.get("/cards/" + "p" * 501).status_code == 414
        token = csrf_of(alice)
        assert alice.post("/cards", data={"csrf": token, "name": "new"}).status_code == 200
        opened = alice.get("/cards/new")
        assert opened.status_code == 200 and "Model card new" in opened.text  # not the new-card form
        bad = alice.post("/cards/new/edit", data={"csrf": token, "based_on": "abc"})
        assert bad.status_code == 400 and "based_on: a version number" in bad.text
        assert alice.post("/cards", data={"csrf": token, "name": "n" * 201}).status_code == 400
        huge = alice.post("/cards/new/edit", data={"csrf": token, "based_on": "1",
                                                   "model_overview.model_description": "x" * 20_001})
        assert huge.status_code == 400 and "at most 20000 characters" in huge.text
        with Database(store_url) as database:
            log = query_audit(database)
        assert {"login.refused", "refused.long_address"} <= {row["action"] for row in log}
        assert len(next(row for row in log if row["action"] == "login.refused")["username"]) == 100
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.slow
def test_simultaneous_saves_answer_409_never_500(store_url):
    """40 saves of one card at once, from version 1, through two dashboard processes: one is saved,
    the others answer 409 (on the base commit, on PostgreSQL, some raced into the unique key and
    answered 500)."""
    from concurrent.futures import ThreadPoolExecutor

    add_users(store_url, alice="editor")
    assert main(["cards", "create", "busy", "--store", store_url, "--as", "alice"]) == 0
    ports = [free_port(), free_port()]
    processes = [start_dashboard(store_url, port) for port in ports]
    try:
        session = client_for(f"http://127.0.0.1:{ports[0]}", "alice")  # one session, valid in both processes
        token = csrf_of(session)
        clients = [httpx.Client(base_url=f"http://127.0.0.1:{ports[i % 2]}", cookies=session.cookies, timeout=60,
                                follow_redirects=False)
                   for i in range(40)]
        barrier = threading.Barrier(40)

        def save(index):
            barrier.wait()  # all forty at once, each from version 1
            return clients[index].post("/cards/busy/edit", data={"csrf": token, "based_on": "1",
                                                                 "model_overview.model_owner": f"owner {index}"}).status_code

        with ThreadPoolExecutor(40) as pool:
            statuses = list(pool.map(save, range(40)))
        assert sorted(statuses) == [303] + [409] * 39, statuses  # one saved (and sent to its card), 39 refused
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)


def test_a_conflict_keeps_the_users_text_and_shows_the_diff(site):
    url, store = site["url"], site["store"]
    assert main(["cards", "create", "both", "--store", store, "--as", "alice"]) == 0
    alice, bob = client_for(url, "alice"), client_for(url, "bob")
    assert bob.post("/cards/both/edit", data={"csrf": csrf_of(bob), "based_on": "1",
                                              "model_overview.model_owner": "team bob"}).status_code == 200
    stale = alice.post("/cards/both/edit", data={"csrf": csrf_of(alice), "based_on": "1",
                                                 "intended_uses.purpose_of_model": "Alice's long text <i>",
                                                 "note": "my reasons"})
    assert stale.status_code == 409 and "changed since version 1 (v2 saved by bob" in stale.text
    assert "Alice&#39;s long text &lt;i&gt;</textarea>" in stale.text and 'value="my reasons"' in stale.text
    assert '+    "model_owner": "team bob"' in stale.text.replace("&#34;", '"')  # what bob changed
    assert 'name="based_on" value="2"' in stale.text  # saving again is a choice made with bob's change in view


def test_archive_asks_first_and_error_pages_lead_on(site):
    url, store = site["url"], site["store"]
    assert main(["cards", "create", "old", "--store", store, "--as", "alice"]) == 0
    alice = client_for(url, "alice")
    fields = review_form_of(alice.get("/cards/old").text, "archive")
    asked = alice.post("/cards/old/archive", data=fields)
    assert asked.status_code == 200 and "Archive model card old (version 1)?" in asked.text
    assert 'name="confirm" value="yes"' in asked.text and "<script" not in asked.text
    assert "Status <strong>Draft</strong>" in alice.get("/cards/old").text  # nothing archived yet
    assert alice.post("/cards/old/archive", data={**fields, "confirm": "yes"}).status_code == 200
    assert "Status <strong>Archived</strong>" in alice.get("/cards/old").text
    carol = client_for(url, "carol")
    missing = carol.get("/runs/no-such-run/report")
    assert missing.status_code == 404 and site["store"] not in missing.text and "the store" in missing.text
    assert 'href="/runs"' in missing.text  # a way on, not a dead end
    assert 'href="/cards"' in carol.get("/cards/no-such-card").text


def test_card_pages_print_rounded_numbers(site):
    from fmeval.governance.cards import ModelCard
    from fmeval.governance.store import CardStore

    card = ModelCard.model_validate({"evaluation_details": [{"name": "eval", "metric_groups": [{"name": "g", "metric_data": [
        {"name": "accuracy", "type": "number", "value": 1 / 12}]}]}]})
    with CardStore(site["store"]) as cards:
        cards.create("numbers", card, author="alice")
    text = client_for(site["url"], "carol").get("/cards/numbers").text
    assert "0.0833</td>" in text and "0.08333333" not in text


def test_behind_a_tls_proxy_that_rewrites_host(site):
    """A trusted proxy (loopback, uvicorn's default) says the browser saw https://dash.example:
    the login POST is same-origin and its cookie Secure; the same headers from the browser itself
    (another origin) change nothing."""
    proxied = {"Host": "127.0.0.1:1", "X-Forwarded-Host": "dash.example", "X-Forwarded-Proto": "https",
               "Origin": "https://dash.example"}
    response = httpx.post(f"{site['url']}/login", data={"username": "carol", "password": PASSWORD}, headers=proxied)
    assert response.status_code == 303 and "secure" in response.headers["set-cookie"].lower()
    direct = httpx.post(f"{site['url']}/login", data={"username": "carol", "password": PASSWORD},
                        headers={"Origin": "https://dash.example"})
    assert direct.status_code == 403


def test_the_dashboard_command_refuses_bad_ports_and_tls_files_clearly(tmp_path, capsys):
    store = str(tmp_path / "s.sqlite")
    add_users(store, alice="viewer")  # the store exists: each refusal below is about the flag it names
    with pytest.raises(SystemExit) as exited:
        main(["dashboard", "--port", "99999"])
    assert exited.value.code == 2 and "a TCP port is a number from 1 to 65535" in capsys.readouterr().err
    assert main(["dashboard", "--tls-cert", str(tmp_path / "no.pem"), "--tls-key", str(tmp_path / "no.key"),
                 "--store", store]) == 2
    err = capsys.readouterr().err
    assert "cannot read the TLS file" in err and "Traceback" not in err
    (tmp_path / "bad.pem").write_text("not a certificate")
    assert main(["dashboard", "--tls-cert", str(tmp_path / "bad.pem"), "--tls-key", str(tmp_path / "bad.pem"),
                 "--store", store]) == 2
    assert "cannot use --tls-cert" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        assert main(["dashboard", "--port", str(taken.getsockname()[1]), "--store", store]) == 2
    assert "cannot serve on 127.0.0.1" in capsys.readouterr().err


class Silent:
    """A webhook that accepts connections and never answers until `release` is set; `answered`
    is set once it has answered, and `bodies` holds what it was sent."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.connected, self.release, self.answered = threading.Event(), threading.Event(), threading.Event()
        self.bodies = []
        threading.Thread(target=self.serve, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/hook"

    def serve(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connected.set()
            self.release.wait()
            request = b""
            while b"\r\n\r\n" not in request or len(request.split(b"\r\n\r\n", 1)[1]) < int(
                    re.search(rb"content-length: *(\d+)", request, re.I).group(1)):
                request += connection.recv(65536)
            self.bodies.append(json.loads(request.split(b"\r\n\r\n", 1)[1]))
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            connection.close()
            self.answered.set()


def test_a_webhook_that_never_answers_stalls_no_one(site, browser):
    """alice's Submit answers at once while its webhook has not answered, and carol's pages answer
    within 100 ms meanwhile: the event leaves through the outbox, delivered by the app's background
    worker. (On main the Submit waited out the webhook's retries, and every page waited with it.)"""
    from fmeval.governance.store import CardStore

    url, store = site["url"], site["store"]
    hook = Silent()
    assert main(["cards", "create", "hooked", "--store", store, "--as", "alice"]) == 0
    with CardStore(store) as cards:
        cards.add_webhook(hook.url)
    alice, carol = client_for(url, "alice"), client_for(url, "carol")
    viewer, _ = log_in(browser, url, "carol")
    try:
        submitted = alice.post("/cards/hooked/submit", data=review_form_of(alice.get("/cards/hooked").text, "submit"),
                               timeout=5)  # on main: a ReadTimeout, the webhook's retries in the request
        assert submitted.status_code == 200 and "Status <strong>PendingReview</strong>" in submitted.text
        assert hook.connected.wait(30), "the outbox worker never delivered the event"
        timings = []
        for _ in range(5):  # while the delivery hangs on the webhook
            started = time.monotonic()
            assert "hooked" in carol.get("/cards").text
            timings.append(time.monotonic() - started)
        print("another user's page while a webhook hangs:", [f"{t * 1000:.0f} ms" for t in timings])
        assert sorted(timings)[2] < 0.1, timings  # the median of five
        viewer.goto(f"{url}/cards")
        assert "PendingReview" in viewer.inner_text("table") and not hook.answered.is_set()
        viewer.screenshot(path=str(ARTIFACTS / "dashboard-not-stalled.png"), full_page=True)
    finally:
        hook.release.set()
    assert hook.answered.wait(30)
    hook.listener.close()
    assert [(body["kind"], body["card"], body["actor"]) for body in hook.bodies] == [
        ("card.pendingreview", "hooked", "alice")]
