"""A monitoring schedule's report: its executions, each metric over time with the thresholds
drawn, the violations, and (data quality) each feature's baseline and current distributions.
One self-contained HTML page (no scripts, no external resources; everything from data escaped)
and the same content as JSON.
"""
from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from fmeval.html import CSP, STYLE, esc
from fmeval.monitoring.monitors import violation_subject
from fmeval.version import __version__

BASELINE_COLOUR, CURRENT_COLOUR = "#8c8c8c", "#0969da"
EXTRA_STYLE = """
.status-Completed{color:#1a7f37}.status-CompletedWithViolations,.status-Failed,.ALARM{color:#cf222e;font-weight:600}
.status-NoData,.INSUFFICIENT_DATA{color:#9a6700}.OK{color:#1a7f37}svg .line{fill:none;stroke-width:2}
svg .threshold{stroke:#cf222e;stroke-dasharray:5 3}svg .baseline{stroke-width:1.5}svg .dot{stroke:#fff}
nav.windows a{margin-right:.8em}
"""


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _thresholds(schedule: Any, baseline: Path) -> dict[str, list[dict[str, Any]]]:
    """metric -> the lines to draw: each alarm's threshold, and the baseline's constraint bounds."""
    lines: dict[str, list[dict[str, Any]]] = {}
    for alarm in schedule.alarms:
        lines.setdefault(alarm["metric"], []).append(
            {"value": alarm["threshold"], "label": f"alarm {alarm['name']}: {alarm['comparison']} {alarm['threshold']}"})
    constraints = _read_json(baseline / "constraints.json") or {}
    for key, section in constraints.items():
        if key.endswith("_constraints") and isinstance(section, dict):
            for metric, rule in section.items():
                if isinstance(rule, dict) and "threshold" in rule:
                    lines.setdefault(metric, []).append(
                        {"value": rule["threshold"], "label": f"constraint: {rule.get('comparison_operator', '')}"})
                elif isinstance(rule, dict) and "lower_bound" in rule:
                    for bound in ("lower_bound", "upper_bound"):
                        lines.setdefault(metric, []).append({"value": rule[bound], "label": f"constraint {bound}"})
    if "attribution_constraints" in constraints:
        lines.setdefault("ndcg", []).append({"value": constraints["attribution_constraints"]["ndcg_threshold"],
                                             "label": "NDCG threshold"})
    distribution = (constraints.get("monitoring_config") or {}).get("distribution_constraints") or {}
    if "comparison_threshold" in distribution:
        lines["feature_baseline_drift_*"] = [{"value": distribution["comparison_threshold"],
                                              "label": "baseline drift threshold (L-infinity)"}]
    return lines


def _baseline_values(kind: str, baseline: Path) -> dict[str, float]:
    """metric -> its value at the baseline, drawn as each chart's baseline line: an LLM baseline's
    scores (and 0 for their changes), a model-quality baseline's metrics."""
    if kind == "llm-outputs":
        from fmeval.errors import UserError
        from fmeval.runs.loaded import load_run

        try:
            scores = load_run(baseline / "run").summary.dataset_scores
        except UserError:  # the baseline's run removed or unreadable: no line to draw
            return {}
        values = {score.name: score.value for score in scores if isinstance(score.value, (int, float))}
        return {**values, **{f"{name}_delta": 0.0 for name in values}}
    if kind == "model-quality":
        statistics = _read_json(baseline / "statistics.json") or {}
        return {metric: entry["value"] for key, section in statistics.items() if key.endswith("_metrics")
                for metric, entry in section.items() if isinstance(entry.get("value"), (int, float))}
    return {}


def _window_distributions(kind: str, baseline: Path, output: Path) -> dict[str, Any] | None:
    """One window's baseline and current distributions (data quality's features, an LLM's scores)."""
    if kind == "llm-outputs":
        from fmeval.errors import UserError
        from fmeval.monitoring.llm_outputs import score_distributions
        from fmeval.runs.loaded import load_run

        try:
            return score_distributions(load_run(baseline / "run"), load_run(output / "run")) or None
        except UserError:  # a run removed or unreadable: the window has no distributions to show
            return None
    return _read_json(output / "distributions.json")


def window_page(window: str) -> str:
    """The file name of a window's own page (beside the report, in REPORT-windows/)."""
    return window.replace(":", "").replace("/", "_") + ".html"


