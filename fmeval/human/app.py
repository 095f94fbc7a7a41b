"""The raters' web app (`fmeval human serve`): server-rendered pages (Jinja2 templates in
`templates/`, autoescaped, on `fmeval.web`'s shell, CSP, same-origin and CSRF checks), no build step.

A rater opens their invite link (`/r/TOKEN`): the token goes into an HttpOnly, SameSite=Strict
cookie, and every page afterwards shows only that rater's own items (another item's address
answers 404). Each page shows the instructions' title, the progress, the prompt and the outputs
(escaped: model outputs are data, never markup) in the rater's own order, with keyboard
shortcuts: 1-9 answer the next open question, u/d give a thumb up/down, Enter saves, s skips.
Every answer is committed before the next page is sent; skipped items come back at the end.
Forms carry a per-rater CSRF token (an HMAC of the rater's id) and requests from another origin
are refused; the cookie is Secure when served over HTTPS. The server binds to 127.0.0.1; another
address needs TLS (or `allow_insecure_remote` behind a TLS proxy).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fmeval.errors import UserError
from fmeval.human.job import COMMENT_LIMIT, Job

COOKIE = "fmeval_rater"
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
    from fmeval.web import signed_csrf_token

    return signed_csrf_token(job.meta["csrf_secret"], rater)


def build_app(directory: str | Path, *, forwarded_allow_ips: str | None = None) -> Any:
    """The Starlette application over the job in `directory`, behind `fmeval.web.ForwardedHeaders`
    (`forwarded_allow_ips`: the proxies trusted to say the request came over HTTPS)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import RedirectResponse, Response
    from starlette.routing import Route

    from fmeval.web import ForwardedHeaders, cookie_options, post_refusal, render, security_headers, templates

    job = Job(directory)
    environment = templates("fmeval.human")
    headers = security_headers(scripts_from_self=True)  # the shortcuts script is the app's own file

    def page(template: str, status: int = 200, **context: Any) -> Response:
        return render(environment, template, status=status, headers=headers, **context)

    def message(heading: str, status: int, detail: str = "") -> Response:
        return page("message.html", status, title=heading, heading=heading, detail=detail)

    def item_page(rater: str, item: dict[str, Any], status: int = 200, error: str | None = None) -> Response:
        return page("item.html", status, title=job.meta["title"], error=error, **_item_context(job, rater, item))

    def rater_of(request: Request) -> str | None:
        token = request.cookies.get(COOKIE)
        return job.rater_of(token) if token else None

    def not_found() -> Response:
        return message("Not found", 404, "This item is not one of yours.")

    async def invite(request: Request) -> Response:
        token = request.path_params["token"]
        if job.rater_of(token) is None:
            return message("This invite link is not valid.", 403)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, token, **cookie_options(request))
        return response

    async def home(request: Request) -> Response:
        rater = rater_of(request)
        if rater is None:
            return message("Open your invite link to start.", 401)
        return page("home.html", title=job.meta["title"], rater=rater, progress=job.progress(rater),
                    instructions=job.meta["instructions"], following=job.next_item(rater))

    async def show(request: Request) -> Response:
        rater = rater_of(request)
        item = job.assignment(rater, int(request.path_params["item_id"])) if rater else None
        if item is None:
            return not_found()
        job.opened(rater, item["item_id"])
        return item_page(rater, item)

    async def answer(request: Request) -> Response:
        rater = rater_of(request)
        item_id = int(request.path_params["item_id"])
        item = job.assignment(rater, item_id) if rater else None
        if item is None:
            return not_found()
        form = await request.form()
        refusal = post_refusal(request, form.get("csrf"), csrf_token(job, rater))
        if refusal:
            return message("Refused", 403, refusal)
        if request.url.path.endswith("/skip"):
            job.skip(rater, item_id)
        else:
            given, missing = _rating_of(job, form, item["order"])
            try:
                if missing:
                    raise UserError(f"answer every question: {', '.join(missing)} is missing")
                job.save_rating(rater, item_id, given)
            except UserError as exc:  # the page comes back with every answer given so far
                return item_page(rater, {**item, "rating": given}, 400, str(exc))
        following = job.next_item(rater, after=item_id)
        return RedirectResponse(f"/item/{following}" if following is not None else "/", status_code=303)

    async def shortcuts(request: Request) -> Response:
        return Response(SHORTCUTS_JS, media_type="text/javascript", headers={"X-Content-Type-Options": "nosniff"})

    routes = [Route("/", home), Route("/r/{token}", invite), Route("/item/{item_id:int}", show),
              Route("/item/{item_id:int}", answer, methods=["POST"]),
              Route("/item/{item_id:int}/skip", answer, methods=["POST"]), Route("/shortcuts.js", shortcuts)]
    app = Starlette(routes=routes)
    app.state.job = job
    return ForwardedHeaders(app, forwarded_allow_ips)


