"""`ccas console`: serve the QA console (uvicorn, 127.0.0.1 by default, HTTPS with a certificate), and
`ccas console user add NAME --role R`, which reads the password from a prompt or, with --password-stdin, from standard input
(never from the command line, which every user of the machine can read in `ps`)."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys

from console.settings import CONSOLE_ENVIRONMENT_ONLY, ConsoleSettings, ConsoleUserSettings
from console.users import ROLES
from core.config import add_flags, load_for_command, secret

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ccas console", description="the QA console (calls, agents, operations)")
    add_flags(parser, ConsoleSettings, skip=CONSOLE_ENVIRONMENT_ONLY)
    return parser


def build_user_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ccas console user", description="manage the console's users")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="create a user (the password is asked for, or read from stdin)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    add_flags(add, ConsoleUserSettings)
    return parser


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def user_main(argv: list[str]) -> int:
    import psycopg2

    from console.users import add_user, check_new_user

    args = build_user_parser().parse_args(argv)
    settings = load_for_command(ConsoleUserSettings, args, "ccas console user add")
    try:
        check_new_user(args.name, args.role, "x" * 64)  # name and role first: no point asking for a password then
        password = _password(args.password_stdin)
        connection = psycopg2.connect(secret(settings.database_url), connect_timeout=5)
        try:
            add_user(connection, args.name, args.role, password)
            connection.commit()
        finally:
            connection.close()
    except ValueError as error:
        print(f"ccas console user add: {error}", file=sys.stderr)
        return 2
    print(f"user {args.name} ({args.role}) added")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["user"]:
        return user_main(argv[1:])
    import uvicorn

    from console.app import create_app

    args = build_parser().parse_args(argv)
    settings = load_for_command(ConsoleSettings, args, "ccas console")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.ERROR)
    tls = settings.uvicorn_tls()
    scheme = "https" if tls else "http"
    log.info("QA console on %s://%s:%d", scheme, settings.console_host, settings.console_port)
    uvicorn.run(create_app(settings), host=settings.console_host, port=settings.console_port, log_level="warning", **tls)
    return 0
