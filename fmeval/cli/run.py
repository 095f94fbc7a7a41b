"""`fmeval run`: its flags and its YAML keys both come from `RunConfig` (fmeval/runs/config.py)."""
from __future__ import annotations

import argparse
import sys
import types
import typing
from typing import Any, Callable, Literal

from fmeval.cli.common import EXIT_FAILURE, EXIT_OK, csv_list
from fmeval.errors import UserError



HELP = "evaluate a model on a dataset"


def add_parsers(commands: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Only a placeholder: the real parser imports the run configuration, which `fmeval --help` need not."""
    commands.add_parser("run", help=HELP, add_help=False)
    return {"run": run}


def parser(prog: str = "fmeval run") -> argparse.ArgumentParser:
    """`fmeval run`'s parser, built from RunConfig."""
    from fmeval.runs.config import GROUPS, RunConfig

    parser = argparse.ArgumentParser(
        prog=prog,
        description="Evaluate a model on a dataset and write records.jsonl and summary.json to --output, each record "
        "saved as it completes. Running the same command again into the same --output resumes (records whose "
        "error was transient run again). Every flag is also a key of the --config YAML file: top-level flags "
        "at the top, the others under dataset_fields, evaluation_options, model_options or engine_options.",
    )
    parser.add_argument("--config", metavar="YAML", help="YAML file whose keys mirror these flags (flags win)")
    _add_fields(parser, RunConfig, prefix="")
    for group in GROUPS:
        model = RunConfig.model_fields[group].annotation
        _add_fields(parser.add_argument_group(f"{(model.__doc__ or group).strip()} ({group})"), model, f"{group}.")
    output = parser.add_argument_group("output")
    output.add_argument("--json", action="store_true", help="print the summary as JSON")
    output.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _add_fields(parser: Any, model: Any, prefix: str) -> None:
    from fmeval.runs.config import GROUPS

    for name, info in model.model_fields.items():
        extra = info.json_schema_extra or {}
        if name in GROUPS or extra.get("cli") is False:
            continue
        flags = [extra.get("flag") or "--" + name.replace("_", "-"), *([extra["alias"]] if "alias" in extra else [])]
        if "short" in extra:
            flags.insert(0, extra["short"])
        options: dict[str, Any] = {"dest": prefix + name, "default": argparse.SUPPRESS,
                                   "help": (info.description or "").replace("%", "%%")}
        kind, choices = _kind(info.annotation)
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif extra.get("action") == "append":  # a flag given once per value (e.g. one judge each)
            options.update(action="append", metavar=extra.get("metavar") or name.split("_")[-1].upper())
        else:
            options["type"] = csv_list if kind is list else kind
            options["metavar"] = extra.get("metavar") or ("A,B" if kind is list else name.split("_")[-1].upper())
            if choices:
                options["choices"], options["metavar"] = choices, None
        parser.add_argument(*flags, **options)


def _kind(annotation: Any) -> tuple[type, tuple[str, ...] | None]:
    """The flag type of a field's annotation (Optional and Annotated unwrapped), and its choices."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _kind(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        (inner,) = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return _kind(inner)
    if origin is Literal:
        return str, tuple(typing.get_args(annotation))
    if origin is list:
        return list, None
    if annotation in (bool, int, float):
        return annotation, None
    return str, None


def _load_yaml(path: str) -> dict[str, Any]:
    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            config = yaml.safe_load(handle) or {}
    except OSError as exc:
        raise UserError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not valid UTF-8 ({exc.reason})") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        raise UserError(f"{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from exc
    if not isinstance(config, dict):
        raise UserError(f"{path}: the config must be a mapping of option names to values")
    return config


def run(args: argparse.Namespace) -> int:
    from fmeval.runs.config import GROUPS, build_config
    from fmeval.runs.evaluate import evaluate

    options = _load_yaml(args.config) if args.config else {}
    for dest, value in vars(args).items():
        group, _, name = dest.rpartition(".")
        if group in GROUPS:
            if not isinstance(options.get(group, {}), dict):
                raise UserError(f"{args.config}: {group} must be a mapping")
            options[group] = {**options.get(group, {}), name: value}
        elif dest not in ("config", "json", "no_progress"):
            options[dest] = value
    options["progress"] = options.get("progress", True) and not args.no_progress and sys.stderr.isatty()
    config = build_config(options=options, source=args.config or "fmeval run")
    summary = evaluate(config)
    if args.json:
        print(summary.to_json())
    else:
        _print_summary(summary)
    return _verdict(summary, config.max_error_rate)


def _print_summary(summary: Any) -> None:
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


def _verdict(summary: Any, max_error_rate: float | None) -> int:
    """Errors are reported on stderr; the exit code is 1 when every record failed, or more than
    `max_error_rate` of them did."""
    if not summary.num_errors:
        return EXIT_OK
    from fmeval.runs.directory import RunDirectory

    rate = summary.num_errors / summary.num_records
    first = next(line for line in RunDirectory(summary.output_path).records() if line.get("error") is not None)
    print(f"fmeval: {summary.num_errors} of {summary.num_records} records ended with a model error ({rate:.1%}); "
          f"first, at {first['location']}: {first['error']}", file=sys.stderr)
    if summary.num_errors == summary.num_records:
        print("fmeval: every record failed: no score is meaningful", file=sys.stderr)
        return EXIT_FAILURE
    if max_error_rate is not None and rate > max_error_rate:
        print(f"fmeval: {rate:.1%} > --max-error-rate {max_error_rate:.1%}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK
