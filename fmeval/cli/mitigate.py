"""`fmeval mitigate`: a classifier refitted under a fairness constraint, with a before/after report."""
from __future__ import annotations

import argparse
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Callable

from fmeval.cli.common import EXIT_OK, csv_list, read_table

def add_parsers(commands: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    from fmeval.bias.names import CONSTRAINTS, SEARCH_METRICS
    from fmeval.bias.names import MITIGATION_METHODS as METHODS

    parser = commands.add_parser(
        "mitigate", help="mitigate a scikit-learn classifier's bias with fairlearn, with a before/after report",
        description="Fit a scikit-learn-compatible classifier on DATA with and without one of fairlearn's "
        "mitigations (split 60/20/20 into training, validation and test rows, stratified and seeded), and report "
        "accuracy and post-training bias metrics with 95% bootstrap CIs on the test rows. --search tunes the "
        "model's C and the constraint's bound with Optuna's multi-objective NSGA-II sampler and reports the Pareto "
        "front of accuracy against --metric. Writes model.joblib (the chosen model), provenance.json, "
        "mitigation.json, analysis.json (for `fmeval cards create --from-analysis`) and report.html to --output.")
    parser.add_argument("data", metavar="DATA", help="the dataset: .csv, .jsonl or .parquet; numeric features")
    parser.add_argument("--label", required=True, help="the label column")
    parser.add_argument("--label-values", type=csv_list, default=["1"], help="positive label value(s) (default: 1)")
    parser.add_argument("--facet", required=True, help="the facet (sensitive attribute) column; not a feature")
    parser.add_argument("--facet-values", type=csv_list, required=True, help="the facet's sensitive value(s)")
    parser.add_argument("--method", choices=METHODS, default="exponentiated-gradient",
                        help="fairlearn's ExponentiatedGradient or GridSearch (reductions), or ThresholdOptimizer "
                        "(default: exponentiated-gradient)")
    parser.add_argument("--constraint", choices=CONSTRAINTS, default="demographic-parity",
                        help="the fairness constraint (default: demographic-parity)")
    parser.add_argument("--model", metavar="FILE",
                        help="a joblib file of a scikit-learn-compatible classifier to refit (needs --trust-model); "
                        "default: logistic regression")
    parser.add_argument("--trust-model", action="store_true",
                        help="allow loading --model (a joblib file runs code: only for files you trust)")
    parser.add_argument("--search", action="store_true",
                        help="search C and the constraint's bound for the Pareto front of accuracy against --metric")
    parser.add_argument("--n-trials", type=int, default=20, help="--search's trials (default: 20)")
    parser.add_argument("--metric", choices=SEARCH_METRICS, default="DPPL",
                        help="the post-training metric searched against (default: DPPL)")
    parser.add_argument("--max-bias", type=float, default=0.1,
                        help="the chosen point's largest |metric - ideal| (ideal: 1 for DI, else 0; default: 0.1)")
    parser.add_argument("--seed", type=int, default=0, help="the split's, sampler's and bootstrap's seed (default: 0)")
    parser.add_argument("--output", "-o", required=True, help="output directory")
    return {"mitigate": run}


def run(args: argparse.Namespace) -> int:
    from fmeval.bias.mitigate import mitigate
    from fmeval.errors import UserError

    estimator = _estimator(args.model, args.trust_model)
    path, _, frame = read_table(args.data)
    result = mitigate(frame, label=args.label, facet=args.facet, facet_values=args.facet_values,
                      label_values=args.label_values, method=args.method, constraint=args.constraint,
                      estimator=estimator, search=args.search, n_trials=args.n_trials, metric=args.metric,
                      max_bias=args.max_bias, seed=args.seed)
    output = Path(args.output)
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--output {output}: cannot make the directory: {exc.strerror or exc}") from None
    import joblib

    joblib.dump(result.chosen.model, output / "model.joblib")
    summary = _summary(result)
    provenance = {"data": str(path.resolve()), "data_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                  "model_file": "model.joblib", "versions": _versions(), **result.settings,
                  "chosen": summary["chosen"]["name"], "params": result.chosen.params,
                  "predicts_with": "predict(X, sensitive_features=facet)" if args.method == "threshold-optimizer"
                  else "predict(X)", "test_rows": result.test_rows}
    _write(output / "provenance.json", provenance)
    _write(output / "mitigation.json", summary)
    analysis = {"version": "1.0",
                "post_training_bias_metrics": result.test_frame.analysis_section("post", sorted(
                    {*summary["reported_metrics"]}), label_name=args.label),
                "mitigation": summary}
    _write(output / "analysis.json", analysis)
    (output / "report.html").write_text(_html(summary), encoding="utf-8")
    for row in (summary["baseline"], summary["chosen"]):
        print(f"{row['name']}: accuracy {row['accuracy']:.4f}, {args.metric} {_shown(row['metrics'][args.metric])}")
    if args.search:
        print(f"{len(summary['candidates'])} candidates, {sum(c['on_front'] for c in summary['candidates'])} on the "
              f"Pareto front; chosen {summary['chosen']['name']}: {summary['rule']}")
    print(f"Results: {output}/model.joblib, provenance.json, mitigation.json, analysis.json, report.html")
    return EXIT_OK


def _estimator(model: str | None, trusted: bool) -> Any:
    from fmeval.errors import UserError

    if model is None:
        return None
    if not trusted:
        raise UserError("--model: loading a joblib file runs its code; pass --trust-model for a file you trust")
    import joblib

    try:
        estimator = joblib.load(model)
    except (OSError, EOFError, ValueError, ImportError, AttributeError) as exc:
        raise UserError(f"--model {model}: cannot be loaded: {exc}") from None
    if not hasattr(estimator, "fit") or not hasattr(estimator, "get_params"):
        raise UserError(f"--model {model}: not a scikit-learn-compatible estimator (fit and get_params)")
    return estimator


def _number(value: Any) -> float | str | None:
    value = float(value)
    if math.isnan(value):
        return None
    return ("Infinity" if value > 0 else "-Infinity") if math.isinf(value) else value


def _candidate(candidate: Any) -> dict[str, Any]:
    metrics = candidate.metrics
    return {"name": candidate.name, "params": candidate.params, "accuracy": candidate.accuracy,
            "bias": _number(candidate.bias), "on_front": candidate.on_front,
            "metrics": {name: _number(metrics.loc[name, "value"]) for name in metrics.index},
            "ci": {name: [_number(metrics.loc[name, "ci_low"]), _number(metrics.loc[name, "ci_high"])]
                   for name in metrics.index}}


def _summary(result: Any) -> dict[str, Any]:
    return {"settings": result.settings, "split": result.split, "rule": result.rule,
            "reported_metrics": list(result.chosen.metrics.index),
            "baseline": {**_candidate(result.baseline), "judged_on": "test"},
            "chosen": {**_candidate(result.chosen), "judged_on": "test"},
            "candidates": [{**_candidate(c), "judged_on": "validation"} for c in result.candidates]}


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in ("fmeval", "fairlearn", "scikit-learn", "optuna")}


