"""`ccas db migrate | downgrade | current`: Alembic against CCAS_DATABASE_URL, from anywhere in the clone."""

from __future__ import annotations

import argparse
import sys

from alembic.config import Config

from alembic import command
from ccas.settings import REPO_ROOT, setting


def sqlalchemy_url(url: str | None = None) -> str:
    """CCAS_DATABASE_URL (a libpq DSN URL) as SQLAlchemy's psycopg2 URL."""
    url = url or setting("CCAS_DATABASE_URL")
    for prefix in ("postgresql+psycopg2://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    raise ValueError("CCAS_DATABASE_URL must be a postgresql:// URL")


def alembic_config(url: str | None = None) -> Config:
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(REPO_ROOT / "alembic"))
    if url:
        # ConfigParser interpolation: a literal % in a password must be doubled.
        config.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return config


def upgrade(url: str | None = None, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str | None = None, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ccas db", description="database schema (Alembic)")
    parser.add_argument("--url", default=None, help="database URL (default: CCAS_DATABASE_URL or the local stack)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="alembic upgrade head").add_argument("revision", nargs="?", default="head")
    sub.add_parser("downgrade", help="alembic downgrade (default: base)").add_argument("revision", nargs="?", default="base")
    sub.add_parser("current", help="show the current revision")
    args = parser.parse_args(argv)
    try:
        if args.command == "migrate":
            upgrade(args.url, args.revision)
        elif args.command == "downgrade":
            downgrade(args.url, args.revision)
        else:
            command.current(alembic_config(args.url))
    except Exception as error:  # noqa: BLE001 - one clear line for the operator; the traceback adds nothing here
        print(f"ccas db {args.command} failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0
