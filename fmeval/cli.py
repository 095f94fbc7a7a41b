"""The `fmeval` command. Subcommands map one-to-one onto the Python API.

Exit codes: 0 success, 2 bad usage or bad input (the message says what and where),
1 an unexpected failure.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
# run flags that become evaluation options / model options (dest -> option name)
EVALUATION_FLAGS = {
    "metrics": "metrics",
    "bertscore_model": "bertscore_model",
    "bertscore_num_layers": "bertscore_num_layers",
    "rouge_type": "rouge_type",
    "valid_labels": "valid_labels",
    "logical_operator": "logical_operator",
    "multiclass_average": "multiclass_average",
    "perturbation": "perturbation",
    "num_perturbations": "num_perturbations",
    "perturbation_seed": "seed",
    "detector": "detector",
    "detoxify_model": "detoxify_model",
    "detoxify_checkpoint": "detoxify_checkpoint",
    "toxigen_model": "toxigen_model",
}
MODEL_FLAGS = {
    "max_new_tokens": "max_new_tokens",
    "batch_size": "batch_size",
    "temperature": "temperature",
    "top_p": "top_p",
    "dtype": "dtype",
    "device": "device",
    "system_prompt": "system_prompt",
    "chat_template": "chat_template",
    "base_url": "base_url",
    "api": "api",
    "api_key_env": "api_key_env",
    "timeout": "timeout_s",
    "region": "region",
    "content_template": "content_template",
    "output_jmespath": "output",
    "log_probability_jmespath": "log_probability",
}
ENGINE_FLAGS = {
    "max_concurrency": "max_concurrency",
    "max_retries": "max_retries",
    "requests_per_minute": "requests_per_minute",
    "tokens_per_minute": "tokens_per_minute",
}
FIELD_FLAGS = ("model_input", "target_output", "category", "context", "model_output", "record_id", "record_filter")
CONFIG_KEYS = {
    "evaluation", "dataset", "model", "output", "num_records", "seed", "prompt_template", "dataset_fields",
    "dataset_mirror", "skip_bad_records", "evaluation_options", "model_options", "n_bootstrap", "overwrite",
    "engine_options", "cache", "cache_dir", "chunk_size",
}


def _csv_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fmeval",
        description="Evaluate foundation models: batched, reproducible, with confidence intervals.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="evaluate a model on a dataset",
        description="Evaluate a model on a dataset and write records.jsonl and summary.json to --output. "
        "Model specs: 'smollm2' (default, bundled), a directory or hub id, a .gguf file, "
        "'function:module:callable', 'openai:MODEL' (with --base-url), 'bedrock:MODEL_ID', "
        "'sagemaker:ENDPOINT'. Re-running into the same --output with the same configuration resumes.",
    )
    run.add_argument("--config", help="YAML file whose keys mirror these flags (flags win)")
    run.add_argument("--evaluation", "-e", help="evaluation name (see `fmeval evaluations list`)")
    run.add_argument("--dataset", "-d", help="built-in dataset name, or a .jsonl/.json/.csv/.parquet file")
    run.add_argument("--model", "-m", help="model spec (default: smollm2)")
    run.add_argument("--output", "-o", help="run directory (default: runs/EVALUATION-DATASET-TIME)")
    run.add_argument("--num-records", "-n", type=int, help="seeded uniform sample of this many records (default: all)")
    run.add_argument("--seed", type=int, help="seed for sampling, generation and bootstrap (default: 0)")
    run.add_argument("--prompt-template", help="prompt template with $model_input (and optionally $context)")
    run.add_argument("--dataset-mirror", help="directory holding built-in dataset files (or FMEVAL_DATASET_MIRROR)")
    run.add_argument("--skip-bad-records", action="store_true", default=None, help="skip and count bad records")
    run.add_argument("--overwrite", action="store_true", default=None, help="start again instead of resuming --output")
    run.add_argument("--n-bootstrap", type=int, help="bootstrap resamples for confidence intervals (default: 1000)")
    run.add_argument("--chunk-size", type=int, help="records evaluated (and saved) together (default: 32 batches locally, 256 hosted)")
    run.add_argument("--cache-dir", help="response cache location (default: the user cache directory)")
    run.add_argument("--no-cache", dest="cache", action="store_false", default=None, help="do not cache responses")
    run.add_argument("--max-error-rate", type=float,
                     help="exit 1 when more than this fraction of records ended with a model error")
    run.add_argument("--json", action="store_true", help="print the summary as JSON")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    fields = run.add_argument_group("custom dataset fields (JMESPath)")
    fields.add_argument("--mime-type", dest="dataset_mime_type", help="file format when the extension does not tell")
    for name in FIELD_FLAGS:
        fields.add_argument(f"--{name.replace('_', '-')}", dest=name, help=f"JMESPath of {name}")
    options = run.add_argument_group("evaluation options")
    options.add_argument("--metrics", type=_csv_list, help="comma-separated subset of the evaluation's metrics")
    options.add_argument("--bertscore-model", help="BERTScore model: hub id, local path, or 'all-MiniLM-L6-v2'")
    options.add_argument("--bertscore-num-layers", type=int, help="BERTScore layer (needed for local models)")
    options.add_argument("--rouge-type", choices=("rouge1", "rouge2", "rougeL"))
    options.add_argument("--valid-labels", type=_csv_list, help="classification labels (default: the targets seen)")
    options.add_argument("--logical-operator", choices=("OR", "AND"), help="factual_knowledge target logic")
    options.add_argument("--multiclass-average", choices=("micro", "macro", "weighted"))
    options.add_argument("--perturbation", help="butter_finger (default), random_upper_case, whitespace_add_remove, "
                         "or nlpaug:<module>.<Class>")
    options.add_argument("--num-perturbations", type=int, help="perturbed prompts per record (default: 5)")
    options.add_argument("--perturbation-seed", type=int, help="seed of the perturbations (default: 0)")
    options.add_argument("--detector", choices=("detoxify", "toxigen"), help="toxicity classifier (default: detoxify)")
    options.add_argument("--detoxify-model", choices=("original", "unbiased", "multilingual"))
    options.add_argument("--detoxify-checkpoint", help="a local Detoxify checkpoint file (offline)")
    options.add_argument("--toxigen-model", help="ToxiGen classifier: hub id or local directory")
    model = run.add_argument_group("model options")
    model.add_argument("--max-new-tokens", type=int)
    model.add_argument("--batch-size", type=int)
    model.add_argument("--temperature", type=float, help="0 (default) is greedy")
    model.add_argument("--top-p", type=float)
    model.add_argument("--dtype", choices=("auto", "float32", "float16", "bfloat16"))
    model.add_argument("--device", help="e.g. cpu, cuda, cuda:1 (default: cuda if present)")
    model.add_argument("--system-prompt")
    model.add_argument("--chat-template", action=argparse.BooleanOptionalAction, default=None)
    model.add_argument("--base-url", help="OpenAI-compatible server, e.g. http://localhost:8000/v1")
    model.add_argument("--api", choices=("chat", "completions"), help="OpenAI-compatible API (default: chat)")
    model.add_argument("--api-key-env", help="name of the environment variable holding the API key")
    model.add_argument("--timeout", type=float, help="seconds per request (hosted models)")
    model.add_argument("--region", help="AWS region (Bedrock, SageMaker)")
    model.add_argument("--content-template", help="JSON request body with $prompt (Bedrock invoke_model, SageMaker)")
    model.add_argument("--output-jmespath", help="where the output text is in the response (with --content-template)")
    model.add_argument("--log-probability-jmespath", help="where a log-probability is in the response")
    engine = run.add_argument_group("requests")
    engine.add_argument("--max-concurrency", type=int, help="requests in flight at once (hosted models)")
    engine.add_argument("--max-retries", type=int, help="retries of a failed request before recording an error")
    engine.add_argument("--requests-per-minute", type=float)
    engine.add_argument("--tokens-per-minute", type=float)

    datasets = commands.add_parser("datasets", help="list, describe or fetch built-in datasets")
    dataset_commands = datasets.add_subparsers(dest="datasets_command", metavar="ACTION", required=True)
    dataset_commands.add_parser("list", help="list the built-in datasets")
    show = dataset_commands.add_parser("show", help="describe one built-in dataset")
    show.add_argument("name")
    fetch = dataset_commands.add_parser("fetch", help="download and verify built-in datasets into the cache")
    fetch.add_argument("names", nargs="+", metavar="NAME")
    fetch.add_argument("--dataset-mirror")

    runs = commands.add_parser("runs", help="list, show or delete runs in the run store")
    runs.add_argument("--store", help="run store file (default: FMEVAL_RUN_STORE or the user data directory)")
    run_commands = runs.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    listing = run_commands.add_parser("list", help="list runs, newest first")
    listing.add_argument("--model", help="only runs whose model name contains this")
    listing.add_argument("--evaluation", help="only runs of this evaluation")
    listing.add_argument("--dataset", help="only runs on this dataset")
    run_commands.add_parser("show", help="everything indexed about one run").add_argument("run_id")
    run_commands.add_parser("delete", help="remove a run from the store (its files stay)").add_argument("run_id")

    report = commands.add_parser(
        "report", help="render runs side by side as HTML, Markdown or JSON",
        description="One self-contained report of the given runs (ids or output directories): scores with "
        "95%% CIs, charts, per-category results, best and worst examples, provenance, and each later run "
        "compared with the first run of the same evaluation and dataset.",
    )
    report.add_argument("runs", nargs="+", metavar="RUN", help="run id or output directory")
    report.add_argument("--output", "-o", required=True, help="the report file")
    report.add_argument("--format", choices=("html", "md", "json"), help="default: from the file extension, else html")
    report.add_argument("--labels", type=_csv_list, help="comma-separated column names, one per run")
    report.add_argument("--examples", type=int, default=5, help="best and worst examples per metric (default: 5)")
    report.add_argument("--store", help="run store file")

    compare = commands.add_parser(
        "compare", help="compare a candidate run with a baseline and gate on regressions",
        description="Per metric: baseline, candidate, delta, and (from per-record scores) a 95%% bootstrap CI "
        "of the delta and a p-value: paired when the runs share record ids, unpaired otherwise. Exit "
        "codes: 0 passed, 1 a gate failed, 2 bad usage or runs that cannot be compared.",
    )
    compare.add_argument("baseline", metavar="BASELINE")
    compare.add_argument("candidate", metavar="CANDIDATE")
    compare.add_argument("--fail-if", action="append", default=[], metavar="METRIC<VALUE",
                         help="fail when the candidate's metric is below (or <=, >, >=) VALUE; repeatable")
    compare.add_argument("--max-drop", action="append", default=[], metavar="METRIC=AMOUNT",
                         help="fail when the metric is worse than the baseline's by more than AMOUNT; repeatable")
    compare.add_argument("--require-significant", action="store_true",
                         help="count a drop only when its 95%% CI excludes 0")
    compare.add_argument("--markdown", help="also write the summary as Markdown to this file (for a PR comment)")
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON")
    compare.add_argument("--n-bootstrap", type=int, default=2000)
    compare.add_argument("--seed", type=int, default=0)
    compare.add_argument("--store", help="run store file")

    analyze = commands.add_parser(
        "analyze", help="bias metrics and explanations for tabular models (SageMaker Clarify's config)",
        description="Run a SageMaker Clarify analysis configuration locally: pre- and post-training bias "
        "metrics, KernelSHAP and partial dependence. Writes analysis.json, explanations_shap/out.csv and "
        "report.html to --output.",
    )
    analyze.add_argument("--config", required=True, help="analysis_config.json")
    analyze.add_argument("--data", required=True, help="the dataset (CSV, JSON Lines or Parquet, per dataset_type)")
    analyze.add_argument("--output", "-o", required=True, help="output directory")
    analyze.add_argument("--trust-model", action="store_true",
                         help="allow loading the predictor's joblib/pickle file (it runs code: only for files you trust)")
    analyze.add_argument("--n-jobs", type=int, help="processes for SHAP (default: all cores)")

    evaluations = commands.add_parser("evaluations", help="list the evaluations")
    evaluation_commands = evaluations.add_subparsers(dest="evaluations_command", metavar="ACTION", required=True)
    evaluation_commands.add_parser("list", help="list the evaluations and their metrics")
    return parser


def _load_config(path: str) -> dict[str, Any]:
    import yaml

    from fmeval.errors import UserError

    try:
        with open(path, encoding="utf-8") as handle:
            config = yaml.safe_load(handle) or {}
    except OSError as exc:
        raise UserError(f"cannot read config {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(config, dict):
        raise UserError(f"{path}: the config must be a mapping of option names to values")
    unknown = sorted(set(config) - CONFIG_KEYS)
    if unknown:
        raise UserError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(CONFIG_KEYS))}")
    return config


def _run(args: argparse.Namespace) -> int:
    from fmeval.errors import UserError
    from fmeval.pipeline import evaluate

    config = _load_config(args.config) if args.config else {}
    for key in ("evaluation", "dataset", "model", "output", "num_records", "seed", "prompt_template",
                "dataset_mirror", "skip_bad_records", "overwrite", "n_bootstrap", "chunk_size", "cache", "cache_dir"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    for flags, key in (
        (EVALUATION_FLAGS, "evaluation_options"), (MODEL_FLAGS, "model_options"), (ENGINE_FLAGS, "engine_options")
    ):
        chosen = {option: getattr(args, dest) for dest, option in flags.items() if getattr(args, dest) is not None}
        config[key] = {**(config.get(key) or {}), **chosen}
    fields = {name: getattr(args, name) for name in (*FIELD_FLAGS, "dataset_mime_type") if getattr(args, name)}
    config["dataset_fields"] = {**(config.get("dataset_fields") or {}), **fields} or None
    for key in ("evaluation", "dataset"):
        if not config.get(key):
            raise UserError(f"fmeval run needs --{key} (or `{key}:` in --config)")
    summary = evaluate(**config, progress=not args.no_progress and sys.stderr.isatty())
    if args.json:
        print(summary.to_json())
        return EXIT_OK
    print(f"{summary.eval_name} on {summary.dataset_name}: {summary.num_records} records, "
          f"{summary.num_errors} errors, {summary.num_skipped_records} skipped")
    width = max(len(score.name) for score in summary.dataset_scores)
    for score in summary.dataset_scores:
        if score.value is None:
            print(f"  {score.name:<{width}}  n/a ({score.error})")
            continue
        interval = f"  95% CI [{score.ci_lower:.3f}, {score.ci_upper:.3f}]" if score.ci_lower is not None else ""
        print(f"  {score.name:<{width}}  {score.value:.4f}{interval}")
    print(f"Results: {summary.output_path}")
    if args.max_error_rate is not None and summary.num_records:
        rate = summary.num_errors / summary.num_records
        if rate > args.max_error_rate:
            print(f"fmeval: {summary.num_errors} of {summary.num_records} records ended with a model error "
                  f"({rate:.1%} > --max-error-rate {args.max_error_rate:.1%})", file=sys.stderr)
            return EXIT_FAILURE
    return EXIT_OK


def _datasets(args: argparse.Namespace) -> int:
    from fmeval.datasets.registry import DATASETS, get_dataset
    from fmeval.datasets.sources import locate

    if args.datasets_command == "list":
        width = max(map(len, DATASETS))
        for dataset in DATASETS.values():
            print(f"{dataset.name:<{width}}  {', '.join(dataset.evaluations)}")
        return EXIT_OK
    if args.datasets_command == "show":
        dataset = get_dataset(args.name)
        print(json.dumps(
            {
                "name": dataset.name, "description": dataset.description, "license": dataset.license,
                "evaluations": list(dataset.evaluations), "fields": dataset.fields,
                "record_filter": dataset.record_filter, "prompt_template": dataset.prompt_template,
                "files": [{"path": f.path, "url": f.url, "sha256": f.sha256} for f in dataset.files],
                "notes": dataset.notes,
            },
            indent=2,
        ))
        return EXIT_OK
    for name in args.names:
        dataset = get_dataset(name)
        for source in dataset.files:
            print(f"{name}: {locate(name, source, mirror=args.dataset_mirror)}")
    return EXIT_OK


def _runs(args: argparse.Namespace) -> int:
    from fmeval.reports.store import RunStore

    with RunStore(args.store) as store:
        if args.runs_command == "list":
            runs = store.list(model=args.model, evaluation=args.evaluation, dataset=args.dataset)
            for run in runs:
                headline = next((s for s in run.scores if s.get("value") is not None), None)
                score = f"{headline['name']}={headline['value']:.4f}" if headline else "no scores"
                status = "  [output directory missing]" if run.missing else ""
                print(f"{run.run_id}  {run.created_at}  {run.evaluation:<24} {run.dataset:<20} {run.model:<28} "
                      f"{score}{status}")
            if not runs:
                print(f"no runs in {store.path}")
            return EXIT_OK
        if args.runs_command == "show":
            run = store.get(args.run_id)
            print(json.dumps({**vars(run), "output_dir_missing": run.missing}, indent=2))
            return EXIT_OK
        run = store.delete(args.run_id)
        print(f"deleted {run.run_id} from the store; its files in {run.output_dir} are untouched")
        return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fmeval.reports.render import build_report, render_html, render_markdown
    from fmeval.reports.runs import load_runs

    output = Path(args.output)
    fmt = args.format or {".md": "md", ".json": "json"}.get(output.suffix.lower(), "html")
    report = build_report(load_runs(args.runs, store=args.store, labels=args.labels), examples=args.examples)
    if fmt == "json":
        text = json.dumps(report, indent=2, allow_nan=False)
    else:
        text = render_markdown(report) if fmt == "md" else render_html(report)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    print(f"Report: {output}")
    return EXIT_OK


def _compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fmeval.reports.compare import apply_gates, compare_runs, parse_gates, to_markdown
    from fmeval.reports.runs import load_runs

    gates = parse_gates(args.fail_if, args.max_drop)
    baseline, candidate = load_runs([args.baseline, args.candidate], store=args.store)
    comparison = compare_runs(baseline, candidate, n_bootstrap=args.n_bootstrap, seed=args.seed)
    apply_gates(comparison, gates, require_significant=args.require_significant)
    markdown = to_markdown(comparison)
    if args.markdown:
        Path(args.markdown).write_text(markdown, encoding="utf-8")
    print(json.dumps(comparison.to_dict(), indent=2) if args.json else markdown)
    if not comparison.passed:
        failed = [gate.gate for gate in comparison.gates if not gate.passed]
        print(f"fmeval: regression: {', '.join(failed)}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _analyze(args: argparse.Namespace) -> int:
    from fmeval.bias.analyze import analyze, load_config

    config = load_config(args.config)
    if args.trust_model and config.get("predictor"):
        config["predictor"] = {**config["predictor"], "trusted": True}
    result = analyze(config, args.data, args.output, n_jobs=args.n_jobs)
    for stage in ("pre_training_bias_metrics", "post_training_bias_metrics"):
        for facet, entries in result.get(stage, {}).get("facets", {}).items():
            for entry in entries:
                values = ", ".join(f"{m['name']}={m['value']:.4f}" for m in entry["metrics"])
                print(f"{stage.split('_')[0]}-training, {facet}={entry['value_or_threshold']}: {values}")
    print(f"Results: {args.output}/analysis.json, {args.output}/report.html")
    return EXIT_OK


def _evaluations(_: argparse.Namespace) -> int:
    from fmeval.algorithms import EVALUATIONS

    width = max(map(len, EVALUATIONS))
    for name, (_, _, description) in EVALUATIONS.items():
        print(f"{name:<{width}}  {description}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.version:
        from fmeval.version import __version__

        print(__version__)
        return EXIT_OK
    handlers = {"run": _run, "datasets": _datasets, "evaluations": _evaluations, "runs": _runs, "report": _report,
                "compare": _compare, "analyze": _analyze}
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    from fmeval.errors import UserError

    try:
        return handlers[args.command](args)
    except UserError as exc:
        print(f"fmeval: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("fmeval: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
