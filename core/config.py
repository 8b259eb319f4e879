"""One configuration style for every component: a pydantic-settings model whose fields are `CCAS_*` variables and CLI flags.

Each field of a component's settings model is read from its environment variable (`env_prefix` + field name, upper case) and
can be overridden by a flag generated from the same field, so a setting can never have a variable but no flag or the reverse.
`add_flags` puts the flags on an argparse parser (default None: "not given"); `load` builds the model from the environment with
the given flags on top. `describe` lists every setting of a model for `.env.example`, the README table and `--help`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin

from pydantic import SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

M = TypeVar("M", bound=BaseSettings)


class ConfigurationError(ValueError):
    """A component cannot start with this configuration; the message lists every problem, by variable name."""


class CcasSettings(BaseSettings):
    """Base of every component's settings: `CCAS_` variables, unknown variables ignored (they belong to other components)."""

    # An empty variable counts as unset, so a partly filled .env (VAR=) falls back on the default.
    model_config = SettingsConfigDict(env_prefix="CCAS_", extra="ignore", validate_default=True, env_ignore_empty=True)

    def __repr__(self) -> str:  # secrets are SecretStr and print as '**********'; everything else is safe to log
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in type(self).model_fields)
        return f"{type(self).__name__}({shown})"


@dataclass(frozen=True)
class SettingDoc:
    variable: str
    flag: str
    default: str
    help: str
    secret: bool


def env_var(model: type[BaseSettings], name: str) -> str:
    prefix = model.model_config.get("env_prefix", "")
    return f"{prefix}{name}".upper()


def flag_of(model: type[BaseSettings], name: str, style: str = "-") -> str:
    extra = model.model_fields[name].json_schema_extra
    if isinstance(extra, dict) and extra.get("flag"):
        return str(extra["flag"])
    return "--" + name.replace("_", style)


# json_schema_extra of a field that has no flag: a secret on a command line shows in `ps` to every user of the machine.
ENVIRONMENT_ONLY: dict[str, Any] = {"environment_only": True}


def environment_only(field: FieldInfo) -> bool:
    extra = field.json_schema_extra
    return isinstance(extra, dict) and bool(extra.get("environment_only"))


def _is_secret(field: FieldInfo) -> bool:
    annotation = field.annotation
    return annotation is SecretStr or SecretStr in get_args(annotation)


def _default_text(field: FieldInfo) -> str:
    if field.is_required():
        return ""
    default = field.get_default(call_default_factory=True)
    if default is None:
        return ""
    if isinstance(default, SecretStr):
        return ""
    if isinstance(default, bool):
        return "true" if default else "false"
    return str(default)


def describe(model: type[BaseSettings], style: str = "-") -> list[SettingDoc]:
    """Every setting of `model`: variable, flag, default (as text, '' when none) and help."""
    return [SettingDoc(env_var(model, name), flag_of(model, name, style), _default_text(field), field.description or "",
                       _is_secret(field))
            for name, field in model.model_fields.items()]


def _flag_type(field: FieldInfo) -> Any:
    annotation = field.annotation
    if get_origin(annotation) is not None:  # Optional[X], Literal[...]: pydantic converts the text
        return str
    return str if annotation in (SecretStr, bool) else (annotation if annotation in (int, float) else str)


def add_flags(parser: argparse.ArgumentParser | Any, model: type[BaseSettings], style: str = "-",
              skip: Iterable[str] = ()) -> None:
    """One flag per field (default None, so an absent flag leaves the environment's value); help names the variable."""
    skipped = set(skip)
    for doc, (name, field) in zip(describe(model, style), model.model_fields.items(), strict=True):
        if name in skipped or environment_only(field):
            continue
        default = f", default {doc.default}" if doc.default else ""
        parser.add_argument(doc.flag, dest=name, default=None, type=_flag_type(field),
                            help=f"{doc.help} [{doc.variable}{default}]")


def load(model: type[M], flags: argparse.Namespace | dict[str, Any] | None = None, style: str = "-") -> M:
    """The model from the environment, with every flag that was given on top; ConfigurationError names the variables."""
    given = vars(flags) if isinstance(flags, argparse.Namespace) else dict(flags or {})
    overrides = {name: value for name, value in given.items() if name in model.model_fields and value is not None}
    try:
        return model(**overrides)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            name = str(item["loc"][0]) if item["loc"] else ""
            # A command's parser has a dest for each flag it offers: a field without one is set from the environment only.
            has_flag = not isinstance(flags, argparse.Namespace) or name in given
            where = (f"{env_var(model, name)}" + (f" / {flag_of(model, name, style)}" if has_flag else "")
                     if name in model.model_fields else "settings")
            problems.append(f"{where}: " + ("is not set" if item["type"] == "missing" else item["msg"]))
        raise ConfigurationError(f"invalid {model.__name__} configuration:\n  - " + "\n  - ".join(problems)) from None


def secret(value: SecretStr | str | None) -> str:
    """The plain text of a secret setting ('' when unset)."""
    if value is None:
        return ""
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def load_for_command(model: type[M], args: argparse.Namespace, command: str) -> M:
    """`load` for a command's main(): on bad configuration, the problems on stderr and exit status 2 (SystemExit)."""
    try:
        return load(model, args)
    except ConfigurationError as error:
        print(f"{command}: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def server_tls(cert: Path | None, key: Path | None, cert_variable: str, key_variable: str) -> dict[str, str]:
    """uvicorn's ssl_certfile/ssl_keyfile for a certificate and key given together, {} for neither.

    Half a TLS configuration would silently serve plain HTTP, so it is refused, as is a path that is not a file.
    """
    if (cert is None) != (key is None):
        raise ValueError(f"{cert_variable} and {key_variable} go together (both for HTTPS, neither for HTTP)")
    for variable, path in ((cert_variable, cert), (key_variable, key)):
        if path is not None and not path.is_file():
            raise ValueError(f"{variable}: {path} is not a file")
    return {"ssl_certfile": str(cert), "ssl_keyfile": str(key)} if cert is not None else {}
