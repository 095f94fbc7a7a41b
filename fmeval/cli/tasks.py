"""`fmeval tasks`: the benchmark task catalogue (`list`), and which task files of a directory run (`check`)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

from fmeval.cli.common import EXIT_FAILURE, EXIT_OK, csv_list
from fmeval.errors import UserError


def add_parsers(commands: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    tasks = commands.add_parser("tasks", help="list benchmark tasks, or check a directory of task YAML files")
    actions = tasks.add_subparsers(dest="tasks_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list the shipped tasks and groups (and those of --include-path)")
    listing.add_argument("--include-path", type=csv_list, default=[], metavar="DIR,DIR",
                         help="directories of more task YAML files")
    check = actions.add_parser("check", help="say, for each task YAML of a directory (lm-eval's included), "
                                             "whether fmeval runs it, and why not")
    check.add_argument("directory")
    return {"tasks": run_tasks}


def run_tasks(args: argparse.Namespace) -> int:
    from fmeval.tasks import find_tasks

    if args.tasks_command == "list":
        catalogue = find_tasks(args.include_path)
        for name, task in sorted(catalogue.tasks.items()):
            problems = task.problems()
            print(f"{name:<45} {task.output_type:<22} {'cannot run: ' + problems[0] if problems else ''}".rstrip())
        for name, members in sorted(catalogue.groups.items()):
            print(f"{name:<45} group of {', '.join(members)}")
        return EXIT_OK
    directory = Path(args.directory)
    if not directory.is_dir():
        raise UserError(f"fmeval tasks check: {directory} is not a directory")
    catalogue = find_tasks([directory])
    runs = failing = 0
    for name, task in sorted(catalogue.tasks.items()):
        if not Path(task.source).is_relative_to(directory.resolve()) and not Path(task.source).is_relative_to(directory):
            continue
        problems = task.problems()
        runs += not problems
        failing += bool(problems)
        print(f"{task.source}: {name}: " + ("runs" if not problems else "cannot run: " + "; ".join(problems)))
    for path, reason in sorted(catalogue.unreadable.items()):
        failing += 1
        print(f"{path}: cannot run: {reason}")
    print(f"{runs} runnable, {failing} not")
    return EXIT_OK if runs else EXIT_FAILURE
