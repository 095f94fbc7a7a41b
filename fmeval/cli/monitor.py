"""`fmeval capture` and `fmeval monitor`: capture a deployed model's traffic, and its ground truth."""
from __future__ import annotations

import argparse
from typing import Any, Callable

from fmeval.cli.common import EXIT_FAILURE, EXIT_OK, STORE_FLAGS, STORE_OPTIONS, check_listen_address, csv_list
from fmeval.monitoring import MONITOR_KINDS
from fmeval.monitoring.options import LABEL, OPTIONS


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
    serve.add_argument("--upstream-timeout", type=float, metavar="SECONDS",
                       help="answer 504 'upstream timed out' when the upstream takes longer than this to its last "
                            "byte (default: no limit of the proxy's own; the client's timeout applies)")

    monitor = commands.add_parser("monitor", help="monitoring of captured traffic: baselines, checks, schedules, alarms")
    monitor_actions = monitor.add_subparsers(dest="monitor_command", metavar="ACTION", required=True)
    ground_truth = monitor_actions.add_parser("ground-truth", help="labels for captured events")
    truth_actions = ground_truth.add_subparsers(dest="ground_truth_command", metavar="ACTION", required=True)
    add = truth_actions.add_parser("add", help="labels keyed by event id (JSON Lines or CSV: eventId, label)")
    add.add_argument("file")
    add.add_argument("--ground-truth", required=True, help="the ground-truth directory")
    add.add_argument("--capture", help="the capture directory, to report labels for unknown event ids")

    for name, help_text in MONITOR_KINDS.items():
        _add_kind(monitor_actions, name, help_text)
    _add_schedules(monitor_actions)
    return {"capture": run_capture, "monitor": run_monitor}


DATA_HELP = "a capture directory, or a CSV, Parquet or JSON Lines file"


def _add_kind(actions: Any, name: str, help_text: str) -> None:
    parser = actions.add_parser(name, help=help_text)
    steps = parser.add_subparsers(dest="step", metavar="ACTION", required=True)
    baseline = steps.add_parser("baseline", help=f"the {name} baseline of reference data (writes monitor.json)")
    check = steps.add_parser(
        "check", help="check data (a capture's window, or files) against a baseline",
        description="Writes result.json, constraint_violations.json and the monitor's own files to --output. "
        "Exit codes: 0 checked, 1 violations (with --fail-on-violations), 2 bad input.")
    for command in (baseline, check):
        command.add_argument("--data", required=True, help=DATA_HELP)
        command.add_argument("--window", help="only the captured events of START/END (ISO 8601, UTC by default)")
        command.add_argument("--ground-truth", help="a ground-truth directory (labels merged by event id)")
        command.add_argument("--output", "-o", required=True, help="where the files go")
    check.add_argument("--baseline", required=True, help="the baseline's directory")
    check.add_argument("--fail-on-violations", action="store_true", help="exit 1 when there are violations")
    if name == "data-quality":
        check.add_argument("--backend", choices=("local", "ray"), help="ray: one Ray Data job over the files "
                                                                       "(default: the baseline's)")
    if name in ("bias-drift", "attribution-drift"):
        baseline.add_argument("--config", required=True, help=(
            "a Clarify analysis config (YAML or JSON) as for `fmeval analyze`, with its bias methods and the ranges "
            "of its `thresholds` (e.g. DPPL: [-0.1, 0.1])" if name == "bias-drift" else
            "a Clarify analysis config (YAML or JSON) as for `fmeval analyze`, with methods.shap and a predictor"))
    baseline.add_argument("--options", metavar="FILE", help=f"a YAML or JSON file of {name} options, keyed as the "
                          "flags below (e.g. comparison_threshold); flags win; the baseline keeps them in monitor.json")
    _add_option_flags(baseline.add_argument_group(f"{name} options (kept in monitor.json)"), OPTIONS[name])


