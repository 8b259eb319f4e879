"""The `ccas` command: one entry point whose subcommands live in the package that owns them."""

from __future__ import annotations

import importlib
import os
import sys

# subcommand -> "module:function"; each function takes argv (list[str]) and returns an exit code.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "stack": ("ccas.stack.cli:main", "start/stop/inspect the local stack (Kafka, PostgreSQL, S3)"),
    "env": ("ccas.stack.cli:print_env", "print the CCAS_* exports that reach the local stack"),
    "kafka": ("ccas.kafka_admin:main", "kafka bootstrap: create the declared topics"),
    "s3": ("ccas.s3_admin:main", "s3 bootstrap: create and secure the audio bucket"),
    "db": ("ccas.db_admin:main", "db migrate|downgrade: run Alembic against CCAS_DATABASE_URL"),
    "tls": ("ccas.tls_admin:main", "tls init: a deployment's CA and one certificate per service (docker-compose.flink.yml)"),
    "avaya-mock": ("avaya_source.mock.server:main", "run the mock Avaya Contact Recorder"),
    "poller": ("avaya_source.poller:main", "poll the recorder and publish finished calls to calls.raw"),
    "scoring-service": ("scoring_service.main:main", "run the scoring HTTP service"),
    "jobserver": ("ccas.stack.cli:jobserver_main", "standalone Prism job service + SDK worker pool for --runner=PortableRunner"),
    "flink": ("ccas.stack.flink:main", "local Flink 1.20 session cluster for --runner=FlinkRunner: up|down|status"),
    "dlq": ("ccas.ops.cli:main", "dead letters: list, show CALL_ID, requeue (--call-id ID ... | --error-type E | --all)"),
    "console": ("console.main:main", "the QA console (calls, agents, operations; HTTPS); `console user add NAME --role R`"),
    "ops-api": ("ccas.ops.api.main:main", "the DLQ operations over HTTP (named bearer tokens CCAS_OPS_TOKENS; docs at /docs)"),
    "lag-exporter": ("ccas.ops.lag_exporter:main", "consumer lag per topic/partition/group for Prometheus (started by stack up)"),
    "config": ("ccas.config_docs:main", "every setting of every component: env-example | readme-table [--write]"),
    "status": ("ccas.ops.status:main", "one screen: services, calls in the last hour, DLQs, lag, p95 latencies, URLs"),
    "argv-watch": ("ccas.security.argv_watch:main", "watch process arguments for the stack's secrets: start | stop | check"),
    "demo": ("ccas.demo:main", "the whole system on the local stack, with progress and a table of scored calls"),
    "rescore": ("pipeline.rescore:main", "re-score stored calls with the scoring service's model_version (--since, --until, "
                "--agent, --rate; --follow: on model.version.updated events)"),
    "analytics": ("ccas.analytics:main", 'query "SQL": DuckDB over the Parquet files the pipeline exports to S3'),
}


def _usage() -> str:
    lines = ["usage: ccas [--local] <command> [args]", "",
             "  --local          fill every unset CCAS_* setting from this clone's local stack (as `ccas env` prints them)",
             "", "commands:"]
    lines += [f"  {name:<16} {help_text}" for name, (_, help_text) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if args[0] == "--local":
        args = args[1:]
        from ccas.stack.env import fill_from_local_stack

        filled = fill_from_local_stack(os.environ)
        if filled:
            print(f"ccas: --local: {len(filled)} settings from the local stack", file=sys.stderr)
        if not args:
            print(_usage())
            return 0
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"ccas: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, function_name = SUBCOMMANDS[name][0].split(":")
    function = getattr(importlib.import_module(module_name), function_name)
    return int(function(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
