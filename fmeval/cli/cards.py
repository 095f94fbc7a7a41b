"""`fmeval cards`: model cards with versions, a review lifecycle, auto-fill from runs, and exports."""
from __future__ import annotations

import argparse
from typing import Any, Callable

from fmeval.cli.common import EXIT_OK, STORE_FLAGS, STORE_OPTIONS

ACTIONS = {
    "create": "a new card (Draft), from a JSON file, runs, analyses and --set fields",
    "edit": "a new version of a card's content",
    "show": "a card (a version of it) and its status",
    "list": "the cards",
    "clone": "a new Draft card with another card's content",
    "delete": "remove a card and its versions (the event log keeps that it was)",
    "versions": "a card's versions: who, when, what changed",
    "diff": "the difference between two versions",
    "export": "the card as SageMaker JSON, Markdown, HTML or PDF",
    "import": "a card from SageMaker's JSON content (validated field by field)",
    "submit": "Draft -> PendingReview, for the version named (--version N)",
    "approve": "PendingReview -> Approved, for the version named (not by anyone who wrote a version since the last "
               "approved one)",
    "reject": "PendingReview -> Draft, for the version named",
    "archive": "-> Archived (final), for the version named",
    "webhooks": "add, list or remove the URLs that receive card events",
}


REVIEWS = ("submit", "approve", "reject", "archive")
DELIVERY_WITHIN_S = 10.0  # how long a command waits for its events' webhooks before leaving them to the outbox
DELIVERY_TIMEOUT_S = 5.0  # one POST's timeout


def add_parsers(commands: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    cards = commands.add_parser("cards", help="model cards: versions, review, exports (SageMaker's schema)")
    actions = cards.add_subparsers(dest="cards_command", metavar="ACTION", required=True)
    parsers = {name: actions.add_parser(name, help=text) for name, text in ACTIONS.items()}
    for name, parser in parsers.items():
        parser.add_argument(*STORE_FLAGS, **STORE_OPTIONS)
        if name not in ("list", "import", "webhooks"):
            parser.add_argument("name")
        if name in ("create", "edit", "clone", "delete", "submit", "approve", "reject", "archive", "import", "webhooks"):
            parser.add_argument("--as", dest="actor", help="who acts (default: FMEVAL_USER, else the login name)")
    for name in ("create", "edit"):
        parser = parsers[name]
        parser.add_argument("--file", help="the card's content as JSON (SageMaker's schema)")
        parser.add_argument("--from-run", action="append", default=[], metavar="RUN",
                            help="a run id or directory: its model and evaluation (scores, CIs, dataset sha256)")
        parser.add_argument("--from-analysis", action="append", default=[], metavar="DIR",
                            help="an `fmeval analyze` output: its bias metrics and SHAP values")
        parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                            help="e.g. intended_uses.risk_rating=Medium; repeatable")
        parser.add_argument("--note", help="why this version")
    parsers["edit"].add_argument("--based-on", type=int,
                                 help="the version this edit starts from (default: the latest); a later save is a conflict")
    parsers["show"].add_argument("--version", type=int, help="the version to show (default: the latest)")
    parsers["show"].add_argument("--json", action="store_true", help="the content as SageMaker's JSON")
    parsers["list"].add_argument("--status", choices=("Draft", "PendingReview", "Approved", "Archived"))
    parsers["clone"].add_argument("new_name")
    parsers["diff"].add_argument("old", type=int)
    parsers["diff"].add_argument("new", type=int)
    parsers["export"].add_argument("--format", required=True, choices=("json", "md", "html", "pdf"))
    parsers["export"].add_argument("--output", "-o", required=True)
    parsers["export"].add_argument("--version", type=int, help="the version to export (default: the approved one, "
                                                               "else the latest)")
    parsers["import"].add_argument("file")
    parsers["import"].add_argument("--name", required=True)
    for name in REVIEWS:
        parsers[name].add_argument("--version", type=int,
                                   help="the version acted on; without it, the command shows the current version and "
                                        "asks (on a terminal) or needs --yes")
        parsers[name].add_argument("--sha256", dest="content_hash", metavar="HASH",
                                   help="the content hash of the version acted on, as `cards show` prints it (default: "
                                        "that of --version, read now)")
        parsers[name].add_argument("--comment", "--note", dest="comment", help="the reviewer's comment, kept with the "
                                                                                "version's history and its event")
        parsers[name].add_argument("--yes", "-y", action="store_true",
                                   help="act on the current version without asking (it is printed first)")
    parsers["webhooks"].add_argument("webhook_action", choices=("add", "list", "remove"))
    parsers["webhooks"].add_argument("url", nargs="?")
    return {"cards": run_cards}