def _shown(path: str, relative_to: Path | None) -> str:
    """A path as the report shows it: relative to the report's folder (never the machine's absolute
    layout), or its last two parts."""
    if relative_to is not None:
        return os.path.relpath(Path(path).resolve(), relative_to.resolve())
    return str(Path(*Path(path).parts[-2:]))


def build_report(store: Any, name: str, *, relative_to: str | Path | None = None,
                 distributions: bool = True) -> dict[str, Any]:
    """The report's content, from the store and each execution's files; paths relative to
    `relative_to` (the report's folder). `distributions=False` leaves out each window's
    distributions (an LLM window's are read from its run's records)."""
    folder = Path(relative_to) if relative_to is not None else None
    schedule = store.get(name)
    executions = store.executions(name)
    baseline = Path(schedule.baseline)
    names = list(dict.fromkeys(metric for execution in executions for metric in execution.metrics))
    series = {metric: [{"window_end": e.window_end, "value": e.metrics.get(metric)} for e in executions]
              for metric in names}  # None where a window has no value (no data, failed): a gap
    violations, rows, windows = [], [], []
    for execution in executions:
        output = Path(execution.output_dir)
        rows.append({"window": str(execution.window), "status": execution.status, "reason": execution.reason,
                     "violations": execution.violations, "output_dir": _shown(execution.output_dir, folder),
                     "alarms": {k: v.get("state") for k, v in execution.alarms.items() if not k.startswith("_")}})
        found = _read_json(output / "constraint_violations.json") or {}
        violations += [{"window": str(execution.window), **v} for v in found.get("violations", [])]
        if distributions and execution.status in ("Completed", "CompletedWithViolations"):
            distributions = _window_distributions(schedule.kind, baseline, output)
            if distributions:
                windows.append({"window": str(execution.window), "page": window_page(str(execution.window)),
                                "features": distributions})
    states = {alarm["name"]: store.alarm_state(name, alarm["name"]) or "INSUFFICIENT_DATA" for alarm in schedule.alarms}
    return {"schedule": {"name": schedule.name, "kind": schedule.kind, "cron": schedule.cron, "state": schedule.state,
                         "baseline": _shown(schedule.baseline, folder), "capture": _shown(schedule.capture, folder),
                         "start": schedule.start},
            "generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "fmeval_version": __version__,
            "alarms": [{**alarm, "state": states[alarm["name"]]} for alarm in schedule.alarms],
            "executions": rows, "series": series, "thresholds": _thresholds(schedule, baseline),
            "baselines": _baseline_values(schedule.kind, baseline), "violations": violations,
            "windows": windows, "distributions": windows[-1] if windows else None}


