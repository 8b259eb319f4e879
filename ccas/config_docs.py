"""`ccas config env-example | readme-table [--write]`: every component's settings, rendered from the settings models.

`COMPONENTS` names each component's pydantic-settings model; `.env.example` and the README's table between
`<!-- settings:begin -->` and `<!-- settings:end -->` are generated from them, so the documentation cannot drift from the code
(tests/ccas/test_config_docs.py fails when a generated file is stale).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from avaya_source.mock.settings import AvayaMockSettings
from avaya_source.settings import PollerSettings
from ccas.analytics import SECRET_FIELDS as ANALYTICS_SECRET_FIELDS
from ccas.analytics import AnalyticsQuerySettings
from ccas.db_admin import RoleSettings
from ccas.kafka_acls import KafkaPrincipalSettings
from ccas.kafka_admin import KafkaBootstrapSettings
from ccas.ops.settings import OPS_API_ENVIRONMENT_ONLY, DlqSettings, LagExporterSettings, OpsSettings, StatusSettings
from ccas.s3_admin import SECRET_FIELDS as S3_BOOTSTRAP_SECRET_FIELDS
from ccas.s3_admin import BucketBootstrapSettings
from ccas.settings import REPO_ROOT
from console.settings import CONSOLE_ENVIRONMENT_ONLY, ConsoleSettings
from core.config import CcasSettings, describe, environment_only
from pipeline.options import ENVIRONMENT_ONLY as PIPELINE_ENVIRONMENT_ONLY
from pipeline.settings import PipelineSettings
from scoring_service.settings import ENVIRONMENT_ONLY as SCORING_ENVIRONMENT_ONLY
from scoring_service.settings import ScoringSettings

# Component name (as in `ccas <command>`) -> its settings model; the order is the order of .env.example and the README table.
COMPONENTS: dict[str, type[CcasSettings]] = {
    "poller": PollerSettings,
    "pipeline": PipelineSettings,
    "scoring-service": ScoringSettings,
    "ops-api": OpsSettings,
    "avaya-mock": AvayaMockSettings,
    "lag-exporter": LagExporterSettings,
    "dlq": DlqSettings,
    "status": StatusSettings,
    "analytics": AnalyticsQuerySettings,
    "console": ConsoleSettings,
}
# The one-shot set-up commands: topics, Kafka principals, bucket, migrations and database roles.
BOOTSTRAP_COMPONENTS: dict[str, type[CcasSettings]] = {
    "kafka-bootstrap": KafkaBootstrapSettings,
    "kafka-principals": KafkaPrincipalSettings,
    "s3-bootstrap": BucketBootstrapSettings,
    "db": RoleSettings,
}
COMPONENTS.update(BOOTSTRAP_COMPONENTS)

COMMANDS = {
    "poller": "`ccas poller`",
    "pipeline": "`python run_pipeline.py` (Beam pipeline options)",
    "scoring-service": "`ccas scoring-service`",
    "ops-api": "`ccas ops-api`",
    "avaya-mock": "`ccas avaya-mock` (the mock recorder, local work and tests)",
    "lag-exporter": "`ccas lag-exporter`",
    "dlq": "`ccas dlq`",
    "status": "`ccas status`",
    "analytics": "`ccas analytics query`",
    "console": "`ccas console`",
    "kafka-bootstrap": "`ccas kafka bootstrap`",
    "kafka-principals": "`ccas kafka principals`",
    "s3-bootstrap": "`ccas s3 bootstrap`",
    "db": "`ccas db migrate | downgrade | roles`",
}
# Beam's option parser wants underscores; every other command uses dashes.
FLAG_STYLES = {"pipeline": "_"}
# Settings a command deliberately takes from the environment only (keys on a command line would show in `ps`).
ENVIRONMENT_ONLY: dict[str, tuple[str, ...]] = {"s3-bootstrap": tuple(S3_BOOTSTRAP_SECRET_FIELDS),
                                                "analytics": ANALYTICS_SECRET_FIELDS,
                                                "ops-api": OPS_API_ENVIRONMENT_ONLY,
                                                "console": CONSOLE_ENVIRONMENT_ONLY,
                                                "pipeline": PIPELINE_ENVIRONMENT_ONLY,
                                                "scoring-service": SCORING_ENVIRONMENT_ONLY}

# Variables no component model reads: docker-compose.flink.yml's own (secrets it hands to servers) and the local stack's.
# (variable, meaning, default; '' = none)
DEPLOYMENT_VARIABLES = (
    ("CCAS_DB_PASSWORD", "password of the schema owner `ccas` (the PostgreSQL image's bootstrap superuser), init's alone; "
                         "docker-compose.flink.yml puts it, and each CCAS_DB_PASSWORD_<COMPONENT>, into a URL: URL-safe "
                         "characters only", ""),
    ("CCAS_S3_ACCESS_KEY_PIPELINE", "access key of the pipeline's S3 identity (`ccas-pipeline` in the identities file); "
                                    "docker-compose.flink.yml gives it to the job submitter as CCAS_S3_ACCESS_KEY", ""),
    ("CCAS_S3_SECRET_KEY_PIPELINE", "secret key of the pipeline's S3 identity; the job submitter's CCAS_S3_SECRET_KEY", ""),
    ("CCAS_S3_SSE_KEK_PASSPHRASE", "passphrase of the S3 server's encryption key (SeaweedFS, docker-compose.flink.yml)", ""),
    ("CCAS_S3_IDENTITIES_FILE", "S3 server identities: ops/s3-identities.example.json's shape with the keys of this file, "
                                "readable by uid 1000 (docker-compose.flink.yml)", "./ops/s3-identities.json"),
)
LOCAL_STACK_VARIABLES = (
    ("CCAS_STACK_DIR", "where the local stack keeps its data, logs and pids", ".stack"),
    ("CCAS_PORT_BASE", "every local stack port is this base plus a fixed offset", "19000"),
    ("CCAS_CACHE", "downloads and builds shared by every clone on this machine", "~/.cache/ccas"),
)

ENV_EXAMPLE = REPO_ROOT / ".env.example"
README = REPO_ROOT / "README.md"
BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"


@dataclass
class Setting:
    """One variable, with every component that reads it and the flag each gives it."""

    variable: str
    help: str
    default: str
    secret: bool
    required: bool
    flags: dict[str, str] = field(default_factory=dict)  # component -> flag ('' = environment only)

    @property
    def shared(self) -> bool:
        return len(self.flags) > 1

    def distinct_flags(self) -> list[str]:
        return [flag for flag in dict.fromkeys(self.flags.values()) if flag]

    def flag_cell(self) -> str:
        """`--x`; where components differ (Beam's underscores, a command's short name), the others with their components."""
        if not self.distinct_flags():
            return "— (environment only)"
        first, *others = self.distinct_flags()
        users = {flag: [c for c, f in self.flags.items() if f == flag] for flag in others}
        env_only = [c for c, f in self.flags.items() if not f]
        return ", ".join([f"`{first}`", *(f"`{flag}` ({', '.join(users[flag])})" for flag in others),
                          *([f"none in {', '.join(env_only)}"] if env_only else [])])


def _portable(default: str) -> str:
    """Defaults inside the clone (the default scorecard) shown relative to it, so the output is the same on every machine."""
    root = str(REPO_ROOT) + "/"
    return default[len(root):] if default.startswith(root) else default


def settings() -> list[Setting]:
    """Every variable of every component, in first-seen order; a variable several components read appears once."""
    found: dict[str, Setting] = {}
    for component, model in COMPONENTS.items():
        docs = describe(model, FLAG_STYLES.get(component, "-"))
        for doc, (name, model_field) in zip(docs, model.model_fields.items(), strict=True):
            entry = found.setdefault(doc.variable, Setting(doc.variable, doc.help, _portable(doc.default), doc.secret, False))
            no_flag = name in ENVIRONMENT_ONLY.get(component, ()) or environment_only(model_field)
            entry.flags[component] = "" if no_flag else doc.flag
            entry.secret = entry.secret or doc.secret
            entry.required = entry.required or model_field.is_required()  # required by one component: to be filled in
    return list(found.values())


def _grouped() -> list[tuple[str, list[Setting]]]:
    """Shared variables first, then each component's own."""
    every = settings()
    groups = [("Shared by several components", [s for s in every if s.shared])]
    groups += [(f"{component}: {COMMANDS.get(component, f'`ccas {component}`')}",
                [s for s in every if not s.shared and component in s.flags]) for component in COMPONENTS]
    return [(title, members) for title, members in groups if members]