def _validated(content: dict[str, Any], where: str) -> Any:
    from pydantic import ValidationError

    from fmeval.errors import UserError
    from fmeval.governance.cards import ModelCard, validation_errors

    try:
        return ModelCard.model_validate(content)
    except ValidationError as exc:
        raise UserError(f"{where} is not a valid model card:\n  " + "\n  ".join(validation_errors(exc))) from None


def _read_json(path: str) -> dict[str, Any]:
    from fmeval.datasets.readers import json_document
    from fmeval.errors import UserError

    try:
        content = json_document(path)  # UTF-8 and JSON errors name their line
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not isinstance(content, dict):
        raise UserError(f"{path}: a model card is a JSON object")
    return content


def _set(content: dict[str, Any], assignment: str) -> None:
    import json

    from fmeval.errors import UserError

    path, separator, text = assignment.partition("=")
    if not separator or not path:
        raise UserError(f"--set {assignment!r}: expected FIELD=VALUE, e.g. intended_uses.risk_rating=Medium")
    value: Any = text  # text; the schema's number fields read it as a number
    if text[:1] in "[{":
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"--set {path}: {text!r} is not valid JSON ({exc.msg})") from None
    node = content
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise UserError(f"--set {path}: {key} is not a section")
    node[keys[-1]] = value


def _filled(base: dict[str, Any], args: argparse.Namespace) -> Any:
    """The content from --file, then --from-run and --from-analysis, then --set, validated."""
    import json
    from pathlib import Path

    from fmeval.governance.cards import from_analysis, from_run
    from fmeval.runs.loaded import load_run

    content = _read_json(args.file) if args.file else base
    card = _validated(content, args.file or "the card")
    for spec in args.from_run:
        overview, job = from_run(load_run(spec, store=args.store_url))
        for key, value in overview.items():
            if getattr(card.model_overview, key) in (None, []):
                setattr(card.model_overview, key, value)
        card.add_evaluation(job)
    for directory in args.from_analysis:
        analysis = _read_json(str(Path(directory) / "analysis.json"))
        card.add_evaluation(from_analysis(analysis, name=f"analysis {Path(directory).resolve().name}"))
    content = json.loads(card.model_dump_json())
    for assignment in args.set:
        _set(content, assignment)
    return _validated(content, "the card with --set")


def run_cards(args: argparse.Namespace) -> int:
    from fmeval.governance.store import CardStore

    with CardStore(args.store_url) as store:
        code = _run(store, args)
        if args.cards_command not in ("show", "list", "versions", "diff", "export"):
            _deliver(store.database)
        return code


def _deliver(database: Any) -> None:
    """Deliver what this command committed (and anything left pending by an earlier one)."""
    import logging

    from sqlalchemy import func, select

    from fmeval.store.outbox import PENDING, outbox_table, settle

    settle(database, within_s=DELIVERY_WITHIN_S, timeout_s=DELIVERY_TIMEOUT_S)
    with database.reading() as connection:
        left = connection.execute(select(func.count()).where(outbox_table.c.status == PENDING)).scalar_one()
    if left:
        logging.getLogger("fmeval").warning("%d webhook event(s) not delivered yet stay in the store's outbox; the next "
                                            "fmeval command or the dashboard retries them", left)


