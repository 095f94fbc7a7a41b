"""`fmeval runs`, `fmeval report` and `fmeval compare`: finished runs, read through fmeval.runs."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

from fmeval.cli.common import EXIT_FAILURE, EXIT_OK, STORE_FLAGS, STORE_OPTIONS, csv_list, write_output


def add_parsers(commands: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    runs = commands.add_parser("runs", help="list, show or delete runs in the run store")
    runs.add_argument(*STORE_FLAGS, **STORE_OPTIONS)
    actions = runs.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list runs, newest first")
    listing.add_argument("--model", help="only runs whose model name contains this")
    listing.add_argument("--evaluation", help="only runs of this evaluation")
    listing.add_argument("--dataset", help="only runs on this dataset")
    actions.add_parser("show", help="everything indexed about one run").add_argument("run_id")
    actions.add_parser("delete", help="remove a run from the store (its files stay)").add_argument("run_id")

    report = commands.add_parser(
        "report", help="render runs side by side as HTML, Markdown or JSON",
        description="One self-contained report of the given runs (ids or output directories): scores with "
        "95% CIs, charts, per-category results, best and worst examples, provenance, and each later run "
        "compared with the first run of the same evaluation and dataset.",
    )
    report.add_argument("runs", nargs="+", metavar="RUN", help="run id or output directory")
    report.add_argument("--output", "-o", required=True, help="the report file")
    report.add_argument("--format", choices=("html", "md", "json"), help="default: from the file extension, else html")
    report.add_argument("--labels", type=csv_list, help="comma-separated column names, one per run")
    report.add_argument("--examples", type=int, default=5, help="best and worst examples per metric (default: 5)")
    report.add_argument(*STORE_FLAGS, **STORE_OPTIONS)

    compare = commands.add_parser(
        "compare", help="compare a candidate run with a baseline and gate on regressions",
        description="Per metric: baseline, candidate, delta, and (from per-record scores) a 95% bootstrap CI "
        "of the delta and a p-value: paired when the runs share record ids, unpaired otherwise. Exit "
        "codes: 0 passed, 1 a gate failed, 2 bad usage or runs that cannot be compared, 3 an internal error.",
    )
    compare.add_argument("baseline", metavar="BASELINE")
    compare.add_argument("candidate", metavar="CANDIDATE")
    compare.add_argument("--fail-if", action="append", default=[], metavar="METRIC<VALUE",
                         help="fail when the candidate's metric is below (or <=, >, >=) VALUE; repeatable")
    compare.add_argument("--max-drop", action="append", default=[], metavar="METRIC=AMOUNT",
                         help="fail when the metric is worse than the baseline's by more than AMOUNT; repeatable")
    compare.add_argument("--require-significant", action="store_true",
                         help="count a drop only when its 95%% CI excludes 0")
    compare.add_argument("--allow-different-judges", action="store_true",
                         help="compare runs graded by different judges (refused by default: exit 2); the output says so")
    compare.add_argument("--markdown", help="also write the summary as Markdown to this file (for a PR comment)")
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON")
    compare.add_argument("--n-bootstrap", type=int, default=2000)
    compare.add_argument("--seed", type=int, default=0)
    compare.add_argument(*STORE_FLAGS, **STORE_OPTIONS)
    return {"runs": run_runs, "report": run_report, "compare": run_compare}


def run_runs(args: argparse.Namespace) -> int:
    from fmeval.runs.store import RunStore

    with RunStore(args.store_url) as store:
        if args.runs_command == "list":
            runs = store.list(model=args.model, evaluation=args.evaluation, dataset=args.dataset)
            for run in runs:
                headline = next((s for s in run.scores if s.get("value") is not None), None)
                score = f"{headline['name']}={headline['value']:.4f}" if headline else "no scores"
                status = run.status
                note = "" if status == "ok" else f"  [{status}]"
                print(f"{run.run_id}  {run.created_at}  {run.evaluation:<24} {run.dataset:<20} {run.model:<28} "
                      f"{score}{note}")
            if not runs:
                print(f"no runs in {store.path}")
            return EXIT_OK
        if args.runs_command == "show":
            run = store.get(args.run_id)
            print(json.dumps({**vars(run), "status": run.status}, indent=2))
            return EXIT_OK
        run = store.delete(args.run_id)
        print(f"deleted {run.run_id} from the store; its files in {run.output_dir} are untouched")
        return EXIT_OK


def run_report(args: argparse.Namespace) -> int:
    from fmeval.reports.render import build_report, render_html, render_markdown
    from fmeval.runs.loaded import load_runs

    fmt = args.format or {".md": "md", ".json": "json"}.get(Path(args.output).suffix.lower(), "html")
    report = build_report(load_runs(args.runs, store=args.store_url, labels=args.labels), examples=args.examples)
    if fmt == "json":
        text = json.dumps(report, indent=2, allow_nan=False)
    else:
        text = render_markdown(report) if fmt == "md" else render_html(report)
    write_output(args.output, text, "report")
    print(f"Report: {args.output}")
    return EXIT_OK


def run_compare(args: argparse.Namespace) -> int:
    from fmeval.reports.compare import apply_gates, compare_runs, parse_gates, to_markdown
    from fmeval.runs.loaded import load_runs

    gates = parse_gates(args.fail_if, args.max_drop)
    baseline, candidate = load_runs([args.baseline, args.candidate], store=args.store_url)
    comparison = compare_runs(baseline, candidate, n_bootstrap=args.n_bootstrap, seed=args.seed,
                              allow_different_judges=args.allow_different_judges)
    if comparison.judges_differ:
        print(f"fmeval: the runs were graded by different judges: {'; '.join(comparison.judges_differ)}",
              file=sys.stderr)
    apply_gates(comparison, gates, require_significant=args.require_significant)
    markdown = to_markdown(comparison)
    if args.markdown:
        write_output(args.markdown, markdown, "Markdown summary")
    print(json.dumps(comparison.to_dict(), indent=2) if args.json else markdown)
    if not comparison.passed:
        failed = [gate.gate for gate in comparison.gates if not gate.passed]
        print(f"fmeval: regression: {', '.join(failed)}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK
