"""`fmeval datasets` and `fmeval evaluations`: what can be evaluated, and on what."""
from __future__ import annotations

import argparse
import json
from typing import Any, Callable

from fmeval.cli.common import EXIT_OK


def add_parsers(commands: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    datasets = commands.add_parser("datasets", help="list, describe or fetch built-in datasets")
    actions = datasets.add_subparsers(dest="datasets_command", metavar="ACTION", required=True)
    actions.add_parser("list", help="list the built-in datasets")
    actions.add_parser("show", help="describe one built-in dataset").add_argument("name")
    fetch = actions.add_parser("fetch", help="download and verify built-in datasets into the cache")
    fetch.add_argument("names", nargs="+", metavar="NAME")
    fetch.add_argument("--dataset-mirror", help="directory holding built-in dataset files")

    evaluations = commands.add_parser("evaluations", help="list the evaluations")
    evaluation_actions = evaluations.add_subparsers(dest="evaluations_command", metavar="ACTION", required=True)
    evaluation_actions.add_parser("list", help="list the evaluations and their metrics")
    return {"datasets": run_datasets, "evaluations": run_evaluations}


def run_datasets(args: argparse.Namespace) -> int:
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


def run_evaluations(_: argparse.Namespace) -> int:
    from fmeval.algorithms import evaluation_names

    names = evaluation_names()  # the built-ins, then those plugins register
    width = max(map(len, names))
    for name, description in names.items():
        print(f"{name:<{width}}  {description}")
    return EXIT_OK
