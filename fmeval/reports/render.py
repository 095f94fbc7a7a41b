"""Reports: one JSON document (the stable form), rendered as self-contained HTML or Markdown.

The HTML has no scripts and loads nothing: inline SVG charts, inline CSS, and a
Content-Security-Policy that forbids scripts and network requests. Everything that comes
from data (model outputs above all) is escaped; nothing from data becomes markup or a link.
"""
from __future__ import annotations

import datetime as dt
import heapq
import itertools
import json
from typing import Any, Iterable, Sequence

from fmeval.html import CSP, STYLE, bar_chart, esc
from fmeval.reports.compare import compare_runs, to_markdown
from fmeval.runs.loaded import LoadedRun
from fmeval.scores import MetricSpec
from fmeval.version import __version__

SCHEMA = "fmeval.report/1"
CLIP = 280
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f")


# -- the JSON document -----------------------------------------------------------------------------
def build_report(runs: Sequence[LoadedRun], *, examples: int = 5, n_bootstrap: int = 2000, seed: int = 0) -> dict[str, Any]:
    """The report as plain data; see docs/report-json.md for its schema."""
    groups: dict[tuple[str, str], list[LoadedRun]] = {}
    for run in runs:
        groups.setdefault((run.summary.eval_name, run.summary.dataset_name), []).append(run)
    return {
        "schema": SCHEMA,
        "generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "fmeval_version": __version__,
        "runs": [_provenance(run) for run in runs],
        "groups": [_group(members, examples, n_bootstrap, seed) for members in groups.values()],
    }


def _provenance(run: LoadedRun) -> dict[str, Any]:
    s = run.summary
    return {
        "run_id": run.run_id, "label": run.label, "evaluation": s.eval_name, "dataset": s.dataset_name,
        "dataset_sha256": s.dataset.get("sha256"), "model": s.model, "prompt_template": s.prompt_template,
        "config": s.config, "seed": s.seed, "fmeval_version": s.fmeval_version, "created_at": s.created_at,
        "num_records": s.num_records, "num_errors": s.num_errors, "output_path": str(run.directory),
    }


def _value(run: LoadedRun, score: Any) -> dict[str, Any]:
    return {"run_id": run.run_id, "value": score.value, "ci_lower": score.ci_lower, "ci_upper": score.ci_upper,
            "count": score.count}


def _specs(runs: list[LoadedRun]) -> dict[str, MetricSpec]:
    """Each metric's spec, as the first run that has it declares it."""
    specs: dict[str, MetricSpec] = {}
    for run in runs:
        for spec in run.summary.metrics:
            specs.setdefault(spec.name, spec)
    return specs


def _meaning(spec: MetricSpec) -> dict[str, Any]:
    return {"direction": spec.direction, "ideal": spec.ideal if spec.higher_is_better is None else None}


def _group(runs: list[LoadedRun], examples: int, n_bootstrap: int, seed: int) -> dict[str, Any]:
    names = list(dict.fromkeys(s.name for run in runs for s in run.summary.dataset_scores))
    specs = _specs(runs)
    metrics = []
    for name in names:
        values = [_value(run, s) for run in runs for s in run.summary.dataset_scores if s.name == name]
        metrics.append({"name": name, **_meaning(specs[name]), "values": values})
    categories = []
    for name in names:
        rows = {}
        for run in runs:
            for category in run.summary.category_scores:
                for score in category.scores:
                    if score.name == name:
                        rows.setdefault(category.name, []).append(_value(run, score))
        if rows:
            categories.append({"metric": name, **_meaning(specs[name]),
                               "categories": [{"name": k, "values": v} for k, v in sorted(rows.items())]})
    comparisons = []
    for candidate in runs[1:]:
        comparisons.append(compare_runs(runs[0], candidate, n_bootstrap=n_bootstrap, seed=seed).to_dict())
    return {
        "evaluation": runs[0].summary.eval_name,
        "dataset": runs[0].summary.dataset_name,
        "runs": [run.run_id for run in runs],
        "metrics": metrics,
        "categories": categories,
        "examples": [example for run in runs for example in _examples(run, names, specs, examples)],
        "comparisons": comparisons,
    }


def _example(line: dict[str, Any], score: float) -> dict[str, Any]:
    prompt = line.get("prompt") or line.get("model_input")
    if prompt is None and line.get("sent_more_input") is not None:
        prompt = f"more: {line['sent_more_input']}\nless: {line.get('sent_less_input')}"
    target = line.get("target_output")
    return {"record_id": line.get("record_id"), "prompt": prompt, "model_output": line.get("model_output"),
            "target_output": " | ".join(target) if isinstance(target, list) else target, "score": score}


