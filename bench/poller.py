"""Measure the poller against the mock: catch-up throughput (calls/s) and steady-state poll-to-publish latency.

    eval "$(ccas env)"   # or give --kafka-bootstrap / --database-url
    .venv/bin/python bench/poller.py --calls 20000 [--steady-seconds 60]

Needs a Kafka and a PostgreSQL (CCAS_KAFKA_BOOTSTRAP, CCAS_DATABASE_URL: a scratch topic and database are made there and
removed afterwards) and starts `ccas avaya-mock` subprocesses; prints one JSON line. A report, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import requests
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere, like the other benchmarks

from avaya_source.client import AvayaClient, Credentials  # noqa: E402
from avaya_source.metrics import PollerMetrics  # noqa: E402
from avaya_source.poller import Poller, PollerConfig  # noqa: E402
from avaya_source.publisher import TransactionalPublisher  # noqa: E402
from avaya_source.store import IngestStore  # noqa: E402
from avaya_source.windows import WindowPolicy  # noqa: E402
from ccas.db_admin import upgrade  # noqa: E402
from core.config import add_flags, load_for_command, secret  # noqa: E402
from core.kafka import client_security  # noqa: E402
from core.settings import DatabaseSettings, KafkaSettings  # noqa: E402


class BenchSettings(KafkaSettings, DatabaseSettings):
    """Where the scratch topic and database are made (the database URL must be allowed to CREATE DATABASE)."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _histogram_quantile(metrics: PollerMetrics, name: str, q: float) -> float | None:
    """Upper bound of the bucket holding quantile q (Prometheus' histogram_quantile without interpolation)."""
    total = metrics.value(f"{name}_count")
    if not total:
        return None
    for sample in next(iter(m for m in metrics.registry.collect() if m.name == name)).samples:
        if sample.name.endswith("_bucket") and sample.value >= q * total:
            return float(sample.labels["le"])
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/poller.py", description=__doc__.splitlines()[0])
    add_flags(p, BenchSettings)
    p.add_argument("--calls", type=int, default=20000, help="contacts in the backlog the poller catches up on")
    p.add_argument("--backlog-minutes", type=float, default=60.0)
    p.add_argument("--steady-seconds", type=float, default=30.0, help="live arrivals after the catch-up (latency phase)")
    p.add_argument("--steady-rate", type=float, default=60.0, help="calls per minute while steady")
    args = p.parse_args(argv)
    settings = load_for_command(BenchSettings, args, "bench/poller.py")

    user, password = "ccas", "bench-" + secrets.token_urlsafe(8)
    env = {key: value for key, value in os.environ.items() if key != "CCAS_AVAYA_PASSWORD_FILE"}  # a file would win
    env.update({"CCAS_AVAYA_USER": user, "CCAS_AVAYA_PASSWORD": password})
    topic, db = f"bench.calls.raw.{uuid.uuid4().hex[:8]}", f"ccas_bench_{uuid.uuid4().hex[:8]}"
    bootstrap, base_dsn = settings.kafka_bootstrap, secret(settings.database_url)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **client_security(None))
    admin.create_topics([NewTopic(topic, 12, 1, topic_configs={"compression.type": "lz4"})])
    conn = psycopg2.connect(base_dsn)
    conn.autocommit = True
    conn.cursor().execute(f'CREATE DATABASE "{db}"')
    dsn = urlunsplit(urlsplit(base_dsn)._replace(path=f"/{db}"))  # keeps the query: sslmode, sslrootcert
    upgrade(dsn)
    mocks: list[subprocess.Popen] = []
    try:
        # Phase 1: a backlog of `calls` contacts over the last `backlog_minutes`; the poller catches up in chunks.
        start = datetime.now(UTC) - timedelta(minutes=args.backlog_minutes)
        url = _mock(mocks, env, "1", start, args.calls / args.backlog_minutes, args.calls)
        metrics = PollerMetrics()
        poller = _poller(url, user, password, dsn, bootstrap, topic, start - timedelta(minutes=1), 1.0, metrics)
        stop = threading.Event()
        worker = threading.Thread(target=poller.run, args=(stop,))
        began = time.monotonic()
        worker.start()
        while metrics.value("ingest_lag_seconds") == 0 or metrics.value("ingest_lag_seconds") > 7:
            time.sleep(0.05)
        catch_up_s = time.monotonic() - began
        published = metrics.value("records_published_total")
        stop.set()
        worker.join()
        poller.publisher.close()
        result: dict[str, object] = {
            "backlog_calls_published": int(published),
            "catch_up_seconds": round(catch_up_s, 2),
            "calls_per_second": round(published / catch_up_s, 1),
            "catch_up_windows": int(metrics.value("windows_polled_total")),
            "catch_up_window_splits": int(metrics.value("window_splits_total")),
        }

        # Phase 2: live arrivals at `steady_rate`, the poller on its production cadence (interval 10 s here to get samples).
        # The mock's calls began 10 minutes ago (real length distribution); the first window takes that backlog and is not
        # counted, so the numbers are those of a poller that has been running at this rate.
        url = _mock(mocks, env, "2", datetime.now(UTC) - timedelta(minutes=10), args.steady_rate, None)
        poller = _poller(url, user, password, dsn, bootstrap, topic, datetime.now(UTC) - timedelta(seconds=400), 10.0,
                         PollerMetrics())
        poller.run_once()
        live = poller.metrics = PollerMetrics()
        stop = threading.Event()
        worker = threading.Thread(target=poller.run, args=(stop,))
        worker.start()
        time.sleep(args.steady_seconds)
        stop.set()
        worker.join()
        poller.publisher.close()
        result.update({
            "steady_calls_published": int(live.value("records_published_total")),
            "steady_windows": int(live.value("windows_polled_total")),
            "poll_to_publish_mean_s": round(live.value("poll_to_publish_seconds_sum")
                                            / max(1.0, live.value("poll_to_publish_seconds_count")), 4),
            "poll_to_publish_p95_le_s": _histogram_quantile(live, "poll_to_publish_seconds", 0.95),
            "poll_duration_mean_s": round(live.value("poll_duration_seconds_sum")
                                          / max(1.0, live.value("poll_duration_seconds_count")), 4),
            "call_end_to_publish_mean_s": round(live.value("call_end_to_publish_seconds_sum")
                                                / max(1.0, live.value("call_end_to_publish_seconds_count")), 2),
            "call_end_to_publish_p95_le_s": _histogram_quantile(live, "call_end_to_publish_seconds", 0.95),
        })
        print(json.dumps(result))
        return 0
    finally:
        for mock in mocks:
            mock.terminate()
            mock.wait(10)
        admin.delete_topics([topic])
        conn.cursor().execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def _mock(mocks: list, env: dict[str, str], seed: str, start: datetime, rate: float, count: int | None) -> str:
    port = _free_port()
    command = [sys.executable, "-m", "ccas.cli", "avaya-mock", "--port", str(port), "--seed", seed, "--start", start.isoformat(),
               "--calls-per-minute", str(rate), "--duration-max", "300", "--availability-delay", "2", "--log-level", "WARNING"]
    mocks.append(subprocess.Popen(command + (["--count", str(count)] if count else []), cwd=REPO, env=env))
    for _ in range(200):
        try:
            requests.get(f"http://127.0.0.1:{port}/_mock/health", timeout=1)
            break
        except requests.RequestException:
            time.sleep(0.1)
    return f"http://127.0.0.1:{port}"


def _poller(url: str, user: str, password: str, dsn: str, bootstrap: str, topic: str, first: datetime, interval: float,
            metrics: PollerMetrics) -> Poller:
    policy = WindowPolicy(timedelta(seconds=400), timedelta(seconds=5), timedelta(seconds=600))
    return Poller(
        AvayaClient(url, Credentials(user, password)),
        IngestStore(dsn),
        TransactionalPublisher(bootstrap, topic, f"bench-{topic}"),
        PollerConfig(policy, first, interval_s=interval),
        metrics,
    )


if __name__ == "__main__":
    sys.exit(main())