def _assignment(setting: Setting) -> str:
    # Values to fill in are live lines; a default stays commented, so removing the line changes nothing.
    if setting.secret or setting.required:
        return f"{setting.variable}="
    return f"# {setting.variable}={setting.default}"


def render_env_example() -> str:
    lines = [
        "# CCAS settings, generated from the components' settings models by `ccas config env-example --write`: do not edit.",
        "# Every setting is a CCAS_ environment variable and a flag of its command; the flag wins (`<command> --help`).",
        "# Local work needs none of this: `ccas --local <command>` or `eval \"$(ccas env)\"` use the local stack's values.",
        "# docker-compose.flink.yml reads .env (a copy of this file): fill in the empty values. Commented lines show defaults.",
    ]
    for title, members in _grouped():
        lines += ["", f"# == {title} =="]
        for setting in members:
            flags = " / ".join(setting.distinct_flags()) or "environment only"
            if setting.shared:
                lines += [f"# {setting.help}", f"#   {flags}; read by {', '.join(setting.flags)}"]
            else:
                lines += [f"# {setting.help} ({flags})"]
            lines.append(_assignment(setting))
    documented = {s.variable for s in settings()}
    for title, extras in (("Deployment only (docker-compose.flink.yml)", DEPLOYMENT_VARIABLES),
                          ("Local stack only", LOCAL_STACK_VARIABLES)):
        lines += ["", f"# == {title} =="]
        for variable, meaning, default in extras:
            if variable not in documented:
                lines += [f"# {meaning}", f"# {variable}={default}" if default else f"{variable}="]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_readme_table() -> str:
    lines = [
        "<!-- generated by `ccas config readme-table --write` from the settings models: edit those, not this table -->",
        "| variable | flag | default | component | meaning |",
        "|---|---|---|---|---|",
    ]
    for _, members in _grouped():
        for s in members:
            default = "*required*" if s.required else (f"`{_cell(s.default)}`" if s.default else "—")
            lines.append(f"| `{s.variable}` | {_cell(s.flag_cell())} | {default} | {', '.join(s.flags)} | {_cell(s.help)} |")
    return "\n".join(lines) + "\n"