def _item_context(job: Job, rater: str, item: dict[str, Any]) -> dict[str, Any]:
    """What the item page shows: the outputs in the rater's order, each with its questions and
    the answers already given (saved, or sent with a refused save)."""
    previous = item.get("rating") or {}
    shown_outputs = len(item["order"])
    outputs = []
    for shown, job_index in enumerate(item["order"]):
        questions = []
        for kind in job.kinds:
            before = previous.get(kind.key)
            given = before[job_index] if isinstance(before, list) else None
            if kind.name == "thumbs":
                questions.append({"name": f"thumbs_{shown}", "legend": "", "given": given,
                                  "options": [("1", "👍 good"), ("0", "👎 bad")]})
            elif kind.name == "likert":
                questions.append({"name": f"likert_{shown}", "legend": f"1 (worst) to {kind.scale} (best)",
                                  "given": given, "options": [(str(v), str(v)) for v in range(1, kind.scale + 1)]})
            elif kind.name == "ranking":
                questions.append({"name": f"rank_{shown}", "legend": "rank (1 is best; equal ranks for a tie)",
                                  "given": given, "options": [(str(v), f"#{v}") for v in range(1, shown_outputs + 1)]})
        outputs.append({"text": item["outputs"][job_index], "questions": questions})
    target = item.get("target_output")
    accepted = target if isinstance(target, list) else [target]  # each accepted answer on its own line
    return {
        "item": item, "progress": job.progress(rater), "csrf": csrf_token(job, rater), "outputs": outputs,
        "prompt": item.get("model_input") or item.get("prompt"),
        "reference": "\n".join(map(str, accepted)) if job.meta.get("show_reference") and target is not None else None,
        # ranking compares the outputs: they stand side by side, as in SageMaker's ranking template
        "side_by_side": shown_outputs > 1 and any(kind.name == "ranking" for kind in job.kinds),
        "comment": previous.get("free-text", "") if any(kind.name == "free-text" for kind in job.kinds) else None,
        "comment_limit": COMMENT_LIMIT}


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
          keyfile: str | None = None, allow_insecure_remote: bool = False,
          forwarded_allow_ips: str | None = None) -> None:
    """Serve until interrupted, under the dashboard's rules (`fmeval.web.check_bind`): binding
    beyond loopback without TLS is refused unless allowed, since invite tokens are credentials."""
    import uvicorn

    from fmeval.web import bound_socket, check_bind, serve_options

    if bool(certfile) != bool(keyfile):
        raise UserError("--tls-cert and --tls-key go together")
    check_bind(host, tls=bool(certfile), allow_insecure_remote=allow_insecure_remote)
    for path in (certfile, keyfile):
        if path is not None and not os.access(path, os.R_OK):
            raise UserError(f"cannot read the TLS file {path}")
    sock = bound_socket(host, port)
    app = build_app(directory, forwarded_allow_ips=forwarded_allow_ips)
    print(json.dumps({"serving": f"{'https' if certfile else 'http'}://{host}:{port}/", "job": str(directory)}),
          flush=True)
    uvicorn.Server(uvicorn.Config(app, ssl_certfile=certfile, ssl_keyfile=keyfile, **serve_options())).run(sockets=[sock])
