"""The `fmeval` command. Each subcommand lives in its own module and maps onto the Python API.

Exit codes: 0 success; 1 a verdict failed (a regression in `compare`, too many model errors
in `run`); 2 bad usage or bad input (the message says what and where); 3 an unexpected
internal error (a bug: the message says so); 130 interrupted; 141 the output pipe closed
(e.g. `| head`).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Callable, Sequence

from fmeval.cli import (analyze, cards, dashboard, datasets, human, mitigate, models, monitor, rebalance, results, run,
                        serve, tasks)
from fmeval.cli.common import EXIT_BROKEN_PIPE, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE

COMMANDS = (run, datasets, tasks, results, analyze, rebalance, mitigate, human, serve, monitor, cards, models, dashboard)
"""Modules with `add_parsers(commands) -> {name: handler}`; handlers take the parsed arguments."""


def parser() -> tuple[argparse.ArgumentParser, dict[str, Callable[[argparse.Namespace], int]]]:
    top = argparse.ArgumentParser(
        prog="fmeval",
        description="Evaluate foundation models and classic ML models: batched, reproducible, with confidence intervals.",
    )
    # its own dest: a subcommand's --version (a card's version) must never read as this one
    top.add_argument("--version", dest="show_version", action="store_true",
                     help="print fmeval's version and exit (before any command)")
    commands = top.add_subparsers(dest="command", metavar="COMMAND")
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {}
    for module in COMMANDS:
        handlers.update(module.add_parsers(commands))
    _add_create_flags(top)
    return top, handlers


def _add_create_flags(parser: argparse.ArgumentParser, *, inherited: bool = False) -> None:
    """`--create` beside every `--store`: a store file that does not exist is made only when asked
    for (a mistyped path is an error, not a new empty store). Below a parser that has it already
    (`runs --create list` and `runs list --create`), it leaves the parent's value alone unless given."""
    here = any(action.dest == "store_url" for action in parser._actions)
    if here:
        parser.add_argument("--create", dest="create_store", action="store_true",
                            **({"default": argparse.SUPPRESS} if inherited else {}),
                            help="make the --store file if it does not exist (without it, a missing file is an error)")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _add_create_flags(child, inherited=inherited or here)


def _check_store(args: argparse.Namespace) -> None:
    """A --store path must exist unless --create is given (the default store is made when needed)."""
    from pathlib import Path

    from fmeval.errors import UserError

    location = getattr(args, "store_url", None)
    if location and "://" not in location and not getattr(args, "create_store", False) \
            and not Path(location).expanduser().exists():
        raise UserError(f"--store {location}: no such store file; check the path, or add --create to make a new store "
                        "there")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top, handlers = parser()
    command = next((i for i, word in enumerate(argv) if not word.startswith("-")), None)
    if command is not None and argv[command] == "run":  # its flags are many: built only when asked for
        args, handler = run.parser().parse_args(argv[command + 1 :]), run.run
    else:
        args = top.parse_args(argv)
        if args.show_version:
            from fmeval.version import __version__

            print(__version__)
            return EXIT_OK
        if args.command is None:
            top.print_help()
            return EXIT_USAGE
        handler = handlers[args.command]
    from fmeval.errors import UserError

    _show_warnings()
    try:
        _check_store(args)
        code = handler(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the try, not at interpreter exit
        return code
    except UserError as exc:
        print(f"fmeval: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        print(f"fmeval: {exc or 'interrupted'}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as exc:  # a bug: say so in one line, never as a verdict (exit 1 means "regression")
        if os.environ.get("FMEVAL_DEBUG"):
            raise
        print(f"fmeval: internal error: {type(exc).__name__}: {exc} (this is a bug in fmeval; FMEVAL_DEBUG=1 shows "
              f"the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (it may be replaced, e.g. by a test harness)."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _show_warnings() -> None:
    """fmeval's warnings (e.g. a missing API key on a local server) go to stderr, one line each."""
    logger = logging.getLogger("fmeval")
    if not any(isinstance(handler, _StderrHandler) for handler in logger.handlers):
        handler = _StderrHandler()
        handler.setLevel(logging.WARNING)
        handler.setFormatter(logging.Formatter("fmeval: %(levelname)s: %(message)s"))
        logger.addHandler(handler)


def _silence_stdout() -> None:
    """The reader of our output went away: further writes (and the final flush) must not raise."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
