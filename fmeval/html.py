"""Self-contained HTML pieces every page of fmeval shares: escaping, the style sheet, the
Content-Security-Policy, and bar charts with confidence intervals as inline SVG.

Everything that comes from data (model outputs above all) goes through `esc`: nothing from
data becomes markup or a link.
"""
from __future__ import annotations

import html
from typing import Any, Sequence


def esc(value: Any) -> str:
    """Text from data, made inert: every <, >, &, ' and " escaped."""
    return html.escape("" if value is None else str(value), quote=True)


def bar_chart(title: str, rows: Sequence[tuple[str, float | None, float | None, float | None, str]], *,
              ideal: float | None = None) -> str:
    """Horizontal bars with 95% CI error bars. rows: (label, value, ci_lower, ci_upper, colour)."""
    bar, gap, left, width = 18, 6, 190, 300
    numbers = [x for _, v, lo, hi, _ in rows for x in (v, lo, hi) if x is not None]
    low, high = min([0.0, *numbers]), max([1.0, *numbers]) if numbers else 1.0
    if ideal is not None:
        low, high = min(low, ideal), max(high, ideal)
    scale = width / ((high - low) or 1.0)
    x = lambda v: left + (v - low) * scale  # noqa: E731
    height = 28 + len(rows) * (bar + gap)
    parts = [f'<svg class="chart" role="img" aria-label="{esc(title)}" width="{left + width + 70}" height="{height}" '
             f'viewBox="0 0 {left + width + 70} {height}" xmlns="http://www.w3.org/2000/svg">',
             f'<text x="0" y="14" class="title">{esc(title)}</text>',
             f'<line x1="{x(0):.1f}" y1="20" x2="{x(0):.1f}" y2="{height}" class="axis"/>']
    for i, (label, value, lo, hi, colour) in enumerate(rows):
        y = 24 + i * (bar + gap)
        parts.append(f'<text x="{left - 6}" y="{y + 13}" class="label" text-anchor="end">{esc(label[:32])}</text>')
        if value is None:
            parts.append(f'<text x="{left + 4}" y="{y + 13}" class="label">n/a</text>')
            continue
        start, end = sorted((x(0), x(value)))
        parts.append(f'<rect x="{start:.1f}" y="{y}" width="{max(end - start, 1):.1f}" height="{bar}" fill="{colour}"/>')
        if lo is not None and hi is not None:
            middle = y + bar / 2
            parts.append(f'<line x1="{x(lo):.1f}" y1="{middle}" x2="{x(hi):.1f}" y2="{middle}" class="ci"/>'
                         f'<line x1="{x(lo):.1f}" y1="{y + 4}" x2="{x(lo):.1f}" y2="{y + bar - 4}" class="ci"/>'
                         f'<line x1="{x(hi):.1f}" y1="{y + 4}" x2="{x(hi):.1f}" y2="{y + bar - 4}" class="ci"/>')
        parts.append(f'<text x="{max(end, x(hi) if hi is not None else end) + 4:.1f}" y="{y + 13}" '
                     f'class="value">{value:.3f}</text>')
    if ideal is not None:
        parts.append(f'<line x1="{x(ideal):.1f}" y1="20" x2="{x(ideal):.1f}" y2="{height}" class="ideal"/>'
                     f'<text x="{x(ideal) + 3:.1f}" y="{height - 2}" class="ideal-label">ideal {ideal}</text>')
    parts.append("</svg>")
    return "".join(parts)


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.6rem}h2{border-bottom:2px solid #ddd;padding-bottom:.3rem;margin-top:2.5rem}h3{margin-top:1.8rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}th,td{border:1px solid #ddd;padding:.3rem .5rem;
vertical-align:top;text-align:left}th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.text{white-space:pre-wrap;word-break:break-word;max-width:32rem;font-family:ui-monospace,monospace;font-size:.8rem}
.none{color:#999}.charts{display:flex;flex-wrap:wrap;gap:1rem}svg.chart{background:#fafafa;border:1px solid #eee}
svg .title{font-size:12px;font-weight:600}svg .label,svg .value{font-size:11px}svg .axis{stroke:#999}
svg .ci{stroke:#222;stroke-width:1.5}svg .ideal{stroke:#c00;stroke-dasharray:4 3}svg .ideal-label{font-size:10px;fill:#c00}
.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}.worse{color:#cf222e}.better{color:#1a7f37}
details summary{cursor:pointer}.legend span{display:inline-block;margin-right:1rem;font-size:.85rem}
.legend i{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:middle}
"""
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
