"""`fmeval dashboard`: the web app over fmeval's store. Server-rendered pages, no scripts at all.

Pages: models (risk, card status, latest scores with their trend, monitors per kind, last alert),
a model (its card, lineage graph, runs with their reports, monitors and their charts), runs (filter,
sort, pages; compare two with `fmeval compare`'s engine), model cards (create from a run, edit
with validated forms, submit, approve as another user, clone, export; the history of every
version with its reviews, any two versions diffed, any version viewed and exported), the audit
log (filtered, exported as CSV), and accounts (own password; roles and lockouts for admins).

Review actions (submit, approve, reject, archive) name the version the reviewer saw and its
content hash (the store's `CardVersion.content_hash`); an action on a card that changed since is
refused by the store (`CardConflict`) and answered 409, naming who changed what. Approve and
reject take a comment. Card changes are audited by the store, in the change's transaction; their
webhooks leave through the store's outbox, delivered by an `OutboxWorker` that runs for the app's
lifetime, never inside a request.

Pages are Jinja2 templates (`templates/`, on `fmeval.web`'s page shell) with autoescape: nothing
from data becomes markup. Every page but the login needs a session; every form carries the
session's CSRF token and a POST from another origin is refused (`fmeval.web`). Handlers do their
store work in Starlette's thread pool, never on the event loop, so one slow request (a webhook,
a PDF) stalls no one else. Inputs are bounded before the store sees them.
"""
from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import urllib.parse
from typing import Any, Callable

from fmeval.dashboard.accounts import MIN_PASSWORD, ROLES, Accounts, LockedOut, Session
from fmeval.errors import NotFound, UserError
from fmeval.store import Database
from fmeval.store.audit import MAX_PAGE, MAX_TARGET, MAX_USER
from fmeval.web import cookie_options, post_refusal, render, same_origin, security_headers, templates

COOKIE = "fmeval_session"
PAGE_SIZE = 50
COMMENT_LIMIT = 4000  # the store's MAX_TEXT
TEXT_LIMIT = 20_000  # one form field
RISKS = ("High", "Medium", "Low", "Unknown")
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
PAST = {"submit": "submitted", "approve": "approved", "reject": "rejected", "archive": "archived"}
REVIEW_ROLES = {"submit": "editor", "approve": "approver", "reject": "approver", "archive": "editor"}
REVIEW_FROM = {"submit": ("Draft",), "approve": ("PendingReview",), "reject": ("PendingReview",),
               "archive": ("Draft", "PendingReview", "Approved")}


class Forbidden(Exception):
    """A request the session may not make (wrong role, missing or wrong CSRF token, other origin)."""


