"""`fmeval dashboard`: the web app over fmeval's store. Server-rendered pages, no scripts at all.

Pages: models (risk, card status, latest scores with their trend, monitors per kind, last alert),
a model (its card, lineage graph, runs with their reports, monitors and their charts), runs (filter,
sort, pages; compare two with `fmeval compare`'s engine), model cards (create from a run, edit
with validated forms, submit, approve as another user, clone, export), and the audit log.

Security: every page but the login needs a session; every form carries the session's CSRF token
and a POST from another origin is refused; the Content-Security-Policy allows no script, and
everything from data is escaped; each change is written to the audit log.
"""
from __future__ import annotations

import hmac
import json
import math
import urllib.parse
from typing import Any, Awaitable, Callable

from fmeval.dashboard.accounts import Accounts, Session
from fmeval.errors import NotFound, UserError
from fmeval.html import STYLE, esc
from fmeval.store import Database

COOKIE = "fmeval_session"
PAGE_SIZE = 50
CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
           "X-Frame-Options": "DENY", "Cache-Control": "no-store"}
EXTRA_STYLE = """nav{display:flex;gap:1rem;align-items:center;border-bottom:1px solid #ddd;padding-bottom:.6rem}
nav form{margin-left:auto}.badge{display:inline-block;padding:0 .4rem;border-radius:.3rem;font-size:.8rem;margin:1px}
.healthy{background:#dafbe1}.in-alarm{background:#ffebe9;color:#a40e26;font-weight:600}.inactive{background:#eee}
.missing{color:#999}.error{color:#cf222e}.notice{background:#fff8c5;padding:.4rem .6rem}
label{display:block;margin:.5rem 0 .1rem;font-weight:600}input[type=text],textarea,select{width:32rem;max-width:100%}
textarea{height:4rem}.actions form{display:inline-block;margin-right:.5rem}"""
CARD_FIELDS = [  # (section, field, how it is entered)
    ("model_overview", "model_name", "text"), ("model_overview", "model_description", "area"),
    ("model_overview", "model_version", "text"), ("model_overview", "problem_type", "text"),
    ("model_overview", "algorithm_type", "text"), ("model_overview", "model_creator", "text"),
    ("model_overview", "model_owner", "text"),
    ("intended_uses", "purpose_of_model", "area"), ("intended_uses", "intended_uses", "area"),
    ("intended_uses", "factors_affecting_model_efficiency", "area"), ("intended_uses", "risk_rating", "risk"),
    ("intended_uses", "explanations_for_risk_rating", "area"),
    ("business_details", "business_problem", "area"), ("business_details", "business_stakeholders", "area"),
    ("business_details", "line_of_business", "text"),
    ("additional_information", "ethical_considerations", "area"),
    ("additional_information", "caveats_and_recommendations", "area"),
]


class Forbidden(Exception):
    """A request the session may not make (wrong role, missing or wrong CSRF token, other origin)."""