def _add_option_flags(group: Any, model: Any) -> None:
    """One flag per field of the kind's options model (the model's docstrings are the help)."""
    from fmeval.cli.run import _kind

    for field_name, info in model.model_fields.items():
        extra = info.json_schema_extra or {}
        if extra.get("cli") is False:
            continue
        flag = extra.get("flag") or "--" + field_name.replace("_", "-")
        default = info.get_default(call_default_factory=True)
        shown = f" (default: {default})" if default not in (None, {}, []) and not extra.get("required") else ""
        options: dict[str, Any] = {"dest": field_name, "default": argparse.SUPPRESS,
                                   "help": ((info.description or "") + shown).replace("%", "%%")}
        if extra.get("required"):
            options["required"] = True
        if "pairs" in extra:
            options.update(action="append", metavar=extra["metavar"])
        else:
            kind, choices = _kind(info.annotation) if info.annotation != LABEL else (str, None)
            if kind is bool:
                options["action"] = argparse.BooleanOptionalAction if default else "store_true"
            else:
                options["type"] = csv_list if kind is list else kind
                options["metavar"] = "A,B" if kind is list else field_name.split("_")[-1].upper()
                if choices:
                    options["choices"], options["metavar"] = choices, None
        group.add_argument(flag, **options)


def _add_schedules(actions: Any) -> None:
    schedule = actions.add_parser("schedule", help="monitoring schedules: create, list, show, start, stop, delete")
    steps = schedule.add_subparsers(dest="schedule_command", metavar="ACTION", required=True)
    create = steps.add_parser(
        "create", help="check a capture against a baseline on a cron schedule",
        description="Each run checks the window between two cron times, once that window has ended (an hourly "
        "schedule checks the previous hour). Alarms follow CloudWatch: 'METRIC OP VALUE [for M of N]'.")
    create.add_argument("name", help="the schedule's name (also the folder of its executions)")
    create.add_argument("--kind", choices=tuple(MONITOR_KINDS), help="the monitor kind (read from the baseline when left out)")
    create.add_argument("--baseline", required=True, help="a baseline directory made by `fmeval monitor KIND baseline`")
    create.add_argument("--capture", required=True, help="the capture directory to check")
    create.add_argument("--ground-truth", help="the ground-truth directory (model quality, bias)")
    create.add_argument("--model", help="the model it watches, as `fmeval runs list` names it (for the model registry)")
    create.add_argument("--cron", required=True, help="when windows end, e.g. '0 * * * *' (hourly, UTC)")
    create.add_argument("--output", "-o", required=True, help="where each execution's files go")
    create.add_argument("--start", help="the first window's start (ISO 8601; default: the last cron time)")
    create.add_argument("--alarm", action="append", default=[], metavar="'METRIC OP VALUE [for M of N]'",
                        help="e.g. 'drifted_columns >= 3 for 2 of 3'; repeatable")
    create.add_argument("--webhook", help="POST each alarm's change of state here (JSON, retried)")
    create.add_argument("--cloudwatch-namespace", help="send each execution's metrics to CloudWatch (boto3)")
    create.add_argument("--cloudwatch-region", help="the CloudWatch region (default: boto3's)")
    for step in ("list", "show", "start", "stop", "delete"):
        command = steps.add_parser(step, help={"list": "the schedules", "show": "a schedule and its executions",
                                               "start": "resume a stopped schedule", "stop": "pause a schedule",
                                               "delete": "remove a schedule and its executions (files stay)"}[step])
        if step != "list":
            command.add_argument("name")
        command.add_argument(*STORE_FLAGS, **STORE_OPTIONS)
    create.add_argument(*STORE_FLAGS, **STORE_OPTIONS)

    scheduler = actions.add_parser("scheduler", help="run due windows of every started schedule, now and on",
                                   description="Runs every ended window that has no execution yet (missed ones "
                                   "too, oldest first, each once), then polls. Safe to restart at any time.")
    scheduler.add_argument("--poll-seconds", type=float, default=30.0, help="how often to look for due windows (default 30)")
    scheduler.add_argument("--once", action="store_true", help="run what is due and exit")
    scheduler.add_argument(*STORE_FLAGS, **STORE_OPTIONS)

    run = actions.add_parser("run", help="run one window of a schedule now (by hand, cron or CI)",
                             description="Exit codes: 0 OK, 1 an alarm is in ALARM (or violations, with "
                             "--fail-on-violations), 2 bad input.")
    run.add_argument("name", help="the schedule")
    run.add_argument("--window", help="START/END, ended (default: the last ended window)")
    run.add_argument("--rerun", action="store_true", help="run a window again that has an execution")
    run.add_argument("--fail-on-violations", action="store_true", help="exit 1 when the execution has violations")
    run.add_argument(*STORE_FLAGS, **STORE_OPTIONS)

    report = actions.add_parser("report", help="a schedule's report: HTML and JSON")
    report.add_argument("name")
    report.add_argument("--output", "-o", required=True, help="the HTML file (the JSON goes beside it)")
    report.add_argument(*STORE_FLAGS, **STORE_OPTIONS)