def build_app(database: Database, *, forwarded_allow_ips: str | None = None) -> Any:
    """The ASGI application on `database` (a store opened by the caller), proxy headers read from
    `forwarded_allow_ips` (see `fmeval.web.ForwardedHeaders`)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, RedirectResponse, Response
    from starlette.routing import Route

    from fmeval.governance.export import card_meta
    from fmeval.governance.store import REVIEW_ACTIONS, CardConflict, CardStore
    from fmeval.monitoring.schedules import MonitorStore
    from fmeval.runs.store import RunStore
    from fmeval.store.outbox import OutboxWorker
    from fmeval.web import ForwardedHeaders

    accounts, cards, monitors, runs = Accounts(database), CardStore(database), MonitorStore(database), RunStore(database)
    outbox = OutboxWorker(database)
    environment = templates("fmeval.dashboard")
    environment.globals["trend"] = _trend
    Handler = Callable[[Request, Session, Any], Response]

    def page(session: Session | None, template: str, title: str, status: int = 200, **context: Any) -> Response:
        return render(environment, template, status=status, title=title, site="fmeval", session=session, **context)

    def error(session: Session | None, title: str, message: str, status: int,
              ways_on: list[tuple[str, str]] | None = None) -> Response:
        if session is None or not session.user.can("admin"):
            message = message.replace(str(database), "the store")  # where the store lives is the admin's business
            for location in {str(getattr(store, "path", "")) for store in (runs, cards)} - {""}:
                message = message.replace(location, "the store")
        ways = ways_on or ([("/", "Models"), ("/cards", "Model cards"), ("/runs", "Runs")] if session
                           else [("/login", "Log in")])
        return page(session, "error.html", title, status, message=message, ways_on=ways, layout="layout.html")

    def client_of(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def dispatch(request: Request, form: Any, role: str, handler: Handler) -> Response:
        session = accounts.session(request.cookies.get(COOKIE))
        if session is None:
            if request.method != "GET":
                return error(None, "Forbidden", "Log in first.", 403)
            target = urllib.parse.quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
            return RedirectResponse(f"/login?next={target}", status_code=303)
        try:
            if form is not None:
                reason = post_refusal(request, form.get("csrf"), session.csrf)
                if reason:
                    raise Forbidden(reason)
            if not session.user.can(role):
                raise Forbidden(f"this needs the {role} role; you are {session.user.role}")
            return handler(request, session, form)
        except Forbidden as exc:
            accounts.audit(session.user.username, "forbidden", request.url.path, {"reason": str(exc)})
            return error(session, "Forbidden", str(exc), 403)
        except NotFound as exc:
            return error(session, "Not found", str(exc), 404)
        except CardConflict as exc:
            return error(session, "Changed since you opened it", str(exc), 409, _card_ways(request))
        except UserError as exc:
            return error(session, "Not done", str(exc), 400, _card_ways(request))

    def guarded(role: str, handler: Handler) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            if len(request.url.path) > MAX_TARGET or len(request.url.query) > 4 * MAX_TARGET:
                return await run_in_threadpool(too_long, request)
            form = await request.form() if request.method == "POST" else None
            return await run_in_threadpool(dispatch, request, form, role, handler)  # store work off the loop
        return endpoint

    def too_long(request: Request) -> Response:
        session = accounts.session(request.cookies.get(COOKIE))
        accounts.audit(session.user.username if session else "(anonymous)", "refused.long_address", request.url.path,
                       {"length": len(str(request.url))})
        return error(session, "Address too long", f"An address here is at most {MAX_TARGET} characters.", 414)

    # -- logging in ---------------------------------------------------------------------------------------
    def login_form(request: Request) -> Response:
        return page(None, "login.html", "Log in", target=_safe_next(request.query_params.get("next")), error=None)

    def login(request: Request, form: Any) -> Response:
        target = _safe_next(str(form.get("next", "/")))
        if not same_origin(request):
            return error(None, "Forbidden", "Cross-origin login refused.", 403)
        username, password = str(form.get("username", "")), str(form.get("password", ""))
        if len(username) > MAX_USER or len(password) > 1000:
            accounts.audit(username[:MAX_USER], "login.refused", username,
                           {"client": client_of(request), "reason": "user name or password too long"})
            return page(None, "login.html", "Log in", 400, target=target,
                        error=f"A user name is at most {MAX_USER} characters, a password at most 1000.")
        try:
            token = accounts.log_in(username, password, client=client_of(request))
        except LockedOut as exc:
            return page(None, "login.html", "Log in", 429, target=target, error=str(exc))
        if token is None:
            return page(None, "login.html", "Log in", 401, target=target, error="Wrong user name or password.")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, token, **cookie_options(request, max_age=12 * 3600))
        return response

    async def login_endpoint(request: Request) -> Response:
        if request.method == "GET":
            return await run_in_threadpool(login_form, request)
        form = await request.form()
        return await run_in_threadpool(login, request, form)

    def logout(request: Request, session: Session, form: Any) -> Response:
        accounts.log_out(request.cookies.get(COOKIE, ""))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    # -- accounts -------------------------------------------------------------------------------------------
    def account_page(request: Request, session: Session, form: Any, *, message: str | None = None,
                     problem: str | None = None, status: int = 200) -> Response:
        return page(session, "account.html", "Your account", status, message=message, error=problem,
                    min_password=MIN_PASSWORD)

    def change_password(request: Request, session: Session, form: Any) -> Response:
        current, new = str(form.get("current", ""))[:1000], str(form.get("new", ""))
        if len(new) > 1000:
            return account_page(request, session, form, problem="a password is at most 1000 characters", status=400)
        try:
            accounts.change_password(session.user.username, current, new)
        except UserError as exc:
            return account_page(request, session, form, problem=str(exc), status=400)
        return account_page(request, session, form, message="Your password was changed.")

    def users_page(request: Request, session: Session, form: Any, message: str | None = None) -> Response:
        locked = accounts.lockouts()
        listed = [{"username": u.username, "role": u.role, "locked_until": locked.get(u.username)}
                  for u in accounts.users()]
        return page(session, "users.html", "Users", users=listed, roles=ROLES, message=message)

    def user_action(request: Request, session: Session, form: Any) -> Response:
        username, action = request.path_params["username"], request.path_params["action"]
        if action == "role":
            accounts.set_role(username, str(form.get("role", "")), actor=session.user.username)
            return users_page(request, session, form, f"{username} is now {form.get('role')}.")
        if action == "unlock":
            accounts.unlock(username, actor=session.user.username)
            return users_page(request, session, form, f"The lockout of {username} was lifted.")
        raise NotFound(f"no user action {action!r}")

    # -- models ---------------------------------------------------------------------------------------------
    def models_page(request: Request, session: Session, form: Any) -> Response:
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
        number = _page_number(request)
        return page(session, "models.html", "Models", params=request.query_params, total=len(entries),
                    entries=entries[(number - 1) * PAGE_SIZE:number * PAGE_SIZE],
                    sorts=[(key, _query(request, sort=key, page=1)) for key in keys],
                    page=_pager(request, number, len(entries)))

    def model_page(request: Request, session: Session, form: Any) -> Response:
        from markupsafe import Markup

        from fmeval.governance.registry import load_registry
        from fmeval.monitoring.report import build_report, line_chart

        key = request.path_params["key"]
        entry = load_registry(database, model=key).get(key)
        if entry is None:
            raise NotFound(f"no model {key!r}")
        shown = []
        for monitor in entry.monitors:
            report = build_report(monitors, monitor.name, distributions=False)  # the charts only: no run is read
            charts = "".join(line_chart(metric, [(p["window_end"], p["value"]) for p in points], [])
                             for metric, points in list(report["series"].items())[:4])
            shown.append({"name": monitor.name, "kind": monitor.kind, "health": monitor.health,
                          "charts": Markup(charts),  # line_chart escapes everything from data
                          "executions": report["executions"][-20:]})
        return page(session, "model.html", f"Model {key}", entry=entry, lineage=_lineage(entry), monitors=shown)

    # -- runs ---------------------------------------------------------------------------------------------------
    def runs_page(request: Request, session: Session, form: Any) -> Response:
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
            rows = [{**row._mapping, "scores": json.loads(row.scores)} for row in connection.execute(
                query.order_by(column, runs_table.c.run_id).limit(PAGE_SIZE).offset((number - 1) * PAGE_SIZE))]
        return page(session, "runs.html", "Runs", params=request.query_params, total=total, rows=rows,
                    sorts=[(key, _query(request, sort=key, page=1)) for key in ("created", "model", "evaluation")],
                    page=_pager(request, number, total))

    def run_report(request: Request, session: Session, form: Any) -> Response:
        from fmeval.reports.render import build_report, render_html
        from fmeval.runs.loaded import load_run

        stored = runs.get(request.path_params["run_id"])
        if stored.missing:
            where = f" (its output directory {stored.output_dir} no longer holds it)" if session.user.can("admin") else ""
            return error(session, "Run missing", f"Run {stored.run_id} is {stored.status}{where}.", 404,
                         [("/runs", "Runs"), ("/", "Models")])
        return HTMLResponse(render_html(build_report([load_run(stored.output_dir)])), headers=security_headers())

    def compare_page(request: Request, session: Session, form: Any) -> Response:
        from fmeval.reports.compare import IncomparableRuns, compare_runs
        from fmeval.runs.loaded import load_run

        a, b = request.query_params.get("a", "").strip(), request.query_params.get("b", "").strip()
        if not a or not b:
            return error(session, "Comparison", "Pick two runs: a baseline (a) and a candidate (b), by id or the "
                         "start of one.", 400, [("/runs", "Runs")])
        try:
            baseline, candidate = (load_run(runs.get(run_id).output_dir) for run_id in (a, b))
            comparison = compare_runs(baseline, candidate)
        except IncomparableRuns as exc:
            return error(session, "Comparison", str(exc), 400, [("/runs", "Runs")])
        return page(session, "compare.html", "Comparison", comparison=comparison, a=a, b=b)

    # -- model cards ------------------------------------------------------------------------------------------
    def cards_page(request: Request, session: Session, form: Any) -> Response:
        listed = cards.list(status=request.query_params.get("status") or None)
        number = _page_number(request)
        return page(session, "cards.html", "Model cards", cards=listed[(number - 1) * PAGE_SIZE:number * PAGE_SIZE],
                    page=_pager(request, number, len(listed)))

    def card_form(session: Session, title: str, action: str, content: dict[str, Any], errors: list[str],
                  status: int = 200, **context: Any) -> Response:
        context = {"name": None, "run_id": "", "based_on": None, "note": "", "conflict": None, "theirs": "",
                   "yours": "", "cancel": "/cards", **context}
        return page(session, "card_form.html", title, status, action=action, errors=errors,
                    fields=_form_fields(content), **context)

    def card_new(request: Request, session: Session, form: Any) -> Response:
        run_id = request.query_params.get("run", "")[:200]
        return card_form(session, "New model card", "/cards", {}, [], run_id=run_id, name="")

    def card_create(request: Request, session: Session, form: Any) -> Response:
        from fmeval.governance.cards import from_run
        from fmeval.runs.loaded import load_run

        name = _text_field(form, "name", 200).strip()
        content, errors = _card_from_form(form, {}), []
        run_id = _text_field(form, "run", 200)
        if run_id:
            overview, job = from_run(load_run(runs.get(run_id).output_dir))
            content.setdefault("model_overview", {})
            for key, value in overview.items():
                content["model_overview"].setdefault(key, value)
            content["evaluation_details"] = [json.loads(job.model_dump_json())]
        card = _validated(content, errors)
        if errors or not name:
            errors += [] if name else ["name: a card needs a name"]
            return card_form(session, "New model card", "/cards", content, errors, 400, run_id=run_id, name=name)
        cards.create(name, card, author=session.user.username, note=f"from run {run_id}" if run_id else None)
        outbox.wake()
        return RedirectResponse(f"/cards/{_url(name)}", status_code=303)

    def card_page(request: Request, session: Session, form: Any) -> Response:
        name = request.path_params["name"]
        stored = cards.get(name)
        version, meta = card_meta(cards, name, _version_param(request.query_params.get("version")) or stored.version)
        latest = version.version == stored.version
        actions = [action for action, role in REVIEW_ROLES.items()
                   if session.user.can(role) and stored.status in REVIEW_FROM[action]]
        missing = [(run_id, state) for run_id, state in _run_states(runs, version.card).items() if state != "ok"]
        title = f"Model card {name}" + ("" if latest else f", version {version.version}")
        return page(session, "card.html", title, name=name, stored=stored, latest=latest, actions=actions,
                    can_edit=session.user.can("editor") and stored.status in ("Draft", "Approved"),
                    review={"version": version.version, "content_hash": version.content_hash}, comment_limit=COMMENT_LIMIT, missing_runs=missing,
                    meta=meta, view=_view(version.card))

    def card_edit_form(request: Request, session: Session, form: Any) -> Response:
        name = request.path_params["name"]
        version = cards.version(name)
        return card_form(session, f"Edit {name}", f"/cards/{_url(name)}/edit", json.loads(version.card.model_dump_json()),
                         [], based_on=version.version, cancel=f"/cards/{_url(name)}")

    def card_edit(request: Request, session: Session, form: Any) -> Response:
        from fmeval.governance.store import card_diff

        name = request.path_params["name"]
        based_on = _version_param(str(form.get("based_on", "")), field="based_on")
        if based_on is None:
            raise UserError("based_on: the version this edit was made from is missing")
        note = _text_field(form, "note", COMMENT_LIMIT) or None
        base = json.loads(cards.version(name, based_on).card.model_dump_json())
        content, errors = _card_from_form(form, base), []
        card = _validated(content, errors)
        context = {"based_on": based_on, "note": note or "", "cancel": f"/cards/{_url(name)}"}
        if errors:
            return card_form(session, f"Edit {name}", f"/cards/{_url(name)}/edit", content, errors, 400, **context)
        try:
            cards.save(name, card, based_on=based_on, author=session.user.username, note=note)
        except CardConflict as exc:  # keep the user's text; show what changed since, and their edit against it
            current = cards.version(name)
            theirs = cards.diff(name, based_on, current.version)
            yours = card_diff(_json(current.card), _json(card), old=f"{name} v{current.version}", new="your edit")
            context.update(based_on=current.version, conflict=str(exc), theirs=theirs, yours=yours)
            return card_form(session, f"Edit {name}", f"/cards/{_url(name)}/edit", content, [], 409, **context)
        outbox.wake()
        return RedirectResponse(f"/cards/{_url(name)}", status_code=303)

    def card_action(request: Request, session: Session, form: Any) -> Response:
        name, action = request.path_params["name"], request.path_params["action"]
        if action == "clone":
            if not session.user.can("editor"):
                raise Forbidden(f"clone needs the editor role; you are {session.user.role}")
            new_name = _text_field(form, "new_name", 200).strip()
            cards.clone(name, new_name, author=session.user.username)
            outbox.wake()
            return RedirectResponse(f"/cards/{_url(new_name)}", status_code=303)
        if action not in REVIEW_ACTIONS:
            raise NotFound(f"no card action {action!r}")
        if not session.user.can(REVIEW_ROLES[action]):
            raise Forbidden(f"{action} needs the {REVIEW_ROLES[action]} role; you are {session.user.role}")
        version = _version_param(str(form.get("version", "")), field="version")
        if version is None:
            raise UserError("version: a review action names the version it is about; open the card again")
        seen = {"version": version, "content_hash": _text_field(form, "content_hash", 64)}
        if action == "archive" and form.get("confirm") != "yes":
            return page(session, "confirm.html", f"Archive {name}?", action=f"/cards/{_url(name)}/archive",
                        review=seen, button="Archive", cancel=f"/cards/{_url(name)}",
                        question=f"Archive model card {name} (version {version})? An archived card is final: it "
                                 "is no longer edited, submitted or approved (clone it to go on).")
        comment = _text_field(form, "comment", COMMENT_LIMIT).strip() or None
        getattr(cards, action)(name, **seen, actor=session.user.username, comment=comment)  # CardConflict when stale
        outbox.wake()
        return RedirectResponse(f"/cards/{_url(name)}", status_code=303)

    def history_page(request: Request, session: Session, form: Any) -> Response:
        name = request.path_params["name"]
        stored = cards.get(name)
        rows = [{"version": v.version, "author": v.author, "created_at": v.created_at, "note": v.note or "",
                 "status": REVIEW_ACTIONS[v.reviews[-1]["action"]] if v.reviews else v.status,
                 "reviews": [{**review, "action": PAST[review["action"]]} for review in v.reviews]}
                for v in cards.versions(name)]
        return page(session, "history.html", f"History of {name}", name=name, stored=stored, versions=rows)

    def diff_page(request: Request, session: Session, form: Any) -> Response:
        name = request.path_params["name"]
        old = _version_param(request.query_params.get("old"), field="old")
        new = _version_param(request.query_params.get("new"), field="new")
        if old is None or new is None:
            raise UserError("pick two versions: old and new")
        return page(session, "diff.html", f"{name}: v{old} to v{new}", name=name, old=old, new=new,
                    diff=cards.diff(name, old, new))

    def card_export(request: Request, session: Session, form: Any) -> Response:
        import tempfile
        from pathlib import Path

        from fmeval.governance.export import FORMATS, to_html, to_markdown, to_pdf

        name, fmt = request.path_params["name"], request.path_params["fmt"]
        if fmt not in FORMATS:
            raise NotFound(f"no export format {fmt!r}: {', '.join(FORMATS)}")
        version, meta = card_meta(cards, name, _version_param(request.query_params.get("version")))  # approved first
        suffix = f"-v{version.version}"
        attachment = {"Content-Disposition": f'attachment; filename="{_url(name)}{suffix}.{fmt}"'}
        if fmt == "html":
            return HTMLResponse(to_html(name, version.card, meta), headers=security_headers())
        if fmt == "md":
            return Response(to_markdown(name, version.card, meta), media_type="text/markdown",
                            headers={**security_headers(), **attachment})
        if fmt == "json":
            return Response(json.dumps(version.card.to_sagemaker(), indent=2), media_type="application/json",
                            headers={**security_headers(), **attachment})
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "card.pdf"
            to_pdf(to_html(name, version.card, meta), path, footer=f"Model card {name}, version {version.version} ({meta['status']})")
            data = path.read_bytes()
        return Response(data, media_type="application/pdf", headers={**security_headers(), **attachment})

    # -- the audit log ----------------------------------------------------------------------------------------
    def audit_rows(request: Request, *, limit: int, offset: int) -> list[dict[str, Any]]:
        from fmeval.store.audit import query_audit

        params = request.query_params
        return query_audit(database, user=params.get("user", "").strip()[:MAX_USER] or None,
                           card=params.get("card", "").strip()[:MAX_TARGET] or None,
                           model=params.get("model", "").strip()[:MAX_TARGET] or None,
                           since=_time_param(params.get("since"), "since"),
                           until=_time_param(params.get("until"), "until", end=True), limit=limit, offset=offset)

    def audit_page(request: Request, session: Session, form: Any) -> Response:
        number = _page_number(request)
        rows = audit_rows(request, limit=PAGE_SIZE + 1, offset=(number - 1) * PAGE_SIZE)
        return page(session, "audit.html", "Audit log", params=request.query_params, rows=rows[:PAGE_SIZE],
                    query=_query(request, page=1),
                    newer=_query(request, page=number - 1) if number > 1 else None,
                    older=_query(request, page=number + 1) if len(rows) > PAGE_SIZE else None)

    def audit_csv(request: Request, session: Session, form: Any) -> Response:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["time", "user", "action", "target", "model", "detail"])
        offset = 0
        while True:
            rows = audit_rows(request, limit=MAX_PAGE, offset=offset)
            for row in rows:
                writer.writerow([_cell(str(row[key] or "")) for key in ("time", "username", "action", "target", "model")]
                                + [_cell(json.dumps(row["detail"], sort_keys=True))])
            if len(rows) < MAX_PAGE:
                break
            offset += MAX_PAGE
        accounts.audit(session.user.username, "audit.export", "audit.csv", {"filters": dict(request.query_params)})
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                        headers={**security_headers(), "Content-Disposition": 'attachment; filename="audit.csv"'})

    def not_found(request: Request, exc: Exception) -> Response:
        if len(request.url.path) > MAX_TARGET:
            return too_long(request)
        return error(None, "Not found", "Nothing here.", 404)

    async def not_found_endpoint(request: Request, exc: Exception) -> Response:
        return await run_in_threadpool(not_found, request, exc)

    routes = [
        Route("/login", login_endpoint, methods=["GET", "POST"]),
        Route("/logout", guarded("viewer", logout), methods=["POST"]),
        Route("/account", guarded("viewer", account_page)), Route("/account/password", guarded("viewer", change_password),
                                                             methods=["POST"]),
        Route("/users", guarded("admin", users_page)),
        Route("/users/{username}/{action}", guarded("admin", user_action), methods=["POST"]),
        Route("/", guarded("viewer", models_page)), Route("/models/{key:path}", guarded("viewer", model_page)),
        Route("/runs", guarded("viewer", runs_page)), Route("/runs/compare", guarded("viewer", compare_page)),
        Route("/runs/{run_id}/report", guarded("viewer", run_report)),
        Route("/cards", guarded("viewer", cards_page)), Route("/cards", guarded("editor", card_create), methods=["POST"]),
        Route("/new-card", guarded("editor", card_new)), Route("/cards/{name}", guarded("viewer", card_page)),
        Route("/cards/{name}/edit", guarded("editor", card_edit_form)),
        Route("/cards/{name}/edit", guarded("editor", card_edit), methods=["POST"]),
        Route("/cards/{name}/history", guarded("viewer", history_page)), Route("/cards/{name}/diff", guarded("viewer", diff_page)),
        Route("/cards/{name}/export/{fmt}", guarded("viewer", card_export)),
        Route("/cards/{name}/{action}", guarded("viewer", card_action), methods=["POST"]),
        Route("/audit", guarded("admin", audit_page)), Route("/audit.csv", guarded("admin", audit_csv)),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        outbox.start()  # webhooks leave from here, never from a request
        try:
            yield
        finally:
            await run_in_threadpool(outbox.stop)

    app = Starlette(routes=routes, exception_handlers={404: not_found_endpoint}, lifespan=lifespan)
    return ForwardedHeaders(app, forwarded_allow_ips)


# -- pieces of pages ------------------------------------------------------------------------------------------
def _card_ways(request: Any) -> list[tuple[str, str]]:
    name = request.path_params.get("name")
    ways = [(f"/cards/{_url(name)}", f"Model card {name}")] if name else []
    return ways + [("/cards", "Model cards"), ("/", "Models")]


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


def _json(card: Any) -> str:
    """A card's content as the store diffs it."""
    return json.dumps(card.to_sagemaker(), indent=2, sort_keys=True)


