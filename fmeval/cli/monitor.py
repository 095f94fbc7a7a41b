"""`fmeval capture` and `fmeval monitor`: capture a deployed model's traffic, and its ground truth."""
from __future__ import annotations

import argparse
from typing import Any, Callable

from fmeval.cli.common import EXIT_FAILURE, EXIT_OK


def add_parsers(commands: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    capture = commands.add_parser("capture", help="capture a deployed model's requests and responses")
    actions = capture.add_subparsers(dest="capture_command", metavar="ACTION", required=True)
    serve = actions.add_parser(
        "serve", help="a reverse proxy in front of any JSON endpoint that captures every request and response",
        description="Forwards every request to --upstream and returns its answer unchanged (streamed answers "
        "chunk by chunk), writing each event in SageMaker's data-capture layout to --output/NAME/yyyy/mm/dd/hh/ "
        "before the response completes. Authorization, Cookie and --redact-header values are never written.")
    serve.add_argument("--upstream", required=True, help="the endpoint's base URL, e.g. http://127.0.0.1:8000")
    serve.add_argument("--output", "-o", required=True, help="the capture directory")
    serve.add_argument("--name", default="capture", help="a folder for this endpoint's events (default: capture)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--sampling-percentage", type=float, default=100.0, help="share of events kept (seeded)")
    serve.add_argument("--seed", type=int, default=0)
    serve.add_argument("--max-file-mb", type=float, default=64.0, help="start a new file past this size")
    serve.add_argument("--rotate-seconds", type=float, default=3600.0, help="start a new file after this long")
    serve.add_argument("--redact-header", action="append", default=[], help="a header never written; repeatable")
    serve.add_argument("--attribute-header", action="append", default=[],
                       help="a request header recorded as a custom attribute; repeatable")

    monitor = commands.add_parser("monitor", help="monitoring of captured traffic")
    monitor_actions = monitor.add_subparsers(dest="monitor_command", metavar="ACTION", required=True)
    ground_truth = monitor_actions.add_parser("ground-truth", help="labels for captured events")
    truth_actions = ground_truth.add_subparsers(dest="ground_truth_command", metavar="ACTION", required=True)
    add = truth_actions.add_parser("add", help="labels keyed by event id (JSON Lines or CSV: eventId, label)")
    add.add_argument("file")
    add.add_argument("--ground-truth", required=True, help="the ground-truth directory")
    add.add_argument("--capture", help="the capture directory, to report labels for unknown event ids")

    quality = monitor_actions.add_parser("data-quality", help="data-quality baselines and checks (Model Monitor's files)")
    quality_actions = quality.add_subparsers(dest="quality_command", metavar="ACTION", required=True)
    baseline = quality_actions.add_parser("baseline", help="statistics.json and constraints.json of the baseline data")
    check = quality_actions.add_parser(
        "check", help="violations and drift of a window against a baseline",
        description="Writes statistics.json, constraint_violations.json and drift.json to --output. Exit codes: "
        "0 no violation, 1 violations (with --fail-on-violations), 2 bad input.")
    for command in (baseline, check):
        command.add_argument("--data", required=True,
                             help="a capture directory, or CSV, Parquet or JSON Lines files (a file, folder or glob)")
        command.add_argument("--part", choices=("input", "output"), default="input",
                             help="for a capture: the requests (input, default) or the responses (output)")
        command.add_argument("--output", "-o", required=True, help="where the JSON files go")
    baseline.add_argument("--comparison-threshold", type=float, default=0.1,
                          help="the L-infinity distance that counts as baseline drift (default 0.1)")
    check.add_argument("--baseline", required=True, help="the baseline's directory")
    check.add_argument("--fail-on-violations", action="store_true", help="exit 1 when there are violations")
    return {"capture": run_capture, "monitor": run_monitor}


def run_capture(args: argparse.Namespace) -> int:
    from fmeval.monitoring.capture import CaptureWriter
    from fmeval.monitoring.proxy import serve

    writer = CaptureWriter(args.output, name=args.name, sampling_percentage=args.sampling_percentage, seed=args.seed,
                           max_file_bytes=int(args.max_file_mb * (1 << 20)), max_file_seconds=args.rotate_seconds)
    serve(args.upstream, writer, host=args.host, port=args.port, redact_headers=args.redact_header,
          attribute_headers=args.attribute_header)
    return EXIT_OK


def run_monitor(args: argparse.Namespace) -> int:
    if args.monitor_command == "data-quality":
        return _data_quality(args)
    return _ground_truth(args)


def _data_quality(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    from fmeval.errors import UserError
    from fmeval.monitoring import data_quality as dq
    from fmeval.monitoring.capture import ReadStats

    stats = ReadStats()
    current = dq.profile(dq.blocks(args.data, part=args.part, stats=stats))
    for skipped in stats.skipped[:5]:
        print(f"fmeval: skipped {skipped}", file=sys.stderr)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "statistics.json").write_text(dq.dumps(dq.statistics_json(current)), encoding="utf-8")
    if args.quality_command == "baseline":
        if current.rows == 0:
            raise UserError(f"no data in {args.data}: a baseline needs rows")
        (output / "constraints.json").write_text(
            dq.dumps(dq.constraints_json(current, comparison_threshold=args.comparison_threshold)), encoding="utf-8")
        (output / "profile.json").write_text(json.dumps(dq.profile_to_json(current)), encoding="utf-8")
        print(f"baseline of {current.rows} rows, {len(current.columns)} columns: {output}")
        return EXIT_OK
    baseline_dir = Path(args.baseline)
    try:
        baseline = dq.profile_from_json(json.loads((baseline_dir / "profile.json").read_text(encoding="utf-8")))
        constraints = json.loads((baseline_dir / "constraints.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"--baseline {baseline_dir}: not a baseline made by `fmeval monitor data-quality baseline` "
                        f"({exc})") from None
    result = dq.check(baseline, constraints, current)
    (output / "constraint_violations.json").write_text(dq.dumps({"violations": result["violations"]}), encoding="utf-8")
    (output / "drift.json").write_text(dq.dumps(result["drift"]), encoding="utf-8")
    if result["status"] == "NoData":
        print(f"no data in {args.data}: nothing to check")
        return EXIT_OK
    dataset = result["drift"]["dataset"]
    print(f"{result['status']}: {len(result['violations'])} violation(s); {dataset['drifted_columns']} of "
          f"{dataset['columns']} columns drifted{' (dataset drift)' if dataset['dataset_drift'] else ''}; {output}")
    for violation in result["violations"][:20]:
        print(f"  {violation['feature_name']}: {violation['constraint_check_type']}: {violation['description']}")
    return EXIT_FAILURE if result["violations"] and args.fail_on_violations else EXIT_OK


def _ground_truth(args: argparse.Namespace) -> int:
    import sys

    from fmeval.monitoring.ground_truth import add_ground_truth, merge

    added = add_ground_truth(args.file, args.ground_truth)
    print(f"added {added} label(s) to {args.ground_truth}")
    if args.capture:
        merged = merge(args.capture, args.ground_truth)
        print(f"{len(merged.pairs)} captured event(s) have a label, {merged.unlabelled_events} have none")
        if merged.unknown_event_ids:
            print(f"fmeval: {len(merged.unknown_event_ids)} label(s) name event ids the capture does not hold "
                  f"(first: {', '.join(merged.unknown_event_ids[:5])})", file=sys.stderr)
        for skipped in merged.capture.skipped[:5]:
            print(f"fmeval: skipped {skipped}", file=sys.stderr)
    return EXIT_OK