def _run(store: Any, args: argparse.Namespace) -> int:
    import json

    from fmeval.errors import UserError

    action = args.cards_command
    actor = getattr(args, "actor", None)
    if action == "create":
        version = store.create(args.name, _filled({}, args), author=actor, note=args.note)
        print(f"model card {args.name}: version 1, Draft, by {version.author}")
    elif action == "edit":
        current = store.version(args.name, args.based_on)
        card = _filled(json.loads(current.card.model_dump_json()), args)
        version = store.save(args.name, card, based_on=current.version, author=actor, note=args.note)
        print(f"model card {args.name}: version {version.version}, Draft, by {version.author}")
    elif action == "show":
        version = store.version(args.name, args.version)
        if args.json:
            print(json.dumps(version.card.to_sagemaker(), indent=2))
        else:
            stored = store.get(args.name)
            print(f"{args.name}: {stored.status}, version {version.version} of {stored.version}, by {version.author} at "
                  f"{version.created_at}, sha256 {version.content_hash}"
                  + (f"; approved v{stored.approved_version} by {stored.approved_by}" if stored.approved_by else ""))
            print(json.dumps(version.card.to_sagemaker(), indent=2))
    elif action == "list":
        cards = store.list(status=args.status)
        for card in cards:
            print(f"{card.name}\t{card.status}\tv{card.version}\t{card.updated_at}")
        if not cards:
            print("no model cards")
    elif action == "clone":
        store.clone(args.name, args.new_name, author=actor)
        print(f"model card {args.new_name}: cloned from {args.name}, version 1, Draft")
    elif action == "delete":
        store.delete(args.name, actor=actor)
        print(f"deleted model card {args.name}")
    elif action == "versions":
        for version in store.versions(args.name):
            changed = sum(1 for line in version.diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---"))
            print(f"v{version.version}\t{version.created_at}\t{version.author}\t{changed} line(s) changed\t"
                  f"{version.note or ''}")
            for review in version.reviews:
                print(f"\t{review['time']}\t{review['actor']}\t{review['action']}"
                      + (f"\t{review['comment']}" if review["comment"] else ""))
    elif action == "diff":
        print(store.diff(args.name, args.old, args.new) or "no difference", end="")
    elif action == "export":
        from fmeval.governance.export import card_meta, export

        version, meta = card_meta(store, args.name, args.version)
        print(f"wrote {export(args.name, version.card, meta, args.format, args.output)}: {meta['basis']}")
    elif action == "import":
        store.create(args.name, _validated(_read_json(args.file), args.file), author=actor, note=f"imported from {args.file}")
        print(f"model card {args.name}: imported from {args.file}, version 1, Draft")
    elif action == "webhooks":
        if args.webhook_action == "list":
            print("\n".join(store.webhooks()) or "no webhooks")
        elif not args.url:
            raise UserError(f"`fmeval cards webhooks {args.webhook_action}` needs a URL")
        elif args.webhook_action == "add":
            store.add_webhook(args.url, actor=actor)
        else:
            store.remove_webhook(args.url, actor=actor)
    else:
        version, content_hash = _reviewed_version(store, args)
        card = getattr(store, action)(args.name, version=version, content_hash=content_hash, actor=actor,
                                      comment=args.comment)
        print(f"model card {args.name}: {card.status} (version {card.version}, sha256 {content_hash})")
    return EXIT_OK


def _reviewed_version(store: Any, args: argparse.Namespace) -> tuple[int, str]:
    """The version a review action names, and its content hash; without --version, the current
    one, shown first and confirmed (a prompt on a terminal, else --yes)."""
    import sys

    from fmeval.errors import UserError

    if args.version is not None:
        return args.version, args.content_hash or store.version(args.name, args.version).content_hash
    stored, version = store.get(args.name), store.version(args.name)
    shown = (f"{args.cards_command} model card {args.name} version {version.version} ({stored.status}), sha256 "
             f"{version.content_hash}, risk {version.card.intended_uses.risk_rating or 'Unknown'}, by {version.author} "
             f"at {version.created_at}")
    if args.content_hash and args.content_hash != version.content_hash:
        raise UserError(f"{shown}: not the --sha256 {args.content_hash} given; name the version with --version N")
    if args.yes:
        print(shown, file=sys.stderr)
    elif sys.stdin.isatty():
        answer = input(f"{shown}\nProceed? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise UserError("not confirmed: nothing changed")
    else:
        raise UserError(f"{shown}: name the version acted on with --version {version.version}, or confirm with --yes "
                        "(no terminal to ask on)")
    return version.version, version.content_hash