def _view(card: Any) -> dict[str, Any]:
    """The exports' view of a card's content (numbers rounded), its charts marked safe: `bar_chart`
    escapes every label."""
    from markupsafe import Markup

    from fmeval.governance.export import card_view

    view = card_view(card)
    for job in view["evaluations"]:
        for group in job["groups"]:
            group["charts"] = [Markup(chart) for chart in group["charts"]]
    return view


def _form_fields(content: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    fields = []
    for section, field, kind in CARD_FIELDS:
        value = (content.get(section) or {}).get(field)
        label = f"{section.replace('_', ' ')}: {field.replace('_', ' ')}"
        fields.append((f"{section}.{field}", label, kind, "" if value is None else str(value)))
    return fields


def _text_field(form: Any, key: str, limit: int) -> str:
    value = form.get(key, "")
    if not isinstance(value, str):
        raise UserError(f"{key}: a text field, not a file")
    if len(value) > limit:
        raise UserError(f"{key}: at most {limit} characters, got {len(value)}")
    return value


def _version_param(value: str | None, *, field: str = "version") -> int | None:
    if value in (None, ""):
        return None
    if not value.isdigit() or len(value) > 9:
        raise UserError(f"{field}: a version number, got {value[:40]!r}")
    return int(value)


def _time_param(value: str | None, field: str, *, end: bool = False) -> str | None:
    """An ISO date or time from a filter, as a UTC ISO time; a date alone as `end`: the next day."""
    if not value or not value.strip():
        return None
    text = value.strip()[:40]
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"{field}: a date (2026-12-01) or time (2026-12-01T09:30), got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    if end and len(text) == 10:
        moment += dt.timedelta(days=1)
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="seconds")