def run_capture(args: argparse.Namespace) -> int:
    from fmeval.errors import UserError
    from fmeval.monitoring.data_capture import CaptureWriter
    from fmeval.monitoring.proxy import check_upstream, serve

    check_upstream(args.upstream)
    if not args.max_file_mb > 0 or not args.rotate_seconds > 0:
        raise UserError(f"--max-file-mb and --rotate-seconds must be positive, got {args.max_file_mb:g} and "
                        f"{args.rotate_seconds:g}")
    writer = CaptureWriter(args.output, name=args.name, sampling_percentage=args.sampling_percentage, seed=args.seed,
                           max_file_bytes=int(args.max_file_mb * (1 << 20)), max_file_seconds=args.rotate_seconds)
    check_listen_address(args.host, args.port)  # after the options: each bad one is named, whatever the port
    serve(args.upstream, writer, host=args.host, port=args.port, redact_headers=args.redact_header,
          attribute_headers=args.attribute_header, timeout_s=args.upstream_timeout)
    return EXIT_OK


def run_monitor(args: argparse.Namespace) -> int:
    if args.monitor_command == "ground-truth":
        return _ground_truth(args)
    if args.monitor_command in ("schedule", "scheduler", "run", "report"):
        return _scheduled(args)
    return _baseline(args) if args.step == "baseline" else _check(args)


def _kind_options(args: argparse.Namespace) -> dict[str, Any]:
    """The baseline's options: the --options file, then the flags (they are kept in monitor.json for every
    later check, and checked against the kind's model there)."""
    from fmeval.monitoring.options import PAIRS

    kind = args.monitor_command
    options = _options_file(args.options) if args.options else {}
    for name, info in OPTIONS[kind].model_fields.items():
        if name not in vars(args):
            continue
        value = getattr(args, name)
        pairs = (info.json_schema_extra or {}).get("pairs")
        if pairs == "column":
            columns = {column: dict(entry) for column, entry in (options.get(name) or {}).items()}
            for column, entry in PAIRS[pairs](value).items():
                columns[column] = {**columns.get(column, {}), **entry}
            value = columns
        elif pairs:
            value = {**(options.get(name) or {}), **PAIRS[pairs](value)}
        options[name] = value
    if kind in ("bias-drift", "attribution-drift"):
        from fmeval.bias.analyze import load_config

        options["analysis_config"] = load_config(args.config)
    return options


def _options_file(path: str) -> dict[str, Any]:
    from fmeval.cli.run import _load_yaml  # YAML reads JSON too

    return _load_yaml(path)


def _window(text: str | None) -> Any:
    from fmeval.monitoring.windows import parse_window

    return parse_window(text) if text else None


