"""A model card as SageMaker's JSON, Markdown, self-contained HTML (charts inline), or PDF (the HTML
printed by headless Chromium through Playwright, with page numbers).

The HTML and the Markdown are Jinja2 templates in which every value from the card is escaped: HTML
autoescapes, and the Markdown escapes HTML and Markdown's own markup (a card's text stays text in any
renderer). Both show which version they are and why (the approved version unless another is asked for),
its author, dates and approver, the approval trail, and every number to PRECISION decimal places.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path
from typing import Any

from fmeval.errors import UserError
from fmeval.governance.cards import ModelCard
from fmeval.html import CSP, STYLE, bar_chart

FORMATS = ("json", "md", "html", "pdf")
PRECISION = 4
"""Decimal places of every number in the Markdown, HTML and PDF exports (the JSON keeps full precision)."""
SECTION_TITLES = {"model_overview": "Model overview", "intended_uses": "Intended uses",
                  "business_details": "Business details", "training_details": "Training details",
                  "additional_information": "Additional information",
                  "model_package_details": "Model package details"}
ACTIONS = {"card.created": "created", "card.version": "new version", "card.pendingreview": "submitted for review",
           "card.approved": "approved", "card.draft": "rejected to Draft", "card.archived": "archived",
           "card.deleted": "deleted"}


def number(value: Any) -> str:
    """A value as the exports show it: floats to PRECISION decimal places, true/false, text as it is."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.{PRECISION}f}"
    return str(value)


def _label(key: str) -> str:
    return key.replace("_", " ").capitalize()


def _table(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A list of objects (training metrics, hyperparameters, containers) as a table: a column per key."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return {"columns": [_label(c) for c in columns],
            "rows": [[_shown(row.get(c, "")) for c in columns] for row in rows]}


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(map(_shown, value))
    if isinstance(value, dict):
        return "; ".join(f"{key}: {_shown(item)}" for key, item in value.items())
    return number(value)


def _section(content: dict[str, Any], prefix: str = "") -> tuple[list[tuple[str, str]], list[tuple[str, dict]]]:
    """A section's (field, text) rows, and (field, table) for each list of objects in it."""
    fields: list[tuple[str, str]] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    for key, value in content.items():
        label = f"{prefix}{_label(key)}"
        if key == "custom_details":  # the user's own keys, as written
            fields += [(f"{label}: {custom}", _shown(item)) for custom, item in value.items()]
        elif isinstance(value, dict):
            inner_fields, inner_tables = _section(value, f"{label}: ")
            fields += inner_fields
            tables += inner_tables
        elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            tables.append((label, _table(value)))
        elif isinstance(value, float) and value.is_integer():  # a model version of 2, not 2.0000
            fields.append((label, str(int(value))))
        else:
            fields.append((label, _shown(value)))
    return fields, tables


def _metric_table(metric: dict[str, Any]) -> dict[str, Any] | None:
    """A matrix, linear graph or bar chart's values as a table (None for a single value)."""
    value, kind = metric["value"], metric["type"]
    x_axis, y_axis = metric.get("x_axis_name"), metric.get("y_axis_name")
    if kind == "matrix":
        width = max(len(row) for row in value)
        columns = list(x_axis) if isinstance(x_axis, list) and len(x_axis) == width else [str(i) for i in range(width)]
        rows = list(y_axis) if isinstance(y_axis, list) and len(y_axis) == len(value) else [str(i) for i in range(len(value))]
        return {"columns": ["", *columns], "rows": [[label, *map(number, row)] for label, row in zip(rows, value)]}
    if kind == "linear_graph":
        return {"columns": [x_axis or "x", y_axis or "y"], "rows": [[number(x), number(y)] for x, y in value]}
    if kind == "bar_chart":
        labels = list(x_axis) if isinstance(x_axis, list) and len(x_axis) == len(value) else [str(i) for i in range(len(value))]
        return {"columns": ["", y_axis or "value"], "rows": [[label, number(v)] for label, v in zip(labels, value)]}
    return None


