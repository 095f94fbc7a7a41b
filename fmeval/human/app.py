"""The raters' web app (`fmeval human serve`): server-rendered pages, no build step.

A rater opens their invite link (`/r/TOKEN`): the token goes into an HttpOnly, SameSite=Strict
cookie, and every page afterwards shows only that rater's own items (another item's address
answers 404). Each page shows the instructions' title, the progress, the prompt and the outputs
(escaped: model outputs are data, never markup) in the rater's own order, with keyboard
shortcuts: 1-9 answer the next open question, u/d give a thumb up/down, Enter saves, s skips.
Every answer is committed before the next page is sent; skipped items come back at the end.
Forms carry a per-rater CSRF token (an HMAC of the rater's id) and requests from another origin
are refused. The server binds to 127.0.0.1 unless told otherwise, and another address needs TLS
(or `allow_insecure_remote` behind a TLS proxy).
"""
from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from fmeval.errors import UserError
from fmeval.html import STYLE, esc
from fmeval.human.job import COMMENT_LIMIT, Job

COOKIE = "fmeval_rater"
CSP = ("default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'")
SHORTCUTS_JS = """
document.addEventListener("keydown", function (event) {
  if (event.target.tagName === "TEXTAREA" || event.target.tagName === "SELECT") { return; }
  var form = document.getElementById("rating");
  if (!form) { return; }
  var open = Array.prototype.filter.call(form.querySelectorAll("fieldset[data-question]"), function (set) {
    return !set.querySelector("input:checked");
  });
  if (event.key >= "1" && event.key <= "9" && open.length) {
    var choice = open[0].querySelector('input[value="' + event.key + '"]');
    if (choice) { choice.checked = true; event.preventDefault(); }
  } else if ((event.key === "u" || event.key === "d") && open.length) {
    var thumb = open[0].querySelector('input[value="' + (event.key === "u" ? "1" : "0") + '"]');
    if (thumb) { thumb.checked = true; event.preventDefault(); }
  } else if (event.key === "s") {
    document.getElementById("skip").submit(); event.preventDefault();
  } else if (event.key === "Enter") {
    form.requestSubmit(); event.preventDefault();
  }
});
"""


def csrf_token(job: Job, rater: str) -> str:
    return hmac.new(job.meta["csrf_secret"].encode(), rater.encode(), hashlib.sha256).hexdigest()