def _report_skipped(result: dict[str, Any]) -> None:
    import sys

    for skipped in (result.get("skipped_lines") or [])[:5]:
        print(f"fmeval: skipped {skipped}", file=sys.stderr)


def _baseline(args: argparse.Namespace) -> int:
    from fmeval.monitoring.monitors import make_baseline

    options = {"data": args.data, "window": _window(args.window), "ground_truth": args.ground_truth,
               **_kind_options(args)}
    summary = make_baseline(args.monitor_command, options, args.output)
    _report_skipped(summary)
    print(f"{args.monitor_command} baseline of {summary['rows']} rows: {args.output}")
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    from fmeval.errors import UserError
    from fmeval.monitoring.monitors import check_window, read_monitor

    kind = read_monitor(args.baseline)["kind"]
    if kind != args.monitor_command:
        raise UserError(f"--baseline {args.baseline} is a {kind} baseline; use `fmeval monitor {kind} check`")
    result = check_window(args.baseline, args.data, _window(args.window), args.output, ground_truth=args.ground_truth,
                          backend=getattr(args, "backend", None))
    _report_skipped(result)
    _print_result(result, args.output)
    return EXIT_FAILURE if result["violations"] and args.fail_on_violations else EXIT_OK


def _print_result(result: dict[str, Any], where: Any) -> None:
    if result["status"] == "NoData":
        print(f"NoData: {result.get('reason', 'no data')}")
        return
    from fmeval.monitoring.monitors import violation_subject

    metrics = result["metrics"]
    moved = sorted((name for name in metrics if name.startswith("feature_baseline_drift_")), key=lambda name: -metrics[name])
    picked = [name for name in metrics if not name.startswith("feature_baseline_drift_")][:4] + moved[:2]
    shown = ", ".join(f"{k} {metrics[k]:.4g}" if isinstance(metrics[k], float) else f"{k} {metrics[k]}" for k in picked)
    print(f"{result['status']}: {len(result['violations'])} violation(s); {shown}; {where}")
    for violation in result["violations"][:20]:
        subject = violation_subject(violation)
        print(f"  {subject}: {violation['constraint_check_type']}: {violation['description']}")
    for key, reason in result.get("undecided", {}).items():
        print(f"  {key}: undecided: {reason}")


def _scheduled(args: argparse.Namespace) -> int:
    from fmeval.monitoring.schedules import MonitorStore

    with MonitorStore(args.store_url) as store:
        if args.monitor_command == "schedule":
            return _schedule_command(store, args)
        if args.monitor_command == "scheduler":
            return _scheduler(store, args)
        if args.monitor_command == "run":
            return _run_window(store, args)
        return _report(store, args)


def _schedule_command(store: Any, args: argparse.Namespace) -> int:
    import dataclasses
    import datetime as dt
    import json
    from pathlib import Path

    from fmeval.monitoring.alerts import parse_alarm
    from fmeval.monitoring.schedules import Schedule, check_cron, previous_tick
    from fmeval.monitoring.windows import parse_time

    action = args.schedule_command
    if action == "create":
        check_cron(args.cron)
        start = parse_time(args.start) if args.start else previous_tick(args.cron, dt.datetime.now(dt.timezone.utc))
        alarms = [dataclasses.asdict(parse_alarm(text)) for text in args.alarm]
        actions = {key: value for key, value in (("webhook", args.webhook),
                                                 ("cloudwatch_namespace", args.cloudwatch_namespace),
                                                 ("cloudwatch_region", args.cloudwatch_region)) if value}
        schedule = store.create(Schedule(name=args.name, kind=args.kind or "", baseline=str(Path(args.baseline).resolve()),
                                         capture=str(Path(args.capture).resolve()), cron=args.cron,
                                         output=str(Path(args.output).resolve()), start=start.isoformat(),
                                         ground_truth=str(Path(args.ground_truth).resolve()) if args.ground_truth else None,
                                         alarms=alarms, actions=actions, model=args.model))
        print(f"schedule {schedule.name}: {schedule.kind} on '{schedule.cron}', first window from {schedule.start}")
        return EXIT_OK
    if action == "list":
        schedules = store.list()
        if not schedules:
            print("no schedules")
        for schedule in schedules:
            executions = store.executions(schedule.name)
            last = executions[-1] if executions else None
            print(f"{schedule.name}\t{schedule.kind}\t{schedule.state}\t{schedule.cron}\t"
                  f"{len(executions)} execution(s)\t{'last: ' + last.status if last else ''}")
        return EXIT_OK
    if action == "show":
        schedule = store.get(args.name)
        print(json.dumps(dataclasses.asdict(schedule), indent=2))
        for execution in store.executions(schedule.name):
            alarms = ", ".join(f"{name} {entry['state']}" for name, entry in execution.alarms.items()
                               if not name.startswith("_"))
            print(f"{execution.window}\t{execution.status}\t{execution.violations} violation(s)\t"
                  f"{execution.reason or ''}\t{alarms}")
        return EXIT_OK
    if action in ("start", "stop"):
        schedule = store.set_state(args.name, "Scheduled" if action == "start" else "Stopped")
        print(f"schedule {schedule.name}: {schedule.state}")
        return EXIT_OK
    store.delete(args.name)
    print(f"deleted schedule {args.name} and its executions (their files stay)")
    return EXIT_OK