def card_view(card: ModelCard) -> dict[str, Any]:
    """What every export shows of a card's content: sections, their tables, and each evaluation's metric
    groups with their charts (a chart of the group's numbers and one per bar chart metric)."""
    content = card.to_sagemaker()
    sections = []
    for key, title in SECTION_TITLES.items():
        if content.get(key):
            fields, tables = _section(content[key])
            sections.append({"title": title, "fields": fields, "tables": tables})
    evaluations = []
    for job in content.get("evaluation_details", []):
        groups = []
        for group in job.get("metric_groups", []):
            metrics = [{"name": m["name"], "type": m["type"], "notes": m.get("notes", ""), "table": _metric_table(m),
                        "raw": m["value"]} for m in group["metric_data"]]
            numbers = [(m["name"], float(m["raw"]), None, None, "#0969da") for m in metrics if m["type"] == "number"]
            charts = [bar_chart(group["name"], numbers)] if numbers else []
            charts += [bar_chart(m["name"], [(row[0], float(v), None, None, "#0969da")
                                             for row, v in zip(m["table"]["rows"], m["raw"])])
                       for m in metrics if m["type"] == "bar_chart"]
            groups.append({"name": group["name"], "charts": charts,
                           "metrics": [{**m, "value": "" if m["table"] else number(m["raw"])} for m in metrics]})
        evaluations.append({"name": job["name"], "observation": job.get("evaluation_observation"),
                            "datasets": job.get("datasets") or [], "arn": job.get("evaluation_job_arn"),
                            "metadata": job.get("metadata") or {}, "groups": groups})
    return {"sections": sections, "evaluations": evaluations}


def card_meta(store: Any, name: str, version: int | None = None) -> tuple[Any, dict[str, Any]]:
    """The version an export shows and what it says about it: the approved version unless `version`
    is given (the latest where none is approved), its author, dates and content hash, the approver,
    and the trail of events with the reviewers' comments (`CardStore.get`, `.version` and `.events`)."""
    stored = store.get(name)
    chosen = version if version is not None else (stored.approved_version or stored.version)
    shown = store.version(name, chosen)
    approved = shown.version == stored.approved_version
    status = stored.status if shown.version == stored.version else ("Approved" if approved else "superseded")
    if version is not None:
        basis = f"version {shown.version}, as asked for (--version {version})"
    elif approved:
        basis = f"version {shown.version}, the approved version (the default)"
    else:
        basis = f"version {shown.version}, the latest: no version of this card is approved"
    if stored.version != shown.version:
        basis += f"; the card's latest version is {stored.version} ({stored.status})"
    if not approved and stored.approved_version:
        basis += f"; the approved version is {stored.approved_version}"
    trail = [{"time": e["time"], "action": ACTIONS.get(e["kind"], e["kind"]), "version": e["version"],
              "actor": e["actor"], "note": e["payload"].get("comment") or e["payload"].get("note") or ""}
             for e in store.events(name)]
    meta = {"status": status, "version": shown.version, "latest_version": stored.version, "basis": basis,
            "author": shown.author, "created_at": shown.created_at, "content_hash": shown.content_hash,
            "approved_by": stored.approved_by if approved else None,
            "approved_at": stored.approved_at if approved else None,
            "approved_version": stored.approved_version, "trail": trail}
    return shown, meta


def _environment(kind: str) -> Any:
    from jinja2 import Environment, StrictUndefined

    if kind == "html":
        return Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    # Markdown: every interpolated value escaped (the template's own markup is not interpolated)
    return Environment(autoescape=False, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                       finalize=markdown_text)


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]{}|#!~])")


def markdown_text(value: Any) -> str:
    """Text from a card, inert in Markdown: Markdown's markup characters backslash-escaped, then HTML's
    <, > and & escaped as the HTML export escapes them, and line breaks kept inside a table cell."""
    import html

    # markup characters first, then <, > and & (no tag can form, so quotes need no escaping)
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", "" if value is None else str(value))
    return html.escape(text, quote=False).replace("\r\n", "\n").replace("\n", "<br>")


HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{ csp }}">
<title>Model card: {{ name }}</title><style>{{ style | safe }}
.basis{background:#fff8c5;border:1px solid #d4a72c;padding:.4rem .6rem}table.meta th{white-space:nowrap}table.meta td{overflow-wrap:anywhere}
@media print{h2,h3{break-after:avoid}table,svg{break-inside:avoid}}</style></head><body>
<h1>Model card: {{ name }}</h1>
<p>Status <strong>{{ meta.status }}</strong>, version {{ meta.version }}{% if meta.get("approved_by") %}, approved by {{ meta.approved_by }} (version {{ meta.approved_version }}){% endif %}.</p>
<p class="basis">This export shows <strong>{{ meta.get("basis") or ("version " ~ meta.version) }}</strong>.</p>
<table class="meta">
{% for label, value in facts %}<tr><th>{{ label }}</th><td>{{ value if value is not none else "—" }}</td></tr>
{% endfor %}</table>
{% if meta.get("trail") %}
<h2>Approval trail</h2>
<table class="trail"><tr><th>time</th><th>action</th><th>version</th><th>by</th><th>comment</th></tr>
{% for e in meta.trail %}<tr><td>{{ e.time }}</td><td>{{ e.action }}</td><td class="num">{{ e.version }}</td><td>{{ e.actor }}</td><td>{{ e.note }}</td></tr>
{% endfor %}</table>
{% endif %}
{% for section in view.sections %}
<h2>{{ section.title }}</h2>
{% if section.fields %}<table>
{% for label, value in section.fields %}<tr><th>{{ label }}</th><td class="text">{{ value }}</td></tr>
{% endfor %}</table>{% endif %}
{% for label, table in section.tables %}
<h3>{{ label }}</h3>
<table><tr>{% for c in table.columns %}<th>{{ c }}</th>{% endfor %}</tr>
{% for row in table.rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</table>
{% endfor %}
{% endfor %}
{% for job in view.evaluations %}
<h2>Evaluation: {{ job.name }}</h2>
{% if job.observation %}<p>{{ job.observation }}</p>{% endif %}
{% if job.datasets %}<p>Datasets: {{ job.datasets | join(", ") }}</p>{% endif %}
{% if job.arn %}<p>Evaluation job: {{ job.arn }}</p>{% endif %}
{% if job.metadata %}<table>{% for key, value in job.metadata.items() %}<tr><th>{{ key }}</th><td class="text">{{ value }}</td></tr>{% endfor %}</table>{% endif %}
{% for group in job.groups %}
<h3>{{ group.name }}</h3>
<table><tr><th>metric</th><th>type</th><th>value</th><th>notes</th></tr>
{% for m in group.metrics %}<tr><td>{{ m.name }}</td><td>{{ m.type }}</td><td class="num">
{% if m.table %}<table><tr>{% for c in m.table.columns %}<th>{{ c }}</th>{% endfor %}</tr>
{% for row in m.table.rows %}<tr>{% for cell in row %}<td class="num">{{ cell }}</td>{% endfor %}</tr>{% endfor %}</table>
{% else %}{{ m.value }}{% endif %}</td><td>{{ m.notes }}</td></tr>
{% endfor %}</table>
{% if group.charts %}<div class="charts">{% for chart in group.charts %}{{ chart | safe }}{% endfor %}</div>{% endif %}
{% endfor %}
{% endfor %}
</body></html>
"""

MARKDOWN_TEMPLATE = """# Model card: {{ name }}

Status **{{ meta.status }}**, version {{ meta.version }}{% if meta.get("approved_by") %}, approved by {{ meta.approved_by }} (version {{ meta.approved_version }}){% endif %}.

This export shows **{{ meta.get("basis") or ("version " ~ meta.version) }}**.

| | |
|---|---|
{% for label, value in facts %}
| {{ label }} | {{ value if value is not none else "—" }} |
{% endfor %}
{% if meta.get("trail") %}

## Approval trail

| time | action | version | by | comment |
|---|---|---|---|---|
{% for e in meta.trail %}
| {{ e.time }} | {{ e.action }} | {{ e.version }} | {{ e.actor }} | {{ e.note }} |
{% endfor %}
{% endif %}
{% for section in view.sections %}

## {{ section.title }}

{% for label, value in section.fields %}
- **{{ label }}**: {{ value }}
{% endfor %}
{% for label, table in section.tables %}

### {{ label }}

|{% for c in table.columns %} {{ c }} |{% endfor %}

|{% for c in table.columns %}---|{% endfor %}

{% for row in table.rows %}
|{% for cell in row %} {{ cell }} |{% endfor %}

{% endfor %}
{% endfor %}
{% endfor %}
{% for job in view.evaluations %}

## Evaluation: {{ job.name }}

{% if job.observation %}
{{ job.observation }}

{% endif %}
{% if job.datasets %}
Datasets: {{ job.datasets | join(", ") }}

{% endif %}
{% for group in job.groups %}
### {{ group.name }}

| metric | type | value | notes |
|---|---|---|---|
{% for m in group.metrics %}
| {{ m.name }} | {{ m.type }} | {{ m.value if not m.table else "table below" }} | {{ m.notes }} |
{% endfor %}
{% for m in group.metrics if m.table %}

#### {{ m.name }} ({{ m.type }})

|{% for c in m.table.columns %} {{ c }} |{% endfor %}

|{% for c in m.table.columns %}---|{% endfor %}

{% for row in m.table.rows %}
|{% for cell in row %} {{ cell }} |{% endfor %}

{% endfor %}
{% endfor %}

{% endfor %}
{% endfor %}
"""


def _render(kind: str, name: str, card: ModelCard, meta: dict[str, Any]) -> str:
    exported_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    facts = [("Version", f"{meta['version']} of {meta.get('latest_version', meta['version'])}"),
             ("Status", meta["status"]), ("Author", meta.get("author")), ("Saved", meta.get("created_at")),
             ("Content sha256", meta.get("content_hash")),
             ("Approval by", meta.get("approved_by")), ("Approval at", meta.get("approved_at")),
             ("Exported at", exported_at),
             ("Numbers", f"rounded to {PRECISION} decimal places in tables, 3 on charts (the JSON export keeps full "
                         "precision)")]
    template = _environment(kind).from_string(HTML_TEMPLATE if kind == "html" else MARKDOWN_TEMPLATE)
    return template.render(name=name, meta=meta, facts=facts, view=card_view(card), csp=CSP, style=STYLE)


def to_markdown(name: str, card: ModelCard, meta: dict[str, Any]) -> str:
    return _render("md", name, card, meta)


def to_html(name: str, card: ModelCard, meta: dict[str, Any]) -> str:
    return _render("html", name, card, meta)


def to_pdf(html: str, path: Path, *, footer: str = "") -> None:
    """Print the HTML with headless Chromium (the system's, through Playwright); each page's footer
    says `footer` and "page N of M"."""
    from markupsafe import escape

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        chromium = None
    if chromium is None:
        raise UserError("PDF export prints through headless Chromium: install it (Debian: apt install chromium) and "
                        "Playwright (pip install playwright); HTML and Markdown exports need neither")
    footer_html = (f'<div style="font-size:8px;width:100%;padding:0 12mm;display:flex;justify-content:space-between">'
                   f'<span>{escape(footer)}</span><span>page <span class="pageNumber"></span> of '
                   f'<span class="totalPages"></span></span></div>')
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_context(offline=True).new_page()
            page.set_content(html, wait_until="load")
            page.pdf(path=str(path), format="A4", print_background=True, display_header_footer=True,
                     header_template="<div></div>", footer_template=footer_html,
                     margin={"top": "15mm", "bottom": "18mm", "left": "12mm", "right": "12mm"})
        finally:
            browser.close()


def export(name: str, card: ModelCard, meta: dict[str, Any], fmt: str, path: str | Path) -> Path:
    """Write the card in `fmt` (json, md, html or pdf) to the file `path`."""
    if fmt not in FORMATS:
        raise UserError(f"--format is one of {', '.join(FORMATS)}, got {fmt!r}")
    target = Path(path)
    if target.is_dir():
        raise UserError(f"--output {target} is a directory: name the file to write, e.g. {target / f'{name}.{fmt}'}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "pdf":
            to_pdf(to_html(name, card, meta), target, footer=f"Model card {name}, version {meta['version']} "
                                                             f"({meta['status']})")
        else:
            text = {"json": lambda: json.dumps(card.to_sagemaker(), indent=2, allow_nan=False) + "\n",
                    "md": lambda: to_markdown(name, card, meta), "html": lambda: to_html(name, card, meta)}[fmt]()
            target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"--output {target}: cannot write it ({exc.strerror or exc})") from None
    return target
