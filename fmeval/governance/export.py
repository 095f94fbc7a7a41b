"""A model card as SageMaker's JSON, Markdown, self-contained HTML (charts inline, everything from
the card escaped), or PDF (the HTML printed by headless Chromium through Playwright)."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from fmeval.errors import UserError
from fmeval.governance.cards import ModelCard
from fmeval.html import CSP, STYLE, bar_chart, esc

FORMATS = ("json", "md", "html", "pdf")
SECTION_TITLES = {"model_overview": "Model overview", "intended_uses": "Intended uses",
                  "business_details": "Business details", "training_details": "Training details",
                  "additional_information": "Additional information"}


def _label(key: str) -> str:
    return key.replace("_", " ").capitalize()


def _flat(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted field, value) of a section's filled fields."""
    if isinstance(value, dict):
        return [pair for key, item in value.items() for pair in _flat(item, f"{prefix}{key}.")]
    return [(prefix.rstrip("."), value)]


def _shown(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def to_markdown(name: str, card: ModelCard, meta: dict[str, Any]) -> str:
    content = card.to_sagemaker()
    out = [f"# Model card: {name}", "", f"Status **{meta['status']}**, version {meta['version']}"
           + (f", approved by {meta['approved_by']} (version {meta['approved_version']})" if meta.get("approved_by") else "")
           + ".", ""]
    for key, title in SECTION_TITLES.items():
        if content.get(key):
            out += [f"## {title}", ""] + [f"- **{_label(field)}**: {_shown(value)}" for field, value in
                                          _flat(content[key])] + [""]
    for job in content.get("evaluation_details", []):
        out += [f"## Evaluation: {job['name']}", ""]
        if job.get("evaluation_observation"):
            out += [job["evaluation_observation"], ""]
        if job.get("datasets"):
            out += [f"Datasets: {', '.join(job['datasets'])}", ""]
        for group in job.get("metric_groups", []):
            out += [f"### {group['name']}", "", "| metric | value | notes |", "|---|---|---|"]
            out += [f"| {m['name']} | {_shown(m['value'])} | {m.get('notes', '')} |" for m in group.get("metric_data", [])]
            out.append("")
    return "\n".join(out)


def to_html(name: str, card: ModelCard, meta: dict[str, Any]) -> str:
    content = card.to_sagemaker()
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
           f"<title>Model card: {esc(name)}</title><style>{STYLE}</style></head><body>",
           f"<h1>Model card: {esc(name)}</h1>",
           f"<p>Status <strong>{esc(meta['status'])}</strong>, version {esc(meta['version'])}"
           + (f", approved by {esc(meta['approved_by'])} (version {esc(meta['approved_version'])})"
              if meta.get("approved_by") else "") + ".</p>"]
    for key, title in SECTION_TITLES.items():
        if content.get(key):
            out.append(f"<h2>{esc(title)}</h2><table>")
            out += [f"<tr><th>{esc(_label(field))}</th><td class=\"text\">{esc(_shown(value))}</td></tr>"
                    for field, value in _flat(content[key])]
            out.append("</table>")
    for job in content.get("evaluation_details", []):
        out.append(f"<h2>Evaluation: {esc(job['name'])}</h2>")
        if job.get("evaluation_observation"):
            out.append(f"<p>{esc(job['evaluation_observation'])}</p>")
        if job.get("datasets"):
            out.append(f"<p>Datasets: {esc(', '.join(job['datasets']))}</p>")
        for group in job.get("metric_groups", []):
            metrics = group.get("metric_data", [])
            out.append(f"<h3>{esc(group['name'])}</h3><table><tr><th>metric</th><th>value</th><th>notes</th></tr>")
            out += [f"<tr><td>{esc(m['name'])}</td><td class=\"num\">{esc(_shown(m['value']))}</td>"
                    f"<td>{esc(m.get('notes', ''))}</td></tr>" for m in metrics]
            out.append("</table>")
            numbers = [(m["name"], float(m["value"]), None, None, "#0969da") for m in metrics if m["type"] == "number"]
            bars = [(str(x), float(v), None, None, "#0969da") for m in metrics if m["type"] == "bar_chart"
                    for x, v in zip(m.get("x_axis_name") or [], m["value"])]
            if numbers or bars:
                out.append(bar_chart(group["name"], numbers or bars))
    out.append("</body></html>")
    return "\n".join(out)


def to_pdf(html: str, path: Path) -> None:
    """Print the HTML with headless Chromium (the system's, through Playwright)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        chromium = None
    if chromium is None:
        raise UserError("PDF export prints through headless Chromium: install it (Debian: apt install chromium) and "
                        "Playwright (pip install playwright); HTML and Markdown exports need neither")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_context(offline=True).new_page()
            page.set_content(html, wait_until="load")
            page.pdf(path=str(path), format="A4", print_background=True,
                     margin={"top": "15mm", "bottom": "15mm", "left": "12mm", "right": "12mm"})
        finally:
            browser.close()


def export(name: str, card: ModelCard, meta: dict[str, Any], fmt: str, path: str | Path) -> Path:
    """Write the card in `fmt` (json, md, html or pdf) to `path`."""
    import json

    if fmt not in FORMATS:
        raise UserError(f"--format is one of {', '.join(FORMATS)}, got {fmt!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "json":
        target.write_text(json.dumps(card.to_sagemaker(), indent=2) + "\n", encoding="utf-8")
    elif fmt == "md":
        target.write_text(to_markdown(name, card, meta), encoding="utf-8")
    elif fmt == "html":
        target.write_text(to_html(name, card, meta), encoding="utf-8")
    else:
        to_pdf(to_html(name, card, meta), target)
    return target
