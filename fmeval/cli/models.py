"""`fmeval models`: the model registry (runs, monitors and cards of each model) and its lineage."""
from __future__ import annotations

import argparse
from typing import Any, Callable

from fmeval.cli.common import EXIT_OK, STORE_FLAGS, STORE_OPTIONS


def add_parsers(commands: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    models = commands.add_parser("models", help="the model registry: every model in a run, a monitor or a card")
    actions = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    actions.add_parser("list", help="the models, with their risk rating, card status, runs and monitors").add_argument(
        *STORE_FLAGS, **STORE_OPTIONS)
    show = actions.add_parser("show", help="a model's lineage: runs and datasets, analyses, monitors, cards")
    show.add_argument("key", help="the model, as `fmeval models list` names it")
    show.add_argument("--json", action="store_true")
    show.add_argument(*STORE_FLAGS, **STORE_OPTIONS)
    return {"models": run_models}


def run_models(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from fmeval.errors import UserError
    from fmeval.governance.registry import load_registry
    from fmeval.store import Database

    with Database(args.store_url) as database:
        registry = load_registry(database, model=None if args.models_command == "list" else args.key)
    if args.models_command == "list":
        if not registry:
            print("no models: run an evaluation, or make a card or a monitor")
        for key in sorted(registry):
            entry = registry[key]
            monitors = ", ".join(f"{kind} {health}" for kind, health in entry.monitor_health().items() if health != "missing")
            print(f"{key}\trisk {entry.risk_rating}\tcard {_governing(entry)}\t{len(entry.runs)} run(s)\t"
                  f"{monitors or 'no monitors'}" + (f"\tpending: {_pending(entry)}" if entry.pending else ""))
        return EXIT_OK
    entry = registry.get(args.key)
    if entry is None:
        raise UserError(f"no model {args.key!r} in the registry; see `fmeval models list`")
    if args.json:
        print(json.dumps({**dataclasses.asdict(entry), "runs": [run.as_dict() for run in entry.runs],
                          "latest_scores": entry.latest_scores(),
                          "monitor_health": entry.monitor_health(), "risk_rating": entry.risk_rating,
                          "governing_card": dataclasses.asdict(entry.card) if entry.card else None,
                          "pending": [card.name for card in entry.pending]}, indent=2))
        return EXIT_OK
    print(f"{entry.key}: risk {entry.risk_rating}, governed by {_governing(entry)}"
          + (f"; pending: {_pending(entry)}" if entry.pending else ""))
    for run in entry.runs:
        print(f"  run {run.run_id}  {run.created_at}  {run.evaluation} on {run.dataset}"
              f"{f' (sha256 {run.dataset_sha256})' if run.dataset_sha256 else ''}  {run.output_dir}")
    for card in entry.cards:
        print(f"  card {card.name}  {card.label} v{card.version}  risk {card.risk_rating or 'Unknown'}"
              f"{'  runs ' + ', '.join(card.run_ids) if card.run_ids else ''}")
    for monitor in entry.monitors:
        print(f"  monitor {monitor.name}  {monitor.kind}  {monitor.state}  {monitor.health}"
              f"{f'  last {monitor.last_window} {monitor.last_status}' if monitor.last_window else ''}")
    return EXIT_OK


def _governing(entry: Any) -> str:
    """The governing card: its approved version, by whom."""
    card = entry.card
    if card is None:
        return "none approved"
    return f"{card.name} v{card.approved_version} Approved by {card.approved_by}"


def _pending(entry: Any) -> str:
    """The drafts and versions under review, beside (never instead of) the governing card."""
    return ", ".join(f"{card.name} v{card.version} {card.status} (risk {card.risk_rating or 'Unknown'})"
                     for card in entry.pending)
