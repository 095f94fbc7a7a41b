"""The self-contained HTML report of `fmeval analyze`: bias metrics, global SHAP, PDP charts."""
from __future__ import annotations

from typing import Any

from fmeval.html import CSP, STYLE, bar_chart, esc

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759")


def line_chart(title: str, xs: list[float], series: dict[str, list[float]]) -> str:
    width, height, left, bottom = 420, 220, 50, 30
    values = [v for ys in series.values() for v in ys]
    low, high = min(values), max(values)
    high = high if high > low else low + 1
    x_low, x_high = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    px = lambda x: left + (x - x_low) / (x_high - x_low) * (width - left - 10)  # noqa: E731
    py = lambda y: height - bottom - (y - low) / (high - low) * (height - bottom - 20)  # noqa: E731
    parts = [f'<svg class="chart" role="img" aria-label="{esc(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
             f'<text x="0" y="14" class="title">{esc(title)}</text>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}" class="axis"/>',
             f'<text x="{left}" y="{height - 8}" class="label">{x_low:.3g}</text>',
             f'<text x="{width - 10}" y="{height - 8}" class="label" text-anchor="end">{x_high:.3g}</text>',
             f'<text x="{left - 4}" y="{py(high) + 4:.1f}" class="label" text-anchor="end">{high:.3g}</text>',
             f'<text x="{left - 4}" y="{py(low) + 4:.1f}" class="label" text-anchor="end">{low:.3g}</text>']
    for i, (name, ys) in enumerate(series.items()):
        points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys))
        parts.append(f'<polyline fill="none" stroke="{PALETTE[i % len(PALETTE)]}" stroke-width="2" points="{points}"/>')
        parts.append(f'<text x="{width - 12}" y="{34 + 12 * i}" class="label" text-anchor="end" '
                     f'fill="{PALETTE[i % len(PALETTE)]}">{esc(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def heatmap(title: str, rows: list[str], columns: list[str], values: list[list[float]]) -> str:
    """An SVG grid: a cell per (row, column), red for a positive value, blue for a negative one,
    the deeper the larger |value| against the largest in the grid."""
    cell, left, top = 22, 130, 24
    largest = max((abs(v) for row in values for v in row), default=0.0) or 1.0
    width, height = left + cell * len(columns) + 10, top + cell * len(rows) + 40
    parts = [f'<svg class="chart" role="img" aria-label="{esc(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
             f'<text x="0" y="14" class="title">{esc(title)}</text>']
    for i, (name, row) in enumerate(zip(rows, values)):
        y = top + i * cell
        parts.append(f'<text x="{left - 4}" y="{y + 15}" class="label" text-anchor="end">{esc(name)}</text>')
        for j, value in enumerate(row):
            share = min(1.0, abs(value) / largest)
            colour = (255, round(255 * (1 - share)), round(255 * (1 - share))) if value > 0 else \
                (round(255 * (1 - share)), round(255 * (1 - share)), 255)
            parts.append(f'<rect x="{left + j * cell}" y="{y}" width="{cell - 1}" height="{cell - 1}" '
                         f'fill="rgb{colour}"><title>{esc(name)} at {esc(columns[j])}: {value:.4g}</title></rect>')
    bottom = top + len(rows) * cell + 14
    parts.append(f'<text x="{left}" y="{bottom}" class="label">{esc(columns[0])}</text>')
    parts.append(f'<text x="{width - 10}" y="{bottom}" class="label" text-anchor="end">{esc(columns[-1])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _cell(metric: dict[str, Any]) -> str:
    """A metric's value, or "n/a" with the reason it is undefined on these data."""
    if metric.get("value") is None:
        return f'<td class="num" title="{esc(metric.get("error"))}">n/a</td>'
    value = metric["value"] if isinstance(metric["value"], str) else f"{metric['value']:.4f}"  # "Infinity"
    return f'<td class="num">{esc(value)}</td>'


LEFT_OUT = {
    "rows_with_missing_values": "with a missing label, facet, prediction or group",
    "rows_with_failed_predictions": "that the model gave no prediction for",
    "rows_without_explanation": "whose explanation failed",
}


def render_analysis(result: dict[str, Any]) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
           f"<title>fmeval analysis</title><style>{STYLE}</style></head><body><h1>fmeval analysis</h1>"]
    for stage, title in (("pre_training_bias_metrics", "Pre-training bias"),
                         ("post_training_bias_metrics", "Post-training bias")):
        if stage not in result:
            continue
        section = result[stage]
        out.append(f"<h2>{title}</h2><p>Label {esc(section['label'])}, positive: "
                   f"{esc(section['label_value_or_threshold'])}.</p>")
        for facet, entries in section["facets"].items():
            names = [m["name"] for m in entries[0]["metrics"]]
            out.append(f"<h3>Facet {esc(facet)}</h3><table><tr><th>sensitive group</th>"
                       + "".join(f"<th title=\"{esc(m['description'])}\">{esc(m['name'])}</th>" for m in entries[0]["metrics"])
                       + "</tr>")
            for entry in entries:
                by_name = {m["name"]: m for m in entry["metrics"]}
                out.append(f"<tr><th>{esc(entry['value_or_threshold'])}</th>"
                           + "".join(_cell(by_name[n]) for n in names) + "</tr>")
            out.append("</table>")
    for key, what in LEFT_OUT.items():
        if key in result:
            left_out = result[key]
            reason = f"; first error: {left_out['first_error']}" if "first_error" in left_out else ""
            out.append(f"<p>{left_out['count']} row(s) {what}: {esc(left_out['action'])} (first rows: "
                       f"{esc(', '.join(map(str, left_out['rows'])))}){esc(reason)}.</p>")
    explanations = result.get("explanations", {})
    if "kernel_shap" in explanations:
        out.append("<h2>Feature importance (KernelSHAP)</h2><div class=\"charts\">")
        for label, block in explanations["kernel_shap"].items():
            if "global_shap_values" not in block:  # images: see the overlays in explanations_shap/images
                continue
            ranked = sorted(block["global_shap_values"].items(), key=lambda item: -abs(item[1]))
            rows = [(name, value, None, None, PALETTE[0]) for name, value in ranked]
            out.append(bar_chart(f"{label}: global SHAP (expected value {block['expected_value']:.4f})", rows))
        out.append("</div>")
    if "asymmetric_shapley_value" in explanations:
        block = explanations["asymmetric_shapley_value"]
        out.append(f"<h2>Time series: asymmetric Shapley values ({esc(block['direction'])}, "
                   f"{esc(block['granularity'])})</h2><div class=\"charts\">")
        for item in block["items"]:
            series = {name: rows for name, rows in item["attributions"].items() if name != "static_covariates"}
            for step, value in enumerate(item["forecast"]):
                grid = [[rows[step][t] for t in item["timestamps"]] for rows in series.values()]
                out.append(heatmap(f"item {item['item_id']}, forecast step {step + 1}: {value:.4g} (baseline "
                                   f"{item['baseline_forecast'][step]:.4g})", list(series), item["timestamps"], grid))
            statics = item["attributions"]["static_covariates"]
            if statics:
                out.append("<table><tr><th>static covariate</th>" + "".join(
                    f"<th>step {k + 1}</th>" for k in range(len(item["forecast"]))) + "</tr>" + "".join(
                    f"<tr><th>{esc(name)}</th>" + "".join(f'<td class="num">{v:.4g}</td>' for v in values) + "</tr>"
                    for name, values in statics.items()) + "</table>")
        out.append("</div>")
    if "pdp" in explanations:
        out.append("<h2>Partial dependence</h2><div class=\"charts\">")
        for curve in explanations["pdp"]:
            series = dict(zip(curve["label_headers"], curve["model_predictions"]))
            out.append(line_chart(curve["feature_name"], curve["feature_values"], series))
        out.append("</div>")
    out.append("</body></html>")
    return "\n".join(out)