def build_app(directory: str | Path, *, secure_cookies: bool = False) -> Any:
    """The Starlette application over the job in `directory`; `secure_cookies` when served over HTTPS."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, RedirectResponse, Response
    from starlette.routing import Route

    job = Job(directory)

    def page(title: str, body: str, status: int = 200) -> HTMLResponse:
        html = (f'<!doctype html><html><head><meta charset="utf-8"><title>{esc(title)}</title>'
                f'<style>{STYLE}.output{{border:1px solid #ddd;padding:.6rem;margin:.6rem 0;white-space:pre-wrap}}'
                f"fieldset{{border:0;padding:.2rem 0}}.side-by-side{{display:grid;grid-template-columns:repeat(auto-fit,minmax(16rem,1fr));"
                f"gap:1rem}}</style></head><body>{body}"
                f'<script src="/shortcuts.js"></script></body></html>')
        return HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": CSP,
                                                               "X-Content-Type-Options": "nosniff",
                                                               "Referrer-Policy": "same-origin"})

    def rater_of(request: Request) -> str | None:
        token = request.cookies.get(COOKIE)
        return job.rater_of(token) if token else None

    def not_found() -> HTMLResponse:
        return page("Not found", "<h1>Not found</h1><p>This item is not one of yours.</p>", 404)

    async def invite(request: Request) -> Response:
        token = request.path_params["token"]
        if job.rater_of(token) is None:
            return page("Unknown invite", "<h1>This invite link is not valid.</h1>", 403)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=secure_cookies, path="/")
        return response

    async def home(request: Request) -> Response:
        rater = rater_of(request)
        if rater is None:
            return page("Sign in", "<h1>Open your invite link to start.</h1>", 401)
        progress = job.progress(rater)
        following = job.next_item(rater)
        start = (f'<p><a href="/item/{following}">Start rating</a></p>' if following is not None
                 else "<p>You have rated every item assigned to you. Thank you!</p>")
        return page(job.meta["title"], f"<h1>{esc(job.meta['title'])}</h1><p>Signed in as {esc(rater)}: "
                    f"{progress['done']} of {progress['total']} done.</p><div class=\"text\">"
                    f"{esc(job.meta['instructions'])}</div>{start}")

    async def show(request: Request) -> Response:
        rater = rater_of(request)
        item = job.assignment(rater, int(request.path_params["item_id"])) if rater else None
        if item is None:
            return not_found()
        job.opened(rater, item["item_id"])
        return page(job.meta["title"], _item_page(job, rater, item))

    async def answer(request: Request) -> Response:
        rater = rater_of(request)
        item_id = int(request.path_params["item_id"])
        item = job.assignment(rater, item_id) if rater else None
        if item is None:
            return not_found()
        form = await request.form()
        if not _same_origin(request) or not hmac.compare_digest(str(form.get("csrf", "")), csrf_token(job, rater)):
            return page("Refused", "<h1>Refused: the form did not come from this page.</h1>", 403)
        if request.url.path.endswith("/skip"):
            job.skip(rater, item_id)
        else:
            given, missing = _rating_of(job, form, item["order"])
            try:
                if missing:
                    raise UserError(f"answer every question: {', '.join(missing)} is missing")
                job.save_rating(rater, item_id, given)
            except UserError as exc:  # the page comes back with every answer given so far
                return page(job.meta["title"], f'<p class="fail">{esc(exc)}</p>'
                            + _item_page(job, rater, {**item, "rating": given}), 400)
        following = job.next_item(rater, after=item_id)
        return RedirectResponse(f"/item/{following}" if following is not None else "/", status_code=303)

    async def shortcuts(request: Request) -> Response:
        return Response(SHORTCUTS_JS, media_type="text/javascript", headers={"X-Content-Type-Options": "nosniff"})

    routes = [Route("/", home), Route("/r/{token}", invite), Route("/item/{item_id:int}", show),
              Route("/item/{item_id:int}", answer, methods=["POST"]),
              Route("/item/{item_id:int}/skip", answer, methods=["POST"]), Route("/shortcuts.js", shortcuts)]
    app = Starlette(routes=routes)
    app.state.job = job
    return app


def _same_origin(request: Any) -> bool:
    """Requests that name another origin (Origin, else Referer) are refused."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return origin is None
    from urllib.parse import urlsplit

    return urlsplit(origin).netloc == request.headers.get("host")