def _examples(run: LoadedRun, names: list[str], specs: dict[str, MetricSpec], k: int) -> Iterable[dict[str, Any]]:
    """The k best and k worst records per metric, in one pass with bounded memory (heaps)."""
    if k < 1:
        return []
    best: dict[str, list] = {n: [] for n in names}
    worst: dict[str, list] = {n: [] for n in names}
    counter = itertools.count()
    for line in run.records():
        for name in names:
            value = (line.get("scores") or {}).get(name)
            if value is None:
                continue
            goodness = specs[name].goodness(value)
            order = next(counter)
            for heap, key in ((best[name], goodness), (worst[name], -goodness)):
                item = (key, -order, line, value)
                if len(heap) < k:
                    heapq.heappush(heap, item)
                elif item[:2] > heap[0][:2]:
                    heapq.heapreplace(heap, item)
    return [
        {"metric": name, "run_id": run.run_id,
         "best": [_example(line, value) for *_, line, value in sorted(best[name], key=lambda i: i[:2], reverse=True)],
         "worst": [_example(line, value) for *_, line, value in sorted(worst[name], key=lambda i: i[:2], reverse=True)]}
        for name in names
        if best[name]
    ]


# -- HTML -------------------------------------------------------------------------------------------
def _number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _with_ci(value: dict[str, Any]) -> str:
    text = _number(value["value"])
    if value.get("ci_lower") is not None:
        text += f" [{_number(value['ci_lower'])}, {_number(value['ci_upper'])}]"
    return text


def _clipped(text: Any) -> str:
    if text is None:
        return '<span class="none">none</span>'
    text = str(text)
    if len(text) <= CLIP:
        return f'<div class="text">{esc(text)}</div>'
    return (f'<details><summary><span class="text">{esc(text[:CLIP])}…</span> <em>show all '
            f'{len(text)} characters</em></summary><div class="text">{esc(text)}</div></details>')