def _cell(text: str) -> str:
    """A CSV cell a spreadsheet shows as text, never runs as a formula."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _safe_next(target: str | None) -> str:
    """Only a path on this site (never //other.host or a scheme)."""
    ok = target and target.startswith("/") and not target.startswith("//") and "\\" not in target
    return target if ok and len(target) <= MAX_TARGET else "/"


def _url(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def _trend(score: dict[str, Any]) -> str:
    value, previous = score["value"], score["previous"]
    return "" if previous is None or value is None else " ▲" if value > previous else " ▼" if value < previous else " ="


def _page_number(request: Any) -> int:
    try:
        return min(max(1, int(request.query_params.get("page", "1"))), 1_000_000)  # an offset the database takes
    except ValueError:
        return 1


def _query(request: Any, **changes: Any) -> str:
    params = dict(request.query_params)
    params.update({k: str(v) for k, v in changes.items()})
    return urllib.parse.urlencode(params)


def _pager(request: Any, number: int, total: int) -> dict[str, Any]:
    import math

    pages = max(1, math.ceil(total / PAGE_SIZE))
    return {"number": number, "pages": pages, "previous": _query(request, page=number - 1) if number > 1 else None,
            "next": _query(request, page=number + 1) if number < pages else None}


def _lineage(entry: Any) -> dict[str, Any]:
    """The model in the middle, its datasets and runs on the left, its cards and monitors on the right."""
    datasets = sorted({f"{r.dataset}" + (f" ({r.dataset_sha256[:12]})" if r.dataset_sha256 else "") for r in entry.runs})
    left = [("dataset", d) for d in datasets[:8]] + [("run", f"{r.run_id} {r.evaluation}") for r in entry.runs[:8]]
    right = [("card", f"{c.name} ({c.label})") for c in entry.cards] + [("monitor", f"{m.name} ({m.kind})")
                                                                         for m in entry.monitors]
    height = max(len(left), len(right), 1) * 28 + 20
    boxes = [{"kind": kind, "text": text, "y": 20 + i * 28, "x": 10 if side == 0 else 600,
              "x1": 290 if side == 0 else 600, "x2": 360 if side == 0 else 540}
             for side, items in ((0, left), (1, right)) for i, (kind, text) in enumerate(items)]
    return {"height": height, "middle": height / 2, "boxes": boxes}


def _card_from_form(form: Any, base: dict[str, Any]) -> dict[str, Any]:
    """The card's content: `base` with the form's fields (an emptied field is removed)."""
    content = json.loads(json.dumps(base))
    for section, field, _ in CARD_FIELDS:
        value = _text_field(form, f"{section}.{field}", TEXT_LIMIT).strip()
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
          keyfile: str | None = None, allow_insecure_remote: bool = False,
          forwarded_allow_ips: str | None = None) -> None:
    """Serve until interrupted. Binding beyond loopback without TLS is refused unless allowed; the
    port is bound before anything is served, so a port in use is a clear error."""
    import uvicorn

    from fmeval.web import bound_socket, check_bind, serve_options

    check_bind(host, tls=bool(certfile), allow_insecure_remote=allow_insecure_remote)
    for path in (certfile, keyfile):
        if path is not None:
            try:
                with open(path, "rb"):
                    pass
            except OSError as exc:
                raise UserError(f"cannot read the TLS file {path}: {exc.strerror or exc}") from None
    sock = bound_socket(host, port)
    database = Database(database_url)
    app = build_app(database, forwarded_allow_ips=forwarded_allow_ips)
    config = uvicorn.Config(app, ssl_certfile=certfile, ssl_keyfile=keyfile, **serve_options())
    try:
        config.load()  # TLS files that do not hold a certificate and its key fail here, before serving
    except OSError as exc:  # ssl.SSLError: not a certificate, not its key
        sock.close()
        raise UserError(f"cannot use --tls-cert {certfile} and --tls-key {keyfile}: {exc}") from None
    print(f"dashboard on {'https' if certfile else 'http'}://{host}:{port}/ (store {database})", flush=True)
    uvicorn.Server(config).run(sockets=[sock])