def _item_page(job: Job, rater: str, item: dict[str, Any]) -> str:
    progress = job.progress(rater)
    outputs = [item["outputs"][index] for index in item["order"]]  # the rater's order
    parts = [f"<p>Item {item['position'] + 1} of {progress['total']} ({progress['done']} done"
             f"{', skipped before' if item['status'] == 'skipped' else ''})</p>",
             f"<h2>Prompt</h2><div class=\"output prompt\">{esc(item.get('model_input') or item.get('prompt'))}</div>"]
    target = item.get("target_output")
    if job.meta.get("show_reference") and target is not None:
        accepted = target if isinstance(target, list) else [target]  # each accepted answer on its own line
        parts.append(f'<h2>Reference answer</h2><div class="output reference">{esc(chr(10).join(map(str, accepted)))}'
                     "</div>")
    if item.get("rated_at"):
        parts.append(f'<p class="revision">You rated this item at {esc(item["rated_at"])}. Saving again replaces '
                     "that rating; the earlier one is kept in the job's history.</p>")
    parts += ['<form id="rating" method="post">', f'<input type="hidden" name="csrf" value="{csrf_token(job, rater)}">']
    # ranking compares the outputs: they stand side by side, as in SageMaker's ranking template
    side_by_side = len(outputs) > 1 and any(kind.name == "ranking" for kind in job.kinds)
    parts.append(f'<div class="outputs{" side-by-side" if side_by_side else ""}">')
    previous = item.get("rating") or {}
    for shown, text in enumerate(outputs):
        job_index = item["order"][shown]
        parts.append(f'<section class="answer"><h3>Output {shown + 1}</h3><div class="output">{esc(text)}</div>')
        for kind in job.kinds:
            before = previous.get(kind.key)
            given = before[job_index] if isinstance(before, list) else None
            if kind.name == "thumbs":
                parts.append(_choices(f"thumbs_{shown}", [("1", "👍 good"), ("0", "👎 bad")], given))
            elif kind.name == "likert":
                parts.append(_choices(f"likert_{shown}", [(str(v), str(v)) for v in range(1, kind.scale + 1)], given,
                                      legend=f"1 (worst) to {kind.scale} (best)"))
            elif kind.name == "ranking":
                parts.append(_choices(f"rank_{shown}", [(str(v), f"#{v}") for v in range(1, len(outputs) + 1)], given,
                                      legend="rank (1 is best; equal ranks for a tie)"))
        parts.append("</section>")
    parts.append("</div>")
    if any(kind.name == "free-text" for kind in job.kinds):
        parts.append(f'<p><label>Comment (up to {COMMENT_LIMIT:,} characters)<br>'
                     f'<textarea name="comment" rows="3" cols="60">{esc(previous.get("free-text", ""))}</textarea>'
                     "</label></p>")
    parts.append('<p><button type="submit">Save (Enter)</button></p></form>'
                 f'<form id="skip" method="post" action="/item/{item["item_id"]}/skip">'
                 f'<input type="hidden" name="csrf" value="{csrf_token(job, rater)}">'
                 '<button type="submit">Skip for now (s)</button></form>')
    return "".join(parts)


def _choices(name: str, options: list[tuple[str, str]], given: Any, legend: str = "") -> str:
    inputs = "".join(f'<label><input type="radio" name="{name}" value="{value}"'
                     f'{" checked" if given is not None and str(given) == value else ""}> {esc(label)}</label> '
                     for value, label in options)
    return f'<fieldset data-question="{name}"><legend>{esc(legend)}</legend>{inputs}</fieldset>'


def _rating_of(job: Job, form: Any, order: list[int]) -> tuple[dict[str, Any], list[str]]:
    """The form's answers, put back into the job's order of outputs (None where one is missing),
    and the questions left open, named as the rater sees them."""
    value: dict[str, Any] = {}
    missing: list[str] = []
    field = {"thumbs": "thumbs", "likert": "likert", "ranking": "rank"}
    for kind in job.kinds:
        if kind.name == "free-text":
            value[kind.key] = str(form.get("comment", ""))
            continue
        answers: list[Any] = [None] * len(order)
        for shown, job_index in enumerate(order):
            answers[job_index] = form.get(f"{field[kind.name]}_{shown}") or None
            if answers[job_index] is None:
                missing.append(f"{kind.key} for output {shown + 1}")
        value[kind.key] = answers
    return value, missing


def serve(directory: str | Path, *, host: str = "127.0.0.1", port: int = 8765, certfile: str | None = None,
          keyfile: str | None = None, allow_insecure_remote: bool = False) -> None:
    """Serve until interrupted. Binding beyond loopback without TLS is refused unless allowed,
    as for the dashboard: invite tokens are credentials."""
    import uvicorn

    from fmeval.model_runners.http import is_loopback

    if bool(certfile) != bool(keyfile):
        raise UserError("--tls-cert and --tls-key go together")
    loopback = is_loopback(f"http://[{host}]/" if ":" in host else f"http://{host}/")
    if not loopback and not certfile and not allow_insecure_remote:
        raise UserError(f"--host {host} would send the raters' invite tokens in clear text beyond this machine: give "
                        f"--tls-cert and --tls-key, or --allow-insecure-remote behind a TLS proxy")
    app = build_app(directory, secure_cookies=bool(certfile))
    print(json.dumps({"serving": f"{'https' if certfile else 'http'}://{host}:{port}/", "job": str(directory)}),
          flush=True)
    uvicorn.run(app, host=host, port=port, ssl_certfile=certfile, ssl_keyfile=keyfile, log_level="warning")
