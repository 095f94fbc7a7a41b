"""`fmeval rebalance`: every (facet, label) group brought to the same size, with a before/after bias report."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any, Callable

from fmeval.cli.common import EXIT_OK, csv_list, read_table

def add_parsers(commands: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    from fmeval.bias.names import REBALANCE_METHODS as METHODS

    parser = commands.add_parser(
        "rebalance", help="rebalance a dataset's (facet, label) groups, with a before/after pre-training bias report",
        description="Bring every (facet value, label value) group of DATA to the same number of rows, as SageMaker "
        "Data Wrangler's Rebalance data does, with imbalanced-learn, seeded. Writes rebalanced.<ext> (the input's "
        "format), rebalance.json and report.html (CI, DPL, KL, JS, LP, TVD and KS before and after, each with its "
        "change) to --output.")
    parser.add_argument("data", metavar="DATA", help="the dataset: .csv, .jsonl or .parquet")
    parser.add_argument("--label", required=True, help="the label column")
    parser.add_argument("--facet", required=True, help="the facet (sensitive attribute) column")
    parser.add_argument("--method", choices=METHODS, default="random-oversample",
                        help="random-undersample: each group down to the smallest; random-oversample (default): rows "
                        "repeated up to the largest; smote: synthetic rows interpolated between neighbours (numeric "
                        "columns); smotenc: SMOTE for mixed numeric and categorical columns")
    parser.add_argument("--label-values", type=csv_list, default=["1"],
                        help="the positive label value(s), comma-separated, for the report (default: 1)")
    parser.add_argument("--facet-values", type=csv_list,
                        help="the facet's sensitive value(s), comma-separated, or a threshold on a continuous facet "
                        "(default: each value against the rest)")
    parser.add_argument("--facet-type", choices=("categorical", "continuous"),
                        help="override smclarify's rule for whether the facet is continuous")
    parser.add_argument("--seed", type=int, default=0, help="the samplers' seed (default: 0)")
    parser.add_argument("--output", "-o", required=True, help="output directory")
    return {"rebalance": run}


def run(args: argparse.Namespace) -> int:
    from fmeval.bias.rebalance import rebalance
    from fmeval.errors import UserError

    path, kind, frame = read_table(args.data)
    result = rebalance(frame, label=args.label, facet=args.facet, method=args.method,
                       label_values=args.label_values, facet_values=args.facet_values, facet_type=args.facet_type,
                       seed=args.seed)
    output = Path(args.output)
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--output {output}: cannot make the directory: {exc.strerror or exc}") from None
    target = output / f"rebalanced{path.suffix.lower()}"
    if kind == "text/csv":
        result.data.to_csv(target, index=False)
    elif kind == "application/x-parquet":
        result.data.to_parquet(target, index=False)
    else:
        result.data.to_json(target, orient="records", lines=True)
    summary = {"data": str(target), "method": args.method, "seed": args.seed, "rows_before": len(frame),
               "rows_after": len(result.data), "label": args.label, "facet": args.facet,
               "groups": [{"facet": str(f), "label": _plain(v), **counts} for (f, v), counts in
                          result.cells.to_dict(orient="index").items()],
               "pre_training_bias_metrics": [
                   {"facet": f, "value_or_threshold": g, "name": m, **{k: _number(row[k]) for k in row.index}}
                   for (f, g, m), row in result.report.iterrows()]}
    (output / "rebalance.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (output / "report.html").write_text(_html(summary), encoding="utf-8")
    print(f"{args.method}: {len(frame)} rows -> {len(result.data)}")
    for entry in summary["pre_training_bias_metrics"]:
        print(f"{entry['facet']}={entry['value_or_threshold']} {entry['name']}: {_shown(entry['before'])} -> "
              f"{_shown(entry['after'])} (change {_shown(entry['change'])})")
    print(f"Results: {target}, {output}/rebalance.json, {output}/report.html")
    return EXIT_OK


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _number(value: Any) -> float | None:
    """JSON has no NaN: an undefined metric is null."""
    value = float(value)
    return None if math.isnan(value) else value


def _shown(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _html(summary: dict[str, Any]) -> str:
    from fmeval.html import CSP, STYLE, esc

    rows = "".join(f"<tr><th>{esc(e['facet'])}={esc(e['value_or_threshold'])}</th><th>{esc(e['name'])}</th>"
                   + "".join(f'<td class="num">{esc(_shown(e[k]))}</td>' for k in ("before", "after", "change"))
                   + "</tr>" for e in summary["pre_training_bias_metrics"])
    groups = "".join(f"<tr><th>{esc(g['facet'])}</th><th>{esc(g['label'])}</th><td class=\"num\">{g['before']}</td>"
                     f"<td class=\"num\">{g['after']}</td></tr>" for g in summary["groups"])
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\"><title>fmeval rebalance</title>"
            f"<style>{STYLE}</style></head><body><h1>Rebalancing: {esc(summary['method'])} (seed {summary['seed']})</h1>"
            f"<p>{summary['rows_before']} rows before, {summary['rows_after']} after.</p>"
            "<h2>Rows per group</h2><table><tr><th>facet</th><th>label</th><th>before</th><th>after</th></tr>"
            f"{groups}</table><h2>Pre-training bias</h2><table><tr><th>facet group</th><th>metric</th><th>before</th>"
            f"<th>after</th><th>change</th></tr>{rows}</table></body></html>")
