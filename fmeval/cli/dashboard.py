"""`fmeval dashboard` (the web app) and `fmeval users` (its accounts)."""
from __future__ import annotations

import argparse
from typing import Any, Callable

from fmeval.cli.common import EXIT_OK, STORE_FLAGS, STORE_OPTIONS


def add_parsers(commands: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    dashboard = commands.add_parser(
        "dashboard", help="the web dashboard: models, runs, monitors and model cards, for several users",
        description="Serves on 127.0.0.1 by default. Another address needs --tls-cert and --tls-key (or "
        "--allow-insecure-remote behind a TLS proxy). Add users first with `fmeval users add`.")
    dashboard.add_argument("--host", default="127.0.0.1")
    dashboard.add_argument("--port", type=_port, default=8800, help="the TCP port (1-65535; default 8800)")
    dashboard.add_argument("--tls-cert", help="a PEM certificate: serve HTTPS (and Secure cookies)")
    dashboard.add_argument("--tls-key", help="its PEM private key")
    dashboard.add_argument("--allow-insecure-remote", action="store_true",
                           help="serve plain HTTP beyond loopback (only behind a proxy that adds TLS)")
    dashboard.add_argument("--forwarded-allow-ips", metavar="IPS",
                           help="proxies whose X-Forwarded-Proto, -For and -Host headers are trusted, as uvicorn's "
                           "option of that name: comma-separated addresses or networks, or '*' (default: "
                           "$FORWARDED_ALLOW_IPS, else 127.0.0.1)")
    dashboard.add_argument(*STORE_FLAGS, **STORE_OPTIONS)
    users = commands.add_parser("users", help="the dashboard's users: add, list, remove")
    actions = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="a user with a role: viewer, editor, approver or admin")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=("viewer", "editor", "approver", "admin"))
    add.add_argument("--password-env", help="read the password from this variable (default: ask)")
    remove = actions.add_parser("remove", help="remove a user and end their sessions")
    remove.add_argument("username")
    listed = actions.add_parser("list", help="the users and their roles")
    for parser in (add, remove, listed):
        parser.add_argument(*STORE_FLAGS, **STORE_OPTIONS)
    return {"dashboard": run_dashboard, "users": run_users}


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"a TCP port is a number from 1 to 65535, got {text!r}")
    return int(text)


def run_dashboard(args: argparse.Namespace) -> int:
    from fmeval.dashboard.app import serve

    if bool(args.tls_cert) != bool(args.tls_key):
        from fmeval.errors import UserError

        raise UserError("--tls-cert and --tls-key go together")
    serve(args.store_url, host=args.host, port=args.port, certfile=args.tls_cert, keyfile=args.tls_key,
          allow_insecure_remote=args.allow_insecure_remote, forwarded_allow_ips=args.forwarded_allow_ips)
    return EXIT_OK


def run_users(args: argparse.Namespace) -> int:
    from fmeval.dashboard.accounts import Accounts, password_from_environment
    from fmeval.store import Database

    with Database(args.store_url) as database:
        accounts = Accounts(database)
        if args.users_command == "add":
            if args.password_env:
                password = password_from_environment(args.password_env)
            else:
                import getpass

                password = getpass.getpass(f"password for {args.username}: ")
            accounts.add_user(args.username, password, args.role)
            print(f"user {args.username}: {args.role}")
        elif args.users_command == "remove":
            accounts.remove_user(args.username)
            print(f"removed user {args.username}")
        else:
            for user in accounts.users():
                print(f"{user.username}\t{user.role}")
    return EXIT_OK
