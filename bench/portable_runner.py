"""PortableRunner → standalone Prism (`ccas jobserver`): scored calls/s and end-to-end latency at SDK worker parallelism 1 and 2.

For each parallelism: a fresh database and consumer group, the pipeline submitted with `--runner=PortableRunner
--environment_type=EXTERNAL` (the local worker pool) and `--sdk_worker_parallelism=P`; once the job runs, the mock recorder
produces a burst of live calls (they start ~START_S after launch, all within a few seconds) and a continuous poller publishes
each one after it ends. Latency is scoring_result.end_to_end_ms (call end → scored, so it includes the poller's interval and
settle time, ~3 s); throughput is scored calls per second between the first and the last score of the burst.
A report, not a test; it needs the local stack (`ccas stack up`):

    .venv/bin/python bench/portable_runner.py [--calls 40] [--parallelism 1 2] [--kafka-io java]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ccas import settings  # noqa: E402
from ccas.apps import App, ccas_command  # noqa: E402
from ccas.stack.jobserver import JobServer, WorkerPool, job_endpoint, worker_pool_endpoint  # noqa: E402
from tests.pipeline import e2e  # noqa: E402

START_S = 75  # the calls begin this long after launch: time for the job (and its Java harness) to start reading


def _p95(values: list[int]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18] if len(values) > 1 else float(values[0])


def _planned(services: e2e.Services) -> list[dict]:
    """Every recording the mock will produce (they all start in the future, which /_mock/calls omits without `until`)."""
    import requests

    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    answer = requests.get(f"{services.recorder_url}/_mock/calls", params={"until": until}, timeout=10,
                          auth=(settings.local_stack_env()["CCAS_AVAYA_USER"], settings.local_stack_env()["CCAS_AVAYA_PASSWORD"]))
    answer.raise_for_status()
    return answer.json()


def measure(calls: int, parallelism: int, kafka_io: str) -> dict[str, float]:
    env = settings.local_stack_env()
    seed = 50_000 + parallelism
    services = e2e.start_services(seed, calls, extra_mock_args=["--start", str(START_S)], calls_per_minute=240)
    apps: list[App] = []
    try:
        expected = len(_planned(services))
        with e2e.scratch_database(env["CCAS_DATABASE_URL"]) as url, e2e.scratch_database(env["CCAS_DATABASE_URL"]) as poller_db:
            group = f"bench-portable-{uuid.uuid4().hex[:8]}"
            e2e.commit_group(env["CCAS_KAFKA_BOOTSTRAP"], group, "calls.raw", e2e.end_offsets(env["CCAS_KAFKA_BOOTSTRAP"],
                                                                                              "calls.raw"))
            runner = ["--runner=PortableRunner", f"--job_endpoint={job_endpoint()}", "--environment_type=EXTERNAL",
                      f"--environment_config={worker_pool_endpoint()}", f"--sdk_worker_parallelism={parallelism}"]
            apps.append(e2e.start_pipeline(services, url, group, kafka_io, f"bench-portable-p{parallelism}.log", runner=runner))
            apps.append(App("poller", ccas_command(
                "poller", "--interval", "2", "--settle", "1", "--lookback", "120", "--start", "-5", "--metrics-port", "0",
                "--transactional-id", f"bench-poller-{uuid.uuid4().hex[:8]}"), e2e.log_path("bench-poller.log"),
                env={"CCAS_AVAYA_URL": services.recorder_url, "CCAS_DATABASE_URL": poller_db}).start())

            def all_scored() -> bool:
                return e2e.query(url, "SELECT count(*) FROM scoring_result")[0][0] >= expected

            assert expected >= calls, f"the recorder plans {expected} recordings"
            e2e.wait_until(all_scored, START_S + 600, f"{expected} scored calls", apps)
            workers = len(WorkerPool().worker_processes()) - 1
            latencies = [row[0] for row in e2e.query(url, "SELECT end_to_end_ms FROM scoring_result")]
            first, last = e2e.query(url, "SELECT min(created_at), max(created_at) FROM scoring_result")[0]
    finally:
        for app in reversed(apps):
            app.stop()
        services.stop()
    span = max((last - first).total_seconds(), 1e-3)
    return {"calls": expected, "calls_s": (expected - 1) / span, "p50": statistics.median(latencies), "p95": _p95(latencies),
            "max": max(latencies), "workers": workers}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--parallelism", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--kafka-io", choices=("java", "python"), default="java")
    args = parser.parse_args()
    started = [service for service in (WorkerPool(), JobServer()) if service.pid() is None]
    for service in started:
        service.up()
    rows = []
    try:
        for parallelism in args.parallelism:
            rows.append((parallelism, measure(args.calls, parallelism, args.kafka_io)))
            print(f"parallelism {parallelism}: done", flush=True)
    finally:
        for service in reversed(started):  # leave the services as they were found
            service.down()
    print(f"\nPortableRunner → standalone Prism, EXTERNAL worker pool, --kafka_io={args.kafka_io}, burst of {args.calls} calls")
    print(f"{'--sdk_worker_parallelism':>24} {'calls':>6} {'SDK workers':>11} {'calls/s':>8} {'p50 ms':>7} {'p95 ms':>7} "
          f"{'max ms':>7}")
    for parallelism, row in rows:
        print(f"{parallelism:>24} {row['calls']:>6} {row['workers']:>11} {row['calls_s']:>8.2f} {row['p50']:>7.0f} "
              f"{row['p95']:>7.0f} {row['max']:>7.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