def build_app(database: Database, *, secure_cookies: bool = False) -> Any:
    """The Starlette application on `database` (a store opened by the caller)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, RedirectResponse, Response
    from starlette.routing import Route

    from fmeval.governance.store import CardConflict, CardStore
    from fmeval.monitoring.schedules import MonitorStore
    from fmeval.runs.store import RunStore

    accounts, cards, monitors, runs = Accounts(database), CardStore(database), MonitorStore(database), RunStore(database)

    def page(session: Session | None, title: str, body: str, status: int = 200) -> HTMLResponse:
        nav = ""
        if session is not None:
            links = [("/", "Models"), ("/runs", "Runs"), ("/cards", "Model cards")]
            links += [("/audit", "Audit log")] if session.user.can("admin") else []
            nav = ("<nav>" + "".join(f'<a href="{href}">{esc(text)}</a>' for href, text in links)
                   + f'<form method="post" action="/logout">{_csrf(session)}<span>{esc(session.user.username)} '
                     f'({esc(session.user.role)})</span> <button>Log out</button></form></nav>')
        html = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)} · fmeval</title>'
                f"<style>{STYLE}{EXTRA_STYLE}</style></head><body>{nav}<h1>{esc(title)}</h1>{body}</body></html>")
        return HTMLResponse(html, status_code=status, headers=HEADERS)

    def guarded(role: str, handler: Callable[[Request, Session], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            session = accounts.session(request.cookies.get(COOKIE))
            if session is None:
                if request.method != "GET":
                    return page(None, "Forbidden", "<p>Log in first.</p>", 403)
                target = urllib.parse.quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
                return RedirectResponse(f"/login?next={target}", status_code=303)
            try:
                if request.method == "POST":
                    _check_post(request, session, await request.form())
                if not session.user.can(role):
                    raise Forbidden(f"this needs the {role} role; you are {session.user.role}")
                return await handler(request, session)
            except Forbidden as exc:
                accounts.audit(session.user.username, "forbidden", request.url.path, {"reason": str(exc)})
                return page(session, "Forbidden", f"<p class=\"error\">{esc(exc)}</p>", 403)
            except NotFound as exc:
                return page(session, "Not found", f'<p class="error">{esc(exc)}</p>', 404)
            except UserError as exc:
                status = 409 if isinstance(exc, CardConflict) else 400
                return page(session, "Not done", f'<p class="error">{esc(exc)}</p>', status)
        return endpoint

    # -- logging in ---------------------------------------------------------------------------------------
    async def login_form(request: Request) -> Response:
        target = _safe_next(request.query_params.get("next"))
        return page(None, "Log in", _login_form(target))

    async def login(request: Request) -> Response:
        if not _same_origin(request):
            return page(None, "Forbidden", "<p>Cross-origin login refused.</p>", 403)
        form = await request.form()
        token = await run_in_threadpool(accounts.log_in, str(form.get("username", "")), str(form.get("password", "")))
        target = _safe_next(str(form.get("next", "/")))
        if token is None:
            return page(None, "Log in", '<p class="error">Wrong user name or password.</p>' + _login_form(target), 401)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=secure_cookies, path="/",
                            max_age=12 * 3600)
        return response

    async def logout(request: Request, session: Session) -> Response:
        accounts.log_out(request.cookies.get(COOKIE, ""))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    # -- models ---------------------------------------------------------------------------------------------
    async def models_page(request: Request, session: Session) -> Response:
        from fmeval.governance.registry import load_registry

        entries = list(load_registry(database).values())
        query = request.query_params.get("q", "").strip().lower()
        risk = request.query_params.get("risk", "")
        if query:
            entries = [e for e in entries if query in e.key.lower()]
        if risk:
            entries = [e for e in entries if e.risk_rating == risk]
        order = request.query_params.get("sort", "name")
        keys = {"name": lambda e: e.key.lower(), "risk": lambda e: ["High", "Medium", "Low", "Unknown"].index(e.risk_rating),
                "runs": lambda e: -len(e.runs), "alert": lambda e: "" if e.last_alert is None else e.last_alert}
        entries.sort(key=keys.get(order, keys["name"]), reverse=order == "alert")
        shown, pager = _paged(entries, request)
        rows = []
        for entry in shown:
            card = entry.card
            scores = "<br>".join(_trend(s) for s in entry.latest_scores()[:3]) or '<span class="missing">none</span>'
            health = "".join(f'<span class="badge {h.replace(" ", "-")}">{esc(kind)}: {esc(h)}</span>'
                             for kind, h in entry.monitor_health().items())
            rows.append(f'<tr><td><a href="/models/{_url(entry.key)}">{esc(entry.key)}</a></td>'
                        f"<td>{esc(entry.risk_rating)}</td><td>{esc(card.label) if card else 'none'}</td>"
                        f"<td>{scores}</td><td>{health}</td><td>{esc(entry.last_alert or '')}</td></tr>")
        body = (_filter_form({"q": ("text", "name contains"), "risk": ("risk", "risk")}, request)
                + f"<p>{len(entries)} model(s); sort by " + " · ".join(
                    f'<a href="?{_query(request, sort=key, page=1)}">{key}</a>' for key in keys) + "</p>"
                + "<table><tr><th>model</th><th>risk</th><th>card</th><th>latest scores (trend)</th><th>monitors</th>"
                  "<th>last alert</th></tr>" + "".join(rows) + "</table>" + pager)
        return page(session, "Models", body)

    async def model_page(request: Request, session: Session) -> Response:
        from fmeval.governance.registry import load_registry
        from fmeval.monitoring.report import build_report, line_chart

        key = request.path_params["key"]
        entry = load_registry(database, model=key).get(key)
        if entry is None:
            return page(session, "Not found", f"<p>No model {esc(key)}.</p>", 404)
        parts = [f"<p>Risk rating <strong>{esc(entry.risk_rating)}</strong>.</p>", "<h2>Lineage</h2>", _lineage(entry)]
        if entry.cards:
            parts.append("<h2>Model cards</h2><ul>" + "".join(
                f'<li><a href="/cards/{_url(c.name)}">{esc(c.name)}</a>: {esc(c.label)}, version {c.version}</li>'
                for c in entry.cards) + "</ul>")
        elif session.user.can("editor") and entry.runs:
            parts.append(f'<p><a href="/cards/new?run={_url(entry.runs[0].run_id)}">Create a model card from the latest '
                         f"run</a></p>")
        parts.append("<h2>Runs</h2><table><tr><th>run</th><th>date</th><th>evaluation</th><th>dataset (sha256)</th>"
                     "<th>scores</th></tr>" + "".join(
                         f'<tr><td><a href="/runs/{_url(r.run_id)}/report">{esc(r.run_id)}</a></td><td>{esc(r.created_at)}</td>'
                         f"<td>{esc(r.evaluation)}</td><td>{esc(r.dataset)}<br><small>{esc(r.dataset_sha256 or '')}</small></td>"
                         f"<td>{esc(_scores(r.scores))}</td></tr>" for r in entry.runs[:100]) + "</table>")
        for monitor in entry.monitors:
            report = build_report(monitors, monitor.name, distributions=False)  # the charts only: no run is read
            charts = "".join(line_chart(metric, [(p["window_end"], p["value"]) for p in points], [])
                             for metric, points in list(report["series"].items())[:4])
            executions = "".join(f"<tr><td>{esc(row['window'])}</td><td>{esc(row['status'])}</td>"
                                 f"<td class=\"num\">{esc(row['violations'])}</td></tr>" for row in report["executions"][-20:])
            parts.append(f"<h2>Monitor {esc(monitor.name)} ({esc(monitor.kind)}: {esc(monitor.health)})</h2>"
                         f'<div class="charts">{charts}</div><table><tr><th>window</th><th>status</th>'
                         f"<th>violations</th></tr>{executions}</table>")
        return page(session, f"Model {key}", "".join(parts))

    # -- runs ---------------------------------------------------------------------------------------------------
    async def runs_page(request: Request, session: Session) -> Response:
        from sqlalchemy import func, select

        from fmeval.runs.store import runs_table

        query = select(runs_table)
        for name in ("model", "evaluation", "dataset"):
            value = request.query_params.get(name, "").strip()
            if value:
                query = query.where(runs_table.c[name].contains(value, autoescape=True))
        order = request.query_params.get("sort", "created")
        column = {"created": runs_table.c.created_at.desc(), "model": runs_table.c.model,
                  "evaluation": runs_table.c.evaluation}.get(order, runs_table.c.created_at.desc())
        number = _page_number(request)
        with database.reading() as connection:
            total = connection.execute(select(func.count()).select_from(query.subquery())).scalar_one()
            rows = list(connection.execute(query.order_by(column, runs_table.c.run_id).limit(PAGE_SIZE)
                                           .offset((number - 1) * PAGE_SIZE)))
        table = "".join(
            f'<tr><td><a href="/runs/{_url(r.run_id)}/report">{esc(r.run_id)}</a></td><td>{esc(r.created_at)}</td>'
            f'<td><a href="/models/{_url(r.model)}">{esc(r.model)}</a></td><td>{esc(r.evaluation)}</td>'
            f"<td>{esc(r.dataset)}</td><td>{esc(_scores(json.loads(r.scores)))}</td></tr>" for r in rows)
        body = (_filter_form({"model": ("text", "model"), "evaluation": ("text", "evaluation"),
                              "dataset": ("text", "dataset")}, request)
                + '<form method="get" action="/runs/compare"><label>Compare: baseline run</label>'
                  '<input type="text" name="a"><label>candidate run</label><input type="text" name="b"> '
                  "<button>Compare</button></form>"
                + f"<p>{total} run(s); sort by " + " · ".join(
                    f'<a href="?{_query(request, sort=key, page=1)}">{key}</a>' for key in ("created", "model", "evaluation"))
                + "</p><table><tr><th>run</th><th>date</th><th>model</th><th>evaluation</th><th>dataset</th>"
                  f"<th>scores</th></tr>{table}</table>" + _pager(request, number, total))
        return page(session, "Runs", body)

    async def run_report(request: Request, session: Session) -> Response:
        from fmeval.reports.render import build_report, render_html
        from fmeval.runs.loaded import load_run

        stored = runs.get(request.path_params["run_id"])
        if stored.missing:
            return page(session, "Run missing", f"<p>Run {esc(stored.run_id)} is {esc(stored.status)}: its output "
                        f"directory {esc(stored.output_dir)} no longer holds it.</p>", 404)
        return HTMLResponse(render_html(build_report([load_run(stored.output_dir)])), headers=HEADERS)

    async def compare_page(request: Request, session: Session) -> Response:
        from fmeval.reports.compare import IncomparableRuns, compare_runs
        from fmeval.runs.loaded import load_run

        a, b = request.query_params.get("a", "").strip(), request.query_params.get("b", "").strip()
        if not a or not b:
            return page(session, "Comparison", '<p class="error">Pick two runs: a baseline (a) and a candidate (b), '
                        "by id or the start of one.</p>", 400)
        try:
            baseline, candidate = (load_run(runs.get(run_id).output_dir) for run_id in (a, b))
            comparison = compare_runs(baseline, candidate)
        except IncomparableRuns as exc:
            return page(session, "Comparison", f'<p class="error">{esc(exc)}</p>', 400)
        rows = "".join(
            f"<tr><td>{esc(m.name)}</td><td class=\"num\">{_number(m.baseline)}</td><td class=\"num\">{_number(m.candidate)}"
            f"</td><td class=\"num\">{_number(m.delta)}</td><td class=\"num\">[{_number(m.ci_lower)}, {_number(m.ci_upper)}]</td>"
            f"<td class=\"num\">{_number(m.p_value)}</td><td>{'yes' if m.significant else 'no'}</td></tr>"
            for m in comparison.metrics)
        return page(session, "Comparison", f"<p>{esc(comparison.method)}: {esc(a)} (baseline) against {esc(b)}.</p>"
                    "<table><tr><th>metric</th><th>baseline</th><th>candidate</th><th>delta</th><th>95% CI</th>"
                    f"<th>p</th><th>significant</th></tr>{rows}</table>")

    # -- model cards ------------------------------------------------------------------------------------------
    async def cards_page(request: Request, session: Session) -> Response:
        status = request.query_params.get("status") or None
        listed, pager = _paged(cards.list(status=status), request)
        rows = "".join(f'<tr><td><a href="/cards/{_url(c.name)}">{esc(c.name)}</a></td><td>{esc(c.status)}</td>'
                       f"<td>{c.version}</td><td>{esc(c.updated_at)}</td></tr>" for c in listed)
        new = '<p><a href="/cards/new">New model card</a></p>' if session.user.can("editor") else ""
        return page(session, "Model cards", new + "<table><tr><th>card</th><th>status</th><th>version</th>"
                    f"<th>updated</th></tr>{rows}</table>{pager}")

    async def card_new(request: Request, session: Session) -> Response:
        run_id = request.query_params.get("run", "")
        return page(session, "New model card", _card_form(session, "/cards", {}, [], run_id=run_id, name=""))

    async def card_create(request: Request, session: Session) -> Response:
        from fmeval.governance.cards import from_run
        from fmeval.runs.loaded import load_run

        form = await request.form()
        name = str(form.get("name", "")).strip()
        content, errors = _card_from_form(form, {}), []
        if form.get("run"):
            overview, job = from_run(load_run(runs.get(str(form["run"])).output_dir))
            content.setdefault("model_overview", {})
            for key, value in overview.items():
                content["model_overview"].setdefault(key, value)
            content["evaluation_details"] = [json.loads(job.model_dump_json())]
        card = _validated(content, errors)
        if errors or not name:
            errors += [] if name else ["name: a card needs a name"]
            return page(session, "New model card", _card_form(session, "/cards", content, errors,
                                                              run_id=str(form.get("run", "")), name=name), 400)
        cards.create(name, card, author=session.user.username)  # the store writes its audit row
        return RedirectResponse(f"/cards/{_url(name)}", status_code=303)

    async def card_page(request: Request, session: Session) -> Response:
        from fmeval.governance.export import to_html

        name = request.path_params["name"]
        stored, version = cards.get(name), cards.version(name)
        meta = {"status": stored.status, "version": stored.version, "approved_by": stored.approved_by,
                "approved_version": stored.approved_version}
        card_body = to_html(name, version.card, meta).split("<body>", 1)[1].rsplit("</body>", 1)[0]
        card_body = card_body.split("</h1>", 1)[1]  # this page has its own title
        actions = []
        if session.user.can("editor") and stored.status in ("Draft", "Approved"):
            actions.append(f'<a href="/cards/{_url(name)}/edit">Edit</a>')
        for action, role, statuses in (("submit", "editor", ("Draft",)), ("approve", "approver", ("PendingReview",)),
                                       ("reject", "approver", ("PendingReview",)),
                                       ("archive", "editor", ("Draft", "PendingReview", "Approved"))):
            if session.user.can(role) and stored.status in statuses:
                actions.append(f'<form method="post" action="/cards/{_url(name)}/{action}">{_csrf(session)}'
                               f'<input type="hidden" name="version" value="{version.version}">'
                               f'<input type="hidden" name="content_hash" value="{version.content_hash}">'
                               f"<button>{action.capitalize()}</button></form>")
        if session.user.can("editor"):
            actions.append(f'<form method="post" action="/cards/{_url(name)}/clone">{_csrf(session)}'
                           '<input type="text" name="new_name" placeholder="new card name"> <button>Clone</button></form>')
        exports = " · ".join(f'<a href="/cards/{_url(name)}/export/{fmt}">{fmt.upper()}</a>'
                             for fmt in ("html", "md", "json", "pdf"))
        versions = "".join(f"<tr><td>v{v.version}</td><td>{esc(v.author)}</td><td>{esc(v.created_at)}</td>"
                           f"<td>{esc(v.note or '')}</td></tr>" for v in cards.versions(name))
        notices = "".join(f'<p class="notice">The evaluation of run {esc(run_id)} is kept on this card, but the run '
                          f"itself is {esc(state)}.</p>" for run_id, state in _run_states(runs, version.card).items()
                          if state != "ok")
        return page(session, f"Model card {name}", f'<div class="actions">{" ".join(actions)}</div>'
                    f"{notices}<p>Export: {exports}</p>{card_body}<h2>Versions</h2><table><tr><th>version</th><th>author</th>"
                    f"<th>date</th><th>note</th></tr>{versions}</table>")

    async def card_edit_form(request: Request, session: Session) -> Response:
        name = request.path_params["name"]
        version = cards.version(name)
        content = json.loads(version.card.model_dump_json())
        return page(session, f"Edit {name}", _card_form(session, f"/cards/{_url(name)}/edit", content, [],
                                                        based_on=version.version))

    async def card_edit(request: Request, session: Session) -> Response:
        name = request.path_params["name"]
        form = await request.form()
        based_on = int(str(form.get("based_on", "0")) or 0)
        base = json.loads(cards.version(name, based_on).card.model_dump_json())
        content, errors = _card_from_form(form, base), []
        card = _validated(content, errors)
        if errors:
            return page(session, f"Edit {name}", _card_form(session, f"/cards/{_url(name)}/edit", content, errors,
                                                            based_on=based_on), 400)
        cards.save(name, card, based_on=based_on, author=session.user.username, note=str(form.get("note") or "") or None)
        return RedirectResponse(f"/cards/{_url(name)}", status_code=303)

    async def card_action(request: Request, session: Session) -> Response:
        name, action = request.path_params["name"], request.path_params["action"]
        needed = {"submit": "editor", "approve": "approver", "reject": "approver", "archive": "editor", "clone": "editor"}
        if action not in needed:
            return page(session, "Not found", "<p>No such action.</p>", 404)
        if not session.user.can(needed[action]):
            raise Forbidden(f"{action} needs the {needed[action]} role; you are {session.user.role}")
        if action == "clone":
            new_name = str((await request.form()).get("new_name", "")).strip()
            cards.create(new_name, cards.version(name).card, author=session.user.username, note=f"cloned from {name}")
            return RedirectResponse(f"/cards/{_url(new_name)}", status_code=303)
        form = await request.form()  # the version the page showed, and its hash: the action is bound to them
        version = str(form.get("version", ""))
        getattr(cards, action)(name, version=int(version) if version.isdigit() else 0,
                               content_hash=str(form.get("content_hash", "")), actor=session.user.username,
                               comment=str(form.get("comment") or "") or None)
        return RedirectResponse(f"/cards/{_url(name)}", status_code=303)

    async def card_export(request: Request, session: Session) -> Response:
        import tempfile
        from pathlib import Path

        from fmeval.governance.export import to_html, to_markdown, to_pdf

        name, fmt = request.path_params["name"], request.path_params["fmt"]
        stored, version = cards.get(name), cards.version(name)
        meta = {"status": stored.status, "version": stored.version, "approved_by": stored.approved_by,
                "approved_version": stored.approved_version}
        attachment = {"Content-Disposition": f'attachment; filename="{_url(name)}.{fmt}"'}
        if fmt == "html":
            return HTMLResponse(to_html(name, version.card, meta), headers=HEADERS)
        if fmt == "md":
            return Response(to_markdown(name, version.card, meta), media_type="text/markdown", headers={**HEADERS, **attachment})
        if fmt == "json":
            return Response(json.dumps(version.card.to_sagemaker(), indent=2), media_type="application/json",
                            headers={**HEADERS, **attachment})
        if fmt == "pdf":
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "card.pdf"
                await run_in_threadpool(to_pdf, to_html(name, version.card, meta), path)  # Playwright's sync API
                data = path.read_bytes()
            return Response(data, media_type="application/pdf", headers={**HEADERS, **attachment})
        return page(session, "Not found", "<p>No such format.</p>", 404)

    async def audit_page(request: Request, session: Session) -> Response:
        number = _page_number(request)
        rows = "".join(f"<tr><td>{esc(e['time'])}</td><td>{esc(e['username'])}</td><td>{esc(e['action'])}</td>"
                       f"<td>{esc(e['target'])}</td><td>{esc(json.dumps(e['detail']))}</td></tr>"
                       for e in accounts.audit_log(limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE))
        return page(session, "Audit log", "<table><tr><th>time</th><th>user</th><th>action</th><th>target</th>"
                    f"<th>detail</th></tr>{rows}</table>" + f'<p><a href="?page={number + 1}">older</a></p>')

    async def not_found(request: Request, exc: Exception) -> Response:
        return page(None, "Not found", "<p>Nothing here.</p>", 404)

    routes = [
        Route("/login", login_form), Route("/login", login, methods=["POST"]),
        Route("/logout", guarded("viewer", logout), methods=["POST"]),
        Route("/", guarded("viewer", models_page)), Route("/models/{key:path}", guarded("viewer", model_page)),
        Route("/runs", guarded("viewer", runs_page)), Route("/runs/compare", guarded("viewer", compare_page)),
        Route("/runs/{run_id}/report", guarded("viewer", run_report)),
        Route("/cards", guarded("viewer", cards_page)), Route("/cards", guarded("editor", card_create), methods=["POST"]),
        Route("/cards/new", guarded("editor", card_new)), Route("/cards/{name}", guarded("viewer", card_page)),
        Route("/cards/{name}/edit", guarded("editor", card_edit_form)),
        Route("/cards/{name}/edit", guarded("editor", card_edit), methods=["POST"]),
        Route("/cards/{name}/export/{fmt}", guarded("viewer", card_export)),
        Route("/cards/{name}/{action}", guarded("viewer", card_action), methods=["POST"]),
        Route("/audit", guarded("admin", audit_page)),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found})


# -- pieces of pages ------------------------------------------------------------------------------------------
def _run_states(runs: Any, card: Any) -> dict[str, str]:
    """Each run a card's evaluations name: 'ok', 'missing' (deleted, or gone from the index), or
    'replaced by ...'."""
    states = {}
    for job in card.evaluation_details:
        run_id = job.metadata.get("fmeval_run_id")
        if run_id:
            try:
                states[run_id] = runs.get(run_id).status
            except UserError:
                states[run_id] = "missing from the run index"
    return states


def _csrf(session: Session) -> str:
    return f'<input type="hidden" name="csrf" value="{esc(session.csrf)}">'


def _check_post(request: Any, session: Session, form: Any) -> None:
    if not _same_origin(request):
        raise Forbidden("a request from another site was refused")
    if not hmac.compare_digest(str(form.get("csrf", "")), session.csrf):
        raise Forbidden("the form's CSRF token is missing or wrong; reload the page and try again")


def _same_origin(request: Any) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return True  # no Origin header (older browsers, tools): the CSRF token still decides
    return urllib.parse.urlsplit(origin).netloc == request.headers.get("host")


def _safe_next(target: str | None) -> str:
    """Only a path on this site (never //other.host or a scheme)."""
    return target if target and target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


def _login_form(target: str) -> str:
    return ('<form method="post" action="/login"><label>User name</label><input type="text" name="username" '
            'autocomplete="username"><label>Password</label><input type="password" name="password" '
            f'autocomplete="current-password"><input type="hidden" name="next" value="{esc(target)}"><p>'
            "<button>Log in</button></p></form>")


def _url(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def _number(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def _scores(scores: list[dict[str, Any]]) -> str:
    return ", ".join(f"{s['name']} {_number(s.get('value'))}" for s in scores[:3])


def _trend(score: dict[str, Any]) -> str:
    value, previous = score["value"], score["previous"]
    arrow = "" if previous is None or value is None else " ▲" if value > previous else " ▼" if value < previous else " ="
    return f"{esc(score['evaluation'])}: {esc(score['metric'])} {_number(value)}{arrow}"


def _page_number(request: Any) -> int:
    try:
        return min(max(1, int(request.query_params.get("page", "1"))), 1_000_000)  # an offset the database takes
    except ValueError:
        return 1


def _query(request: Any, **changes: Any) -> str:
    params = dict(request.query_params)
    params.update({k: str(v) for k, v in changes.items()})
    return urllib.parse.urlencode(params)


def _pager(request: Any, number: int, total: int) -> str:
    pages = max(1, math.ceil(total / PAGE_SIZE))
    links = []
    if number > 1:
        links.append(f'<a href="?{_query(request, page=number - 1)}">previous</a>')
    if number < pages:
        links.append(f'<a href="?{_query(request, page=number + 1)}">next</a>')
    return f"<p>page {number} of {pages} {' · '.join(links)}</p>"


def _paged(items: list[Any], request: Any) -> tuple[list[Any], str]:
    number = _page_number(request)
    return items[(number - 1) * PAGE_SIZE:number * PAGE_SIZE], _pager(request, number, len(items))


def _filter_form(fields: dict[str, tuple[str, str]], request: Any) -> str:
    inputs = []
    for name, (kind, label) in fields.items():
        value = request.query_params.get(name, "")
        if kind == "risk":
            options = "".join(f'<option value="{r}"{" selected" if r == value else ""}>{r or "any"}</option>'
                              for r in ("", "High", "Medium", "Low", "Unknown"))
            inputs.append(f'{esc(label)} <select name="{name}">{options}</select>')
        else:
            inputs.append(f'{esc(label)} <input type="text" name="{name}" value="{esc(value)}" style="width:12rem">')
    return f'<form method="get">{" ".join(inputs)} <button>Filter</button></form>'


def _lineage(entry: Any) -> str:
    """The model in the middle, its datasets and runs on the left, its cards and monitors on the right."""
    datasets = sorted({f"{r.dataset}" + (f" ({r.dataset_sha256[:12]})" if r.dataset_sha256 else "") for r in entry.runs})
    left = [("dataset", d) for d in datasets[:8]] + [("run", f"{r.run_id} {r.evaluation}") for r in entry.runs[:8]]
    right = [("card", f"{c.name} ({c.label})") for c in entry.cards] + [("monitor", f"{m.name} ({m.kind})")
                                                                         for m in entry.monitors]
    height = max(len(left), len(right), 1) * 28 + 20
    middle_y = height / 2
    parts = [f'<svg class="chart" role="img" aria-label="lineage" width="900" height="{height}" '
             f'xmlns="http://www.w3.org/2000/svg">',
             f'<rect x="360" y="{middle_y - 14}" width="180" height="28" fill="#0969da" rx="4"/>'
             f'<text x="450" y="{middle_y + 4}" class="label" text-anchor="middle" fill="#fff">{esc(entry.key[:28])}</text>']
    for side, items in ((0, left), (1, right)):
        for i, (kind, text) in enumerate(items):
            y = 20 + i * 28
            x = 10 if side == 0 else 600
            parts.append(f'<line x1="{x + (280 if side == 0 else 0)}" y1="{y + 10}" x2="{360 if side == 0 else 540}" '
                         f'y2="{middle_y}" class="axis"/><rect x="{x}" y="{y}" width="280" height="20" fill="#f4f4f4" '
                         f'stroke="#ccc"/><text x="{x + 6}" y="{y + 14}" class="label">{esc(kind)}: {esc(text[:40])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _card_form(session: Session, action: str, content: dict[str, Any], errors: list[str], *, run_id: str = "",
               name: str | None = None, based_on: int | None = None) -> str:
    parts = [f'<form method="post" action="{esc(action)}">{_csrf(session)}']
    if errors:
        parts.append('<ul class="error">' + "".join(f"<li>{esc(e)}</li>" for e in errors) + "</ul>")
    if name is not None:
        parts.append(f'<label>Card name</label><input type="text" name="name" value="{esc(name)}">')
    if run_id:
        parts.append(f'<p>Filled from run {esc(run_id)} (its model and evaluation).</p>'
                     f'<input type="hidden" name="run" value="{esc(run_id)}">')
    if based_on is not None:
        parts.append(f'<input type="hidden" name="based_on" value="{based_on}">')
    for section, field, kind in CARD_FIELDS:
        value = (content.get(section) or {}).get(field)
        label = f'<label for="{section}.{field}">{esc(section.replace("_", " "))}: {esc(field.replace("_", " "))}</label>'
        key = f"{section}.{field}"
        if kind == "risk":
            options = "".join(f'<option value="{r}"{" selected" if r == value else ""}>{r or "(none)"}</option>'
                              for r in ("", "High", "Medium", "Low", "Unknown"))
            parts.append(f'{label}<select id="{key}" name="{key}">{options}</select>')
        elif kind == "area":
            parts.append(f'{label}<textarea id="{key}" name="{key}">{esc(value or "")}</textarea>')
        else:
            parts.append(f'{label}<input type="text" id="{key}" name="{key}" value="{esc("" if value is None else value)}">')
    if based_on is not None:
        parts.append('<label for="note">why this version</label><input type="text" id="note" name="note">')
    parts.append("<p><button>Save</button></p></form>")
    return "".join(parts)


def _card_from_form(form: Any, base: dict[str, Any]) -> dict[str, Any]:
    """The card's content: `base` with the form's fields (an emptied field is removed)."""
    content = json.loads(json.dumps(base))
    for section, field, _ in CARD_FIELDS:
        value = str(form.get(f"{section}.{field}", "")).strip()
        target = content.setdefault(section, {})
        if value:
            target[field] = value
        else:
            target.pop(field, None)
    return content


def _validated(content: dict[str, Any], errors: list[str]) -> Any:
    """The card, or None with its errors (field by field) appended to `errors`."""
    from pydantic import ValidationError

    from fmeval.governance.cards import ModelCard, validation_errors

    try:
        return ModelCard.model_validate(content)
    except ValidationError as exc:
        errors.extend(validation_errors(exc))
        return None


def serve(database_url: str | None, *, host: str = "127.0.0.1", port: int = 8800, certfile: str | None = None,
          keyfile: str | None = None, allow_insecure_remote: bool = False) -> None:
    """Serve until interrupted. Binding beyond loopback without TLS is refused unless allowed."""
    import uvicorn

    from fmeval.model_runners.http import is_loopback

    loopback = is_loopback(f"http://[{host}]/" if ":" in host else f"http://{host}/")
    if not loopback and not certfile and not allow_insecure_remote:
        raise UserError(f"--host {host} would serve passwords and sessions in clear text beyond this machine: give "
                        f"--tls-cert and --tls-key, or --allow-insecure-remote behind a TLS proxy")
    database = Database(database_url)
    print(f"dashboard on {'https' if certfile else 'http'}://{host}:{port}/ (store {database})", flush=True)
    uvicorn.run(build_app(database, secure_cookies=bool(certfile)), host=host, port=port, ssl_certfile=certfile,
                ssl_keyfile=keyfile, log_level="warning")