def render_html(report: dict[str, Any]) -> str:
    runs = {run["run_id"]: run for run in report["runs"]}
    colour = {run_id: PALETTE[i % len(PALETTE)] for i, run_id in enumerate(runs)}
    label = lambda run_id: runs[run_id]["label"]  # noqa: E731
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>fmeval report: {esc(', '.join(sorted({r['label'] for r in runs.values()})))}</title>",
           f"<style>{STYLE}</style></head><body>",
           f"<h1>fmeval report</h1><p>{len(runs)} run(s), generated {esc(report['generated_at'])} by fmeval "
           f"{esc(report['fmeval_version'])}.</p>",
           '<p class="legend">' + "".join(f'<span><i style="background:{colour[r]}"></i>{esc(label(r))}</span>'
                                          for r in runs) + "</p>"]
    for group in report["groups"]:
        out.append(f"<h2>{esc(group['evaluation'])} on {esc(group['dataset'])}</h2>")
        out.append("<table><tr><th>metric</th>" + "".join(f"<th>{esc(label(r))}</th>" for r in group["runs"]) + "</tr>")
        for metric in group["metrics"]:
            cells = {v["run_id"]: v for v in metric["values"]}
            out.append(f"<tr><th>{esc(metric['name'])}</th>" + "".join(
                f'<td class="num">{esc(_with_ci(cells[r])) if r in cells else "n/a"}</td>' for r in group["runs"]) + "</tr>")
        out.append("</table><p>Values are means over records with a 95% bootstrap confidence interval in brackets.</p>")
        out.append('<div class="charts">')
        for metric in group["metrics"]:
            ideal = metric["ideal"]
            rows = [(label(v["run_id"]), v["value"], v["ci_lower"], v["ci_upper"], colour[v["run_id"]]) for v in metric["values"]]
            out.append(bar_chart(f"{metric['name']} ({metric['direction']} is better)" if ideal is None
                                 else f"{metric['name']} ({ideal} is ideal)", rows, ideal=ideal))
        out.append("</div>")
        for category_block in group["categories"]:
            out.append(f"<h3>{esc(category_block['metric'])} by category</h3><div class=\"charts\">")
            ideal = category_block["ideal"]
            for category in category_block["categories"]:
                rows = [(label(v["run_id"]), v["value"], v["ci_lower"], v["ci_upper"], colour[v["run_id"]])
                        for v in category["values"]]
                out.append(bar_chart(category["name"], rows, ideal=ideal))
            out.append("</div>")
        for comparison in group["comparisons"]:
            out.append(_comparison_html(comparison))
        if group["examples"]:
            out.append("<h3>Best and worst examples</h3>")
            for block in group["examples"]:
                for kind in ("best", "worst"):
                    out.append(f"<h4>{esc(block['metric'])}: {kind} for {esc(label(block['run_id']))}</h4>")
                    out.append("<table><tr><th>record</th><th>score</th><th>prompt</th><th>output</th><th>target</th></tr>")
                    for example in block[kind]:
                        out.append(f"<tr><td>{esc(example['record_id'])}</td><td class=\"num\">{_number(example['score'])}</td>"
                                   f"<td>{_clipped(example['prompt'])}</td><td>{_clipped(example['model_output'])}</td>"
                                   f"<td>{_clipped(example['target_output'])}</td></tr>")
                    out.append("</table>")
    out.append("<h2>Provenance</h2><table><tr><th>run</th><th>model</th><th>dataset (sha256)</th><th>prompt template</th>"
               "<th>configuration</th><th>seed</th><th>fmeval</th><th>date</th></tr>")
    for run in runs.values():
        out.append(f"<tr><td>{esc(run['label'])}<br><small>{esc(run['run_id'])}</small></td>"
                   f"<td>{_clipped(_compact(run['model']))}</td>"
                   f"<td>{esc(run['dataset'])}<br><small>{esc(', '.join(run['dataset_sha256'] or []))}</small></td>"
                   f"<td>{_clipped(run['prompt_template'])}</td><td>{_clipped(_compact(run['config']))}</td>"
                   f"<td>{esc(run['seed'])}</td><td>{esc(run['fmeval_version'])}</td><td>{esc(run['created_at'])}</td></tr>")
    out.append("</table></body></html>")
    return "\n".join(out)


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _comparison_html(comparison: dict[str, Any]) -> str:
    rows = []
    for m in comparison["metrics"]:
        mark = ""
        if m["worsening"] is not None and m["worsening"] != 0:
            mark = "worse" if m["worsening"] > 0 else "better"
            mark = f'<span class="{mark}">{mark}{" (significant)" if m["significant"] else ""}</span>'
        interval = f"[{_number(m['ci_lower'], 4)}, {_number(m['ci_upper'], 4)}]" if m["ci_lower"] is not None else "n/a"
        delta = "n/a" if m["delta"] is None else f"{m['delta']:+.4f}"
        rows.append(f"<tr><th>{esc(m['name'])}</th><td class=\"num\">{_number(m['baseline'], 4)}</td>"
                    f"<td class=\"num\">{_number(m['candidate'], 4)}</td><td class=\"num\">{delta}</td>"
                    f"<td class=\"num\">{interval}</td><td class=\"num\">{_number(m['p_value'])}</td><td>{mark}</td></tr>")
    return (f"<h3>{esc(comparison['candidate'])} compared with {esc(comparison['baseline'])}</h3>"
            f"<p>{esc(comparison['method'])}.</p><table><tr><th>metric</th><th>baseline</th><th>candidate</th>"
            f"<th>delta</th><th>95% CI of delta</th><th>p</th><th></th></tr>{''.join(rows)}</table>")


# -- Markdown ---------------------------------------------------------------------------------------
def render_markdown(report: dict[str, Any], *, top: int = 10) -> str:
    """A summary table per evaluation, and the largest changes of each comparison."""
    runs = {run["run_id"]: run for run in report["runs"]}
    lines = [f"## fmeval report ({len(runs)} runs)", ""]
    for group in report["groups"]:
        lines += [f"### {group['evaluation']} on {group['dataset']}", "",
                  "| metric | " + " | ".join(runs[r]["label"].replace("|", "\\|") for r in group["runs"]) + " |",
                  "|---|" + "---:|" * len(group["runs"])]
        for metric in group["metrics"]:
            cells = {v["run_id"]: v for v in metric["values"]}
            lines.append(f"| {metric['name']} | " + " | ".join(_with_ci(cells[r]) if r in cells else "n/a"
                                                                for r in group["runs"]) + " |")
        lines.append("")
        for comparison in group["comparisons"]:
            lines.append(to_markdown(_comparison_object(comparison), top=top))
    return "\n".join(lines)


def _comparison_object(data: dict[str, Any]):
    from fmeval.reports.compare import Comparison, GateResult, MetricComparison

    metric_fields = set(MetricComparison.__dataclass_fields__)
    return Comparison(
        data["evaluation"], data["dataset"], data["baseline"], data["candidate"], data["method"],
        [MetricComparison(**{k: v for k, v in m.items() if k in metric_fields}) for m in data["metrics"]],
        [GateResult(**g) for g in data["gates"]],
    )
