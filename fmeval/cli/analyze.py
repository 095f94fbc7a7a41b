"""`fmeval analyze`: SageMaker Clarify's analysis configuration, run locally."""
from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from fmeval.cli.common import EXIT_OK


STAGES = {"pre_training_bias_metrics": "pre-training", "post_training_bias_metrics": "post-training",
          "detection_bias_metrics": "detection"}


def add_parsers(commands: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    parser = commands.add_parser(
        "analyze", help="bias metrics and explanations for tabular, text and image models (SageMaker Clarify's config)",
        description="Run a SageMaker Clarify analysis configuration locally: pre- and post-training bias "
        "metrics (and detection bias for object detectors), KernelSHAP over features, text units (text_config) or "
        "superpixels (image_config), and partial dependence. Writes analysis.json, report.html and "
        "explanations_shap/ (out.csv; out.jsonl with text_heatmap.html or PNG overlays) to --output.",
    )
    parser.add_argument("--config", required=True, help="analysis_config.json")
    parser.add_argument("--data", required=True,
                        help="the dataset (CSV, JSON Lines or Parquet, per dataset_type); for application/x-image, "
                        "a folder of images or a JSON Lines manifest with source-ref")
    parser.add_argument("--output", "-o", required=True, help="output directory")
    parser.add_argument("--trust-model", action="store_true",
                        help="allow loading the predictor's joblib/pickle file (it runs code: only for files you trust)")
    parser.add_argument("--n-jobs", type=int, help="processes for SHAP (default: all cores)")
    parser.add_argument("--stream", action="store_true",
                        help="compute the bias metrics block by block, for data larger than memory (--data may be a "
                        "folder or a glob of Parquet or CSV files); FT is not computed this way")
    parser.add_argument("--backend", choices=("local", "ray"), default="local",
                        help="ray: bias metrics block by block on Ray Data, KernelSHAP rows over Ray workers "
                        "(connects to RAY_ADDRESS, or starts a local instance)")
    return {"analyze": run}


def run(args: argparse.Namespace) -> int:
    from fmeval.bias.analyze import analyze, load_config

    config = load_config(args.config)
    result = analyze(config, args.data, args.output, trust_model=args.trust_model, n_jobs=args.n_jobs,
                     stream=args.stream, backend=args.backend)
    for stage, shown in STAGES.items():
        for facet, entries in result.get(stage, {}).get("facets", {}).items():
            for entry in entries:
                values = ", ".join(f"{m['name']}={_shown(m['value'])}" for m in entry["metrics"])
                print(f"{shown}, {facet}={entry['value_or_threshold']}: {values}")
    from fmeval.bias.report import LEFT_OUT

    for key, what in LEFT_OUT.items():
        if key in result:
            left_out = result[key]
            print(f"fmeval: {left_out['count']} row(s) {what}: {left_out['action']} (first rows: "
                  f"{', '.join(map(str, left_out['rows']))})", file=sys.stderr)
    print(f"Results: {args.output}/analysis.json, {args.output}/report.html")
    return EXIT_OK


def _shown(value: float | str | None) -> str:
    """A metric for the terminal: 4 decimals, "Infinity" as Clarify writes it, n/a when undefined."""
    if value is None:
        return "n/a"
    return value if isinstance(value, str) else f"{value:.4f}"
