"""`ccas stack up | down | status | logs NAME` and `ccas env`."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys

from ccas import settings
from ccas.stack.expansion import Expansion
from ccas.stack.flink import Flink
from ccas.stack.jobserver import NAMES as JOBSERVER_NAMES
from ccas.stack.jobserver import JobServer, WorkerPool, job_endpoint, worker_pool_endpoint
from ccas.stack.kafka import Kafka
from ccas.stack.postgres import Postgres
from ccas.stack.process import StackError, tail
from ccas.stack.prometheus import LagExporter, Prometheus
from ccas.stack.seaweedfs import SeaweedFS
from ccas.stack.service import Service

SERVICE_TYPES: list[type[Service]] = [Postgres, Kafka, SeaweedFS, Expansion, LagExporter, Prometheus]
# Started by their own commands (`ccas jobserver up`, `ccas flink up`, ...), not by `stack up`; `stack down` stops them too.
ON_DEMAND_TYPES: list[type[Service]] = [WorkerPool, JobServer, Flink]


def services(names: list[str] | None = None, include_on_demand: bool = False) -> list[Service]:
    types = SERVICE_TYPES + (ON_DEMAND_TYPES if include_on_demand or names else [])
    chosen = [service_type() for service_type in types]
    if names:
        unknown = set(names) - {service.name for service in chosen}
        if unknown:
            raise StackError(f"unknown service(s): {', '.join(sorted(unknown))}; known: {', '.join(s.name for s in chosen)}")
        chosen = [service for service in chosen if service.name in names]
    return chosen


def up(names: list[str] | None = None) -> None:
    settings.load_secrets(create=True)
    chosen = services(names)
    # Every port is checked before anything starts, so a conflict leaves nothing half-started.
    for service in chosen:
        if service.pid() is None:
            service.check_ports_free()
    for service in chosen:
        print(f"stack: {service.name:<9} ... ", end="", flush=True)
        try:
            print(service.up(), flush=True)
        except StackError:
            print("FAILED", flush=True)
            raise


def down(names: list[str] | None = None) -> None:
    for service in reversed(services(names, include_on_demand=True)):
        if names is None and service.pid() is None and type(service) in ON_DEMAND_TYPES:
            continue  # an on-demand service that is not running needs no line
        print(f"stack: {service.name:<9} {service.down()}", flush=True)


def print_status(names: list[str] | None = None) -> bool:
    rows = [service.status() for service in services(names)]
    print(f"{'service':<10} {'state':<8} {'pid':>7} {'rss':>8}  {'ports':<44} health")
    for row in rows:
        ports = ", ".join(f"{label}={port}" for label, port in list(row.ports.items())[:3])
        if len(row.ports) > 3:
            ports += f" (+{len(row.ports) - 3})"
        rss = f"{row.rss_mb:.0f} MB" if row.rss_mb is not None else "-"
        print(f"{row.name:<10} {row.state:<8} {row.pid or '-':>7} {rss:>8}  {ports:<44} {row.health}")
    print(f"stack folder: {settings.stack_dir()}   cache: {settings.cache_dir()}")
    return all(row.state == "running" and row.health.startswith("ok") for row in rows)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ccas stack", description="the local stack: Kafka, PostgreSQL, S3 (SeaweedFS)")
    sub = parser.add_subparsers(dest="command", required=True)
    for command, help_text in (("up", "start (idempotent)"), ("down", "stop by pid"), ("status", "state, pid, port, health")):
        sub.add_parser(command, help=help_text).add_argument("names", nargs="*", help="services (default: all)")
    logs = sub.add_parser("logs", help="print the last lines of a service's log")
    logs.add_argument("name")
    logs.add_argument("-n", "--lines", type=int, default=60)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.ERROR)
    try:
        if args.command == "up":
            up(args.names)
            return 0 if print_status(args.names) else 1
        if args.command == "down":
            down(args.names)
            return 0
        if args.command == "status":
            return 0 if print_status(args.names) else 3
        service = services([args.name])[0]
        print(tail(service.log_path(), args.lines))
        return 0
    except StackError as error:
        print(f"ccas stack {args.command}: {error}", file=sys.stderr)
        return 1


def print_env(argv: list[str]) -> int:
    """Print `export CCAS_...=...` lines for the local stack (eval "$(ccas env)")."""
    del argv
    from ccas.stack.env import local_env

    for key, value in sorted(local_env().items()):
        print(f"export {key}={shlex.quote(value)}")
    return 0


def jobserver_main(argv: list[str]) -> int:
    """`ccas jobserver up | down | status`: the standalone Prism job service and the SDK worker pool, together."""
    parser = argparse.ArgumentParser(prog="ccas jobserver",
                                     description="standalone Prism job service + Python SDK worker pool (PortableRunner)")
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "up":
            up(JOBSERVER_NAMES)
        elif args.command == "down":
            down(JOBSERVER_NAMES)
            return 0
        healthy = print_status(JOBSERVER_NAMES)
        server = JobServer()
        if server.pid() is not None:
            active = server.active_jobs() if healthy else []
            print(f"running jobs: {len(active)}")
            for job_id, job_name, state in active:
                print(f"  {job_id}  {state:<10} {job_name}")
            print(f"submit: --runner=PortableRunner --job_endpoint={job_endpoint()} "
                  f"--environment_type=EXTERNAL --environment_config={worker_pool_endpoint()}   UI: {server.ui_url()}")
        return 0 if healthy else (1 if args.command == "up" else 3)
    except StackError as error:
        print(f"ccas jobserver {args.command}: {error}", file=sys.stderr)
        return 1