def _write(path: Path, content: Any) -> None:
    path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")


def _shown(value: Any) -> str:
    return "n/a" if value is None else value if isinstance(value, str) else f"{value:.4f}"


def _html(summary: dict[str, Any]) -> str:
    from fmeval.html import CSP, STYLE, esc

    names = summary["reported_metrics"]

    def row(entry: dict[str, Any], where: str) -> str:
        cells = "".join(f'<td class="num">{esc(_shown(entry["metrics"][n]))} '
                        f'[{esc(_shown(entry["ci"][n][0]))}, {esc(_shown(entry["ci"][n][1]))}]</td>' for n in names)
        mark = " (front)" if entry.get("on_front") else ""
        return (f"<tr><th>{esc(entry['name'])}{mark}</th><td>{esc(where)}</td><td>{esc(json.dumps(entry['params']))}"
                f"</td><td class=\"num\">{entry['accuracy']:.4f}</td>{cells}</tr>")

    header = ("<tr><th>model</th><th>rows</th><th>parameters</th><th>accuracy</th>"
              + "".join(f"<th>{esc(n)} [95% CI]</th>" for n in names) + "</tr>")
    settings = summary["settings"]
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\"><title>fmeval mitigate</title>"
            f"<style>{STYLE}</style></head><body><h1>Bias mitigation: {esc(settings['method'])}, "
            f"{esc(settings['constraint'])}</h1><p>Chosen: {esc(summary['chosen']['name'])}, {esc(summary['rule'])}.</p>"
            f"<h2>Before and after (test rows)</h2><table>{header}{row(summary['baseline'], 'test')}"
            f"{row(summary['chosen'], 'test')}</table><h2>Candidates (validation rows)</h2><table>{header}"
            + "".join(row(c, "validation") for c in summary["candidates"]) + "</table></body></html>")