def readme_block(readme_text: str) -> str:
    """The text between the settings markers (ValueError when they are missing)."""
    start, end = readme_text.find(BEGIN), readme_text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README.md has no {BEGIN} … {END} block")
    return readme_text[start + len(BEGIN):end].strip("\n") + "\n"


def with_readme_block(readme_text: str, table: str) -> str:
    readme_block(readme_text)  # the markers must exist
    start, end = readme_text.index(BEGIN) + len(BEGIN), readme_text.index(END)
    return readme_text[:start] + "\n" + table + readme_text[end:]


def _write(path: Path, text: str) -> None:
    if path.exists() and path.read_text() == text:
        print(f"{path.name} is up to date")
        return
    path.write_text(text)
    print(f"wrote {path.name}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ccas config", description="every setting of every component, from the models")
    parser.add_argument("what", choices=["env-example", "readme-table"],
                        help="env-example: the .env.example file; readme-table: the README's settings table")
    parser.add_argument("--write", action="store_true", help="update .env.example / the README block in place")
    args = parser.parse_args(argv)
    if args.what == "env-example":
        text = render_env_example()
        if args.write:
            _write(ENV_EXAMPLE, text)
        else:
            sys.stdout.write(text)
        return 0
    table = render_readme_table()
    if not args.write:
        sys.stdout.write(table)
        return 0
    try:
        _write(README, with_readme_block(README.read_text(), table))
    except ValueError as error:
        print(f"ccas config: {error}", file=sys.stderr)
        return 1
    return 0