def _print_execution(execution: Any) -> None:
    alarms = ", ".join(f"{name} {entry['state']}" for name, entry in execution.alarms.items() if not name.startswith("_"))
    print(f"{execution.schedule} {execution.window}: {execution.status}"
          f"{' (' + execution.reason + ')' if execution.reason else ''}; {execution.violations} violation(s)"
          f"{'; alarms: ' + alarms if alarms else ''}", flush=True)


def _scheduler(store: Any, args: argparse.Namespace) -> int:
    from fmeval.monitoring.schedules import scheduler

    scheduler(store, poll_seconds=args.poll_seconds, once=args.once, on_execution=_print_execution)
    return EXIT_OK


def _run_window(store: Any, args: argparse.Namespace) -> int:
    import datetime as dt

    from fmeval.errors import UserError
    from fmeval.monitoring.schedules import execute

    schedule = store.get(args.name)
    if args.window:
        window = _window(args.window)
    else:
        ended = schedule.windows(dt.datetime.now(dt.timezone.utc))
        if not ended:
            raise UserError(f"schedule {schedule.name} has no ended window yet (first from {schedule.start}); "
                            f"pass --window START/END")
        window = ended[-1]
    execution = execute(store, schedule, window, rerun=args.rerun)
    if execution is None:
        raise UserError(f"window {window} of {schedule.name} has an execution already (or one running); "
                        f"--rerun runs it again")
    _print_execution(execution)
    alarming = any(entry.get("state") == "ALARM" for name, entry in execution.alarms.items() if not name.startswith("_"))
    failing = execution.status == "Failed" or (args.fail_on_violations and execution.violations)
    return EXIT_FAILURE if alarming or failing else EXIT_OK


def _report(store: Any, args: argparse.Namespace) -> int:
    from pathlib import Path

    from fmeval.cli.common import write_output
    from fmeval.monitoring.data_quality import dumps
    from fmeval.monitoring.report import build_report, render_report, render_window_pages

    target = Path(args.output)
    report = build_report(store, args.name, relative_to=target.parent)
    pages = f"{target.stem}-windows"  # each window's own page, beside the report
    write_output(args.output, render_report(report, pages=pages), "report")
    for name, page in render_window_pages(report, report_file=target.name).items():
        write_output(str(target.parent / pages / name), page, "report")
    json_path = target.with_suffix(".json")
    write_output(str(json_path), dumps(report), "report")
    print(f"report of {args.name}: {args.output} ({len(report['windows'])} window page(s) in "
          f"{target.parent / pages}) and {json_path}")
    return EXIT_OK


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
