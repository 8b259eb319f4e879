"""How fast the QA console's pages answer with 10,000 calls in the database: p50 / p95 per page, over HTTPS, signed in.

    CCAS_PORT_BASE=… .venv/bin/python bench/console_pages.py [--calls 10000] [--rounds 40]

Runs against this clone's local stack (`ccas stack up`): a scratch database is made on its PostgreSQL (migrated, the roles'
grants applied) and dropped afterwards; one call is synthesised, scored by the real scorer and stored in S3 as the pipeline
stores it (its breakdown is the template of the others), then `--calls` scored calls of 20 agents over 30 days are inserted.
`ccas console` is started as deployed (HTTPS, its own database role and S3 identity) and each page is requested `--rounds`
times, in turn, by one signed-in client. Times are the client's wall time per request (TLS, server, transfer). Prints a
table and one JSON line. A report, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere, like the other benchmarks

from ccas import console_seed, settings  # noqa: E402
from ccas.apps import App, ccas_command, free_port, wait_http  # noqa: E402
from ccas.db_admin import upgrade  # noqa: E402
from ccas.stack import tls  # noqa: E402
from core.s3 import s3_client  # noqa: E402

PASSWORD = "bench-password-123"


def _admin(url: str, statement: str) -> None:
    connection = psycopg2.connect(url)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


def _seed(env: dict[str, str], url: str, calls: int) -> dict[str, str]:
    s3 = s3_client(env["CCAS_S3_ENDPOINT"], env["CCAS_S3_ACCESS_KEY"], env["CCAS_S3_SECRET_KEY"], ca_file=env["CCAS_S3_CA_FILE"])
    agents = [f"B{index:03d}" for index in range(20)]
    connection = psycopg2.connect(url)
    try:
        real = console_seed.scored_call(21, f"bench{uuid.uuid4().hex[:8]}", agents[0], datetime.now(UTC) - timedelta(hours=2),
                                        duration_s=60.0)
        console_seed.store(s3, env["CCAS_S3_BUCKET"], connection, real)
        started = time.perf_counter()
        console_seed.bulk_calls(connection, real.details, calls, agents, datetime.now(UTC), 30, prefix="bn")
        connection.commit()
        print(f"seeded {calls} calls in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        connection.commit()
    finally:
        connection.close()
    return {"real_call": real.call_id, "agent": agents[0], "criterion": real.details["breakdown"][0]["criterion"]}


def _pages(seeded: dict[str, str]) -> dict[str, str]:
    return {
        "calls": "/calls",
        "calls filtered (agent, score range)": f"/calls?agent={seeded['agent']}&score_min=50&score_max=90",
        "calls filtered (criterion failed, dates)": f"/calls?criterion={seeded['criterion']}&date_from="
                                                    f"{(datetime.now(UTC) - timedelta(days=7)).date()}",
        "calls page 100": "/calls?page=100",
        "call detail": f"/calls/{seeded['real_call']}",
        "call waveform (cached after the first)": f"/calls/{seeded['real_call']}/waveform",
        "team overview": "/agents?days=30",
        "agent page": f"/agents/{seeded['agent']}?days=30",
        "operations (Kafka DLQ read)": "/operations",
    }


def _measure(site: str, session: requests.Session, pages: dict[str, str], rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in pages}
    for path in pages.values():  # one warm-up request each: connection pool, caches, the first S3 read
        session.get(site + path, timeout=30).raise_for_status()
    for _ in range(rounds):
        for name, path in pages.items():
            started = time.perf_counter()
            answer = session.get(site + path, timeout=30)
            times[name].append((time.perf_counter() - started) * 1000)
            answer.raise_for_status()
    return times


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    env = {**settings.local_stack_env(), **{k: v for k, v in os.environ.items() if k.startswith("CCAS_")}}
    base_url = env["CCAS_DATABASE_URL"]
    name = f"ccas_bench_console_{uuid.uuid4().hex[:8]}"
    _admin(base_url, f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(base_url)._replace(path=f"/{name}"))
    app = None
    try:
        upgrade(url)
        seeded = _seed(env, url, args.calls)
        subprocess.run(ccas_command("console", "user", "add", "bench", "--role", "admin", "--password-stdin"),
                       input=PASSWORD + "\n", text=True, check=True, env={**os.environ, "CCAS_DATABASE_URL": url})
        port = free_port()
        console_env = {**env, **settings.kafka_principal_env("ops"), **settings.s3_identity_env("console"),
                       **tls.console_env(), "CCAS_DATABASE_URL": settings.database_role_url(url, "console"),
                       "CCAS_CONSOLE_PORT": str(port)}
        app = App("console-bench", ccas_command("console"), settings.stack_dir() / "logs" / "console-bench.log",
                  console_env).start()
        site = f"https://127.0.0.1:{port}"
        wait_http(f"{site}/healthz", 60, app, ca_file=str(tls.ca_file()))
        session = requests.Session()
        session.trust_env = False
        session.verify = str(tls.ca_file())
        form = session.get(f"{site}/signin", timeout=10).text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
        session.post(f"{site}/signin", data={"name": "bench", "password": PASSWORD, "csrf_token": token},
                     timeout=20).raise_for_status()
        times = _measure(site, session, _pages(seeded), args.rounds)
    finally:
        if app is not None:
            app.stop(timeout_s=15)
        _admin(base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"{'page':<42} {'p50 ms':>8} {'p95 ms':>8}")
    for page, values in times.items():
        print(f"{page:<42} {statistics.median(values):>8.1f} {_p95(values):>8.1f}")
    every = [value for page, values in times.items() for value in values]
    p95 = {page: round(_p95(values), 1) for page, values in times.items()}
    print(json.dumps({"calls": args.calls, "rounds": args.rounds, "p95_ms": p95, "p95_all_pages_ms": round(_p95(every), 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
