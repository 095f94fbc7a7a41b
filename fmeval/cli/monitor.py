"""`fmeval capture` and `fmeval monitor`: capture a deployed model's traffic, and its ground truth."""
from __future__ import annotations

import argparse
from typing import Any, Callable

from fmeval.cli.common import EXIT_OK


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
