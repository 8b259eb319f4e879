"""`ccas db migrate | downgrade | current | roles`: Alembic against `--url` / CCAS_DATABASE_URL, from the clone or an installed
package; `roles` creates the components' login roles (ccas/db_roles.py), which every `migrate` then grants what they may do.

Alembic is configured here, in code, so no alembic.ini is needed at run time. The migrations are found with importlib.resources:
`ccas/_migrations/` in an installed package (setup.py copies them there at build time), else the clone's top-level `alembic/`
folder (an editable install, or the clone on sys.path). alembic.ini stays in the clone for `alembic` CLI users; alembic/env.py
reads only the `sqlalchemy.url` option set below (or CCAS_DATABASE_URL when the `alembic` CLI runs it).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

from alembic.config import Config
from pydantic import Field, SecretStr

from alembic import command
from ccas import db_roles
from core.config import ENVIRONMENT_ONLY, CcasSettings, ConfigurationError, add_flags, load, secret
from core.database import sqlalchemy_url as driver_url

INSTALLED_MIGRATIONS = "_migrations"
CLONE_MIGRATIONS = Path(__file__).resolve().parent.parent / "alembic"


class MigrationSettings(CcasSettings):
    database_url: SecretStr = Field(json_schema_extra={"flag": "--url"},
                                    description="PostgreSQL URL to migrate, postgresql://user:password@host:port/db")


def _role_password(component: str) -> Any:
    return Field(default=None, json_schema_extra=ENVIRONMENT_ONLY,
                 description=f"password of the database role ccas_{component}: `ccas db roles` creates the role with it, or "
                             "sets it (unset: the role is left alone)")


class RoleSettings(MigrationSettings):
    """`ccas db roles`: the owner's URL and the password of each component role to create or update."""

    db_password_pipeline: SecretStr | None = _role_password("pipeline")
    db_password_poller: SecretStr | None = _role_password("poller")
    db_password_ops: SecretStr | None = _role_password("ops")
    db_password_console: SecretStr | None = _role_password("console")

    def passwords(self) -> dict[str, str]:
        """Component -> password, for every component role whose password is set."""
        components = (role.removeprefix("ccas_") for role in db_roles.ROLES)
        return {component: password for component in components
                if (password := secret(getattr(self, f"db_password_{component}")))}


def create_roles(url: str, passwords: dict[str, str]) -> list[str]:
    import psycopg2

    connection = psycopg2.connect(url)
    try:
        return db_roles.ensure_login_roles(connection, passwords)
    finally:
        connection.close()


def _is_migrations_folder(folder: Path) -> bool:
    return (folder / "env.py").is_file() and (folder / "versions").is_dir()


def migrations_dir() -> Path:
    """The folder holding env.py and versions/: the installed package's copy first, else the clone's alembic/."""
    installed = files("ccas").joinpath(INSTALLED_MIGRATIONS)
    if isinstance(installed, Path) and _is_migrations_folder(installed):
        return installed
    if _is_migrations_folder(CLONE_MIGRATIONS):
        return CLONE_MIGRATIONS
    raise FileNotFoundError(f"no migrations: neither ccas/{INSTALLED_MIGRATIONS} (installed package) nor {CLONE_MIGRATIONS}")


def sqlalchemy_url(url: str | None = None) -> str:
    """The URL as SQLAlchemy's psycopg2 URL; without one, CCAS_DATABASE_URL (the `alembic` CLI in the clone gets here)."""
    url = url or os.environ.get("CCAS_DATABASE_URL")
    if not url:
        raise ValueError("no database URL: pass --url or set CCAS_DATABASE_URL")
    return driver_url(url)


def alembic_config(url: str) -> Config:
    config = Config()  # no ini file: everything Alembic needs at run time is set here
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("path_separator", "os")
    # ConfigParser interpolation: a literal % in a password must be doubled.
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate, then grant each component's role what it may do on the tables now there (ccas/db_roles.py)."""
    import psycopg2

    command.upgrade(alembic_config(url), revision)
    connection = psycopg2.connect(url)
    try:
        db_roles.grant(connection)
    finally:
        connection.close()


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def _log_like_alembic_ini() -> None:
    """What alembic.ini's logging section gave the CLI: Alembic's progress lines at INFO, everything else from WARNING."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)-5.5s [%(name)s] %(message)s", stream=sys.stderr)
    logging.getLogger("alembic").setLevel(logging.INFO)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ccas db", description="database schema (Alembic)")
    add_flags(parser, MigrationSettings)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="alembic upgrade head").add_argument("revision", nargs="?", default="head")
    sub.add_parser("downgrade", help="alembic downgrade (default: base)").add_argument("revision", nargs="?", default="base")
    sub.add_parser("current", help="show the current revision")
    sub.add_parser("roles", help="create the components' login roles or set their passwords (CCAS_DB_PASSWORD_<COMPONENT>, "
                                 "environment only); run it before `migrate`, which grants them")
    args = parser.parse_args(argv)
    try:
        settings = load(RoleSettings if args.command == "roles" else MigrationSettings, args)
    except ConfigurationError as error:
        print(f"ccas db {args.command}: {error}", file=sys.stderr)
        return 2
    url = secret(settings.database_url)
    passwords = settings.passwords() if isinstance(settings, RoleSettings) else {}
    if args.command == "roles" and not passwords:
        variables = ", ".join(f"CCAS_{name.upper()}" for name in RoleSettings.model_fields if name.startswith("db_password_"))
        print(f"ccas db roles: no role password is set (one or more of {variables})", file=sys.stderr)
        return 2
    _log_like_alembic_ini()
    try:
        if args.command == "roles":
            print(f"ccas db roles: {', '.join(create_roles(url, passwords))} can log in with their passwords")
        elif args.command == "migrate":
            upgrade(url, args.revision)  # and the components' grants (ccas/db_roles.py)
        elif args.command == "downgrade":
            command.downgrade(alembic_config(url), args.revision)
        else:
            command.current(alembic_config(url))
    except Exception as error:  # noqa: BLE001 - one clear line for the operator; the traceback adds nothing here
        print(f"ccas db {args.command} failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0