# -- charts -------------------------------------------------------------------------------------------------
def line_chart(title: str, points: list[tuple[str, float | None]], thresholds: list[dict[str, Any]],
               baseline: float | None = None) -> str:
    """A metric over executions (x: window ends in order), threshold lines dashed in red, the
    baseline's value as a grey line, and each window's value written beside its point."""
    left, top, width, height = 50, 22, 420, 150
    values = [v for _, v in points if v is not None] + [t["value"] for t in thresholds]
    values += [baseline] if baseline is not None else []
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high == low:
        low, high = low - 0.5, high + 0.5
    pad = (high - low) * 0.08
    low, high = low - pad, high + pad
    y = lambda v: top + height - (v - low) / (high - low) * height  # noqa: E731
    x = lambda i: left + (i + 0.5) * width / max(len(points), 1)  # noqa: E731
    parts = [f'<svg class="chart" role="img" aria-label="{esc(title)}" width="{left + width + 10}" '
             f'height="{top + height + 40}" xmlns="http://www.w3.org/2000/svg">',
             f'<text x="0" y="14" class="title">{esc(title)}</text>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + height}" class="axis"/>',
             f'<text x="{left - 4}" y="{top + 8}" class="label" text-anchor="end">{high:.3g}</text>',
             f'<text x="{left - 4}" y="{top + height}" class="label" text-anchor="end">{low:.3g}</text>']
    for line in thresholds:
        parts.append(f'<line x1="{left}" y1="{y(line["value"]):.1f}" x2="{left + width}" y2="{y(line["value"]):.1f}" '
                     f'class="threshold"><title>{esc(line["label"])}</title></line>')
    if baseline is not None:
        parts.append(f'<line x1="{left}" y1="{y(baseline):.1f}" x2="{left + width}" y2="{y(baseline):.1f}" '
                     f'class="baseline" stroke="{BASELINE_COLOUR}"><title>baseline {baseline:.4g}</title></line>'
                     f'<text x="{left + width}" y="{y(baseline) - 3:.1f}" class="label" text-anchor="end">'
                     f'baseline {baseline:.4g}</text>')
    drawn = [(x(i), y(v)) for i, (_, v) in enumerate(points) if v is not None]
    if len(drawn) > 1:
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in drawn)
        parts.append(f'<polyline points="{path}" class="line" stroke="{CURRENT_COLOUR}"/>')
    for i, (when, value) in enumerate(points):
        if value is not None:
            parts.append(f'<circle cx="{x(i):.1f}" cy="{y(value):.1f}" r="3.5" class="dot" fill="{CURRENT_COLOUR}">'
                         f'<title>{esc(when)}: {value:.4g}</title></circle>'
                         f'<text x="{x(i):.1f}" y="{y(value) - 6:.1f}" class="label value" text-anchor="middle">'
                         f'{value:.3g}</text>')
    if points:
        parts.append(f'<text x="{left}" y="{top + height + 16}" class="label">{esc(points[0][0][:16])}</text>'
                     f'<text x="{left + width}" y="{top + height + 16}" class="label" text-anchor="end">'
                     f'{esc(points[-1][0][:16])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def distribution_chart(name: str, entry: dict[str, Any]) -> str:
    """Baseline and current shares side by side, bin by bin (or value by value)."""
    if entry["type"] == "numerical":
        edges = entry["edges"]
        labels = [f"{edges[i]:.3g}–{edges[i + 1]:.3g}" for i in range(len(edges) - 1)]
    else:
        labels = [str(v) for v in entry["values"]]
    left, top, width, height = 40, 22, 420, 120
    peak = max([*entry["baseline"], *entry["current"], 1e-9])
    step = width / max(len(labels), 1)
    bar = step * 0.4
    parts = [f'<svg class="chart" role="img" aria-label="{esc(name)}" width="{left + width + 10}" height="{top + height + 36}" '
             f'xmlns="http://www.w3.org/2000/svg"><text x="0" y="14" class="title">{esc(name)} ({esc(entry["type"])})</text>',
             f'<line x1="{left}" y1="{top + height}" x2="{left + width}" y2="{top + height}" class="axis"/>']
    for i, label in enumerate(labels):
        for j, (share, colour) in enumerate(((entry["baseline"][i], BASELINE_COLOUR), (entry["current"][i], CURRENT_COLOUR))):
            h = share / peak * height
            parts.append(f'<rect x="{left + i * step + j * bar:.1f}" y="{top + height - h:.1f}" width="{bar:.1f}" '
                         f'height="{h:.1f}" fill="{colour}"><title>{esc(label)}: {"baseline" if j == 0 else "current"} '
                         f'{share:.1%}</title></rect>')
    parts.append(f'<text x="{left}" y="{top + height + 14}" class="label">{esc(labels[0][:24]) if labels else ""}</text>'
                 f'<text x="{left + width}" y="{top + height + 14}" class="label" text-anchor="end">'
                 f'{esc(labels[-1][:24]) if labels else ""}</text></svg>')
    return "".join(parts)


def _threshold_lines(report: dict[str, Any], metric: str) -> list[dict[str, Any]]:
    lines = list(report["thresholds"].get(metric, []))
    if metric.startswith("feature_baseline_drift_"):
        lines += report["thresholds"].get("feature_baseline_drift_*", [])
    return lines


def _page_start(title: str) -> list[str]:
    return ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{esc(title)}</title><style>{STYLE}{EXTRA_STYLE}</style></head><body>"]


def _distributions(entry: dict[str, Any]) -> list[str]:
    out = [f"<h2>Distributions: baseline and window {esc(entry['window'])}</h2>"
           f'<p class="legend"><span><i style="background:{BASELINE_COLOUR}"></i>baseline</span>'
           f'<span><i style="background:{CURRENT_COLOUR}"></i>current</span></p><div class="charts">']
    out += [distribution_chart(name, feature) for name, feature in entry["features"].items()]
    out.append("</div>")
    return out


def render_report(report: dict[str, Any], *, pages: str | None = None) -> str:
    """The report's page; `pages` is the folder (relative to it) of each window's own page
    (`render_window_pages`), linked from the executions and the distributions."""
    schedule = report["schedule"]
    linked = {entry["window"]: f"{pages}/{entry['page']}" for entry in report["windows"]} if pages else {}
    out = [*_page_start(f"fmeval monitor: {schedule['name']}"), f"<h1>Monitor {esc(schedule['name'])}</h1>",
           f"<p>{esc(schedule['kind'])} on '{esc(schedule['cron'])}' ({esc(schedule['state'])}), capture "
           f"{esc(schedule['capture'])}, baseline {esc(schedule['baseline'])}. Generated {esc(report['generated_at'])} "
           f"by fmeval {esc(report['fmeval_version'])}.</p>"]
    if report["alarms"]:
        out.append("<h2>Alarms</h2><table><tr><th>alarm</th><th>metric</th><th>condition</th><th>state</th></tr>")
        for alarm in report["alarms"]:
            out.append(f"<tr><td>{esc(alarm['name'])}</td><td>{esc(alarm['metric'])}</td><td>{esc(alarm['comparison'])} "
                       f"{esc(alarm['threshold'])} for {esc(alarm['datapoints_to_alarm'])} of "
                       f"{esc(alarm['evaluation_periods'])}</td><td class=\"{esc(alarm['state'])}\">{esc(alarm['state'])}</td></tr>")
        out.append("</table>")
    out.append("<h2>Executions</h2><table><tr><th>window</th><th>status</th><th>violations</th><th>alarms</th><th>note</th></tr>")
    for row in report["executions"]:
        alarms = ", ".join(f"{name}: {state}" for name, state in row["alarms"].items())
        window = (f'<a href="{esc(linked[row["window"]])}">{esc(row["window"])}</a>' if row["window"] in linked
                  else esc(row["window"]))
        out.append(f"<tr><td>{window}</td><td class=\"status-{esc(row['status'])}\">{esc(row['status'])}</td>"
                   f"<td class=\"num\">{esc(row['violations'])}</td><td>{esc(alarms)}</td><td>{esc(row['reason'] or '')}</td></tr>")
    out.append("</table>")
    if not report["executions"]:
        out.append('<p class="none">No executions yet.</p>')
    if report["series"]:
        out.append('<h2>Metrics over time</h2><p>Each point is one window; the grey line is the baseline\'s value, '
                   'dashed red lines are thresholds (alarms and the baseline\'s constraints).</p><div class="charts">')
        for metric, points in report["series"].items():
            out.append(line_chart(metric, [(p["window_end"], p["value"]) for p in points],
                                  _threshold_lines(report, metric), report["baselines"].get(metric)))
        out.append("</div>")
    out.append("<h2>Violations</h2>")
    if report["violations"]:
        out.append("<table><tr><th>window</th><th>feature or metric</th><th>check</th><th>description</th></tr>")
        for violation in report["violations"]:
            subject = violation_subject(violation)
            out.append(f"<tr><td>{esc(violation['window'])}</td><td>{esc(subject)}</td>"
                       f"<td>{esc(violation['constraint_check_type'])}</td><td>{esc(violation['description'])}</td></tr>")
        out.append("</table>")
    else:
        out.append('<p class="none">No violations.</p>')
    if report["distributions"]:
        out += _distributions(report["distributions"])
        if linked:
            out.append('<nav class="windows"><p>Every window\'s distributions: ' + "".join(
                f'<a href="{esc(href)}">{esc(window)}</a>' for window, href in linked.items()) + "</p></nav>")
    out.append("</body></html>")
    return "\n".join(out)


def render_window_pages(report: dict[str, Any], *, report_file: str) -> dict[str, str]:
    """Each window's own page (file name -> HTML): its distributions against the baseline's, and
    links to the report and to the windows before and after it. Script-free, like the report."""
    pages = {}
    windows = report["windows"]
    for i, entry in enumerate(windows):
        steps = [f'<a href="../{esc(report_file)}">the report</a>']
        if i > 0:
            steps.append(f'<a href="{esc(windows[i - 1]["page"])}">previous window</a>')
        if i + 1 < len(windows):
            steps.append(f'<a href="{esc(windows[i + 1]["page"])}">next window</a>')
        out = [*_page_start(f"fmeval monitor: {report['schedule']['name']}, {entry['window']}"),
               f"<h1>Monitor {esc(report['schedule']['name'])}: window {esc(entry['window'])}</h1>",
               f'<nav class="windows"><p>{"".join(steps)}</p></nav>', *_distributions(entry), "</body></html>"]
        pages[entry["page"]] = "\n".join(out)
    return pages
