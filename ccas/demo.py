"""`ccas demo`: the whole system on the local stack — recorder (mock) → poller → Kafka → Beam pipeline → S3, scoring, PostgreSQL.

Prints progress while calls flow, then a table of the scored calls and where to look; stops what it started unless
--keep-running.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg2

from avaya_source.mock.schedule import skill_languages
from ccas import settings
from ccas.apps import App, ccas_command, pipeline_command, scoring_token, wait_http
from ccas.security import log_scan
from ccas.stack import tls

log = logging.getLogger(__name__)

# Only this demo's recordings count (the mock recorder lists them), whatever else shares the database.
_PROGRESS_SQL = """
SELECT
  (SELECT count(*) FROM ingested_recording WHERE call_id = ANY(%(ids)s)),
  (SELECT count(*) FROM call WHERE call_id = ANY(%(ids)s)),
  (SELECT count(*) FROM audio_asset WHERE call_id = ANY(%(ids)s)),
  (SELECT count(*) FROM scoring_result WHERE call_id = ANY(%(ids)s)),
  (SELECT count(*) FROM call WHERE call_id = ANY(%(ids)s) AND status = 'ERROR')
"""
_RESULTS_SQL = """
SELECT c.call_id, c.agent_id, a.full_name, c.duration_seconds, s.score, s.scorable, s.reason, s.details, s.end_to_end_ms
FROM scoring_result s JOIN call c USING (call_id) LEFT JOIN agent a ON a.agent_id = c.agent_id
WHERE c.call_id = ANY(%(ids)s) ORDER BY c.ended_at
"""


def _recorder_calls(recorder_url: str) -> list[dict[str, Any]]:
    """The mock recorder's planned recordings (its test endpoint): call ids, and the customers' numbers for the log check."""
    import requests

    auth = (os.environ["CCAS_AVAYA_USER"], os.environ["CCAS_AVAYA_PASSWORD"])
    answer = requests.get(f"{recorder_url}/_mock/calls", auth=auth, timeout=10)
    answer.raise_for_status()
    return answer.json()


def _prepare_stack() -> list[str]:
    """Start and prepare the stack; returns the services this call started (the demo stops only those)."""
    from ccas import db_admin
    from ccas.kafka_admin import admin_client, bootstrap_topics
    from ccas.s3_admin import bootstrap_bucket
    from ccas.stack import cli as stack_cli
    from ccas.stack.env import fill_from_local_stack
    from core.s3 import s3_client

    started = [service.name for service in stack_cli.services() if service.pid() is None]
    stack_cli.up()
    # The demo is the local stack's own tool: every process it starts gets the stack's settings, explicitly.
    fill_from_local_stack(os.environ)
    db_admin.upgrade(os.environ["CCAS_DATABASE_URL"])
    admin = admin_client(os.environ["CCAS_KAFKA_BOOTSTRAP"])
    try:
        bootstrap_topics(admin)
    finally:
        admin.close()
    s3 = s3_client(os.environ["CCAS_S3_ENDPOINT"], os.environ["CCAS_S3_ACCESS_KEY"], os.environ["CCAS_S3_SECRET_KEY"],
                   ca_file=os.environ.get("CCAS_S3_CA_FILE"))
    for result in bootstrap_bucket(s3, os.environ["CCAS_S3_BUCKET"]):
        if result.outcome != "applied" and result.step != "bucket":
            print(f"demo: S3 {result.step}: {result.outcome}")
    return started


def _asr_args(asr: str) -> list[str]:
    """Scoring-service flags: Whisper base (Vietnamese goes to viet-asr, the service's default) and the voice encoder that
    splits mono speakers, both from set-up's model cache."""
    if asr == "none":
        return ["--asr-engine", "none"]
    whisper, voices = settings.whisper_model_dir(), settings.voice_encoder_weights()
    if not (whisper / "model.bin").is_file() or not voices.is_file():
        raise SystemExit(f"demo: models missing in {settings.cache_dir() / 'models'}: run `bash scripts/models.sh` "
                         "(make setup does), or --asr none")
    return ["--asr-engine", "faster-whisper", "--asr-model-dir", str(whisper), "--speaker-model", str(voices)]


def top_reasons(details: dict[str, Any] | None, count: int = 2) -> str:
    """The criteria that cost the most points, e.g. 'dead_air 0/15, greeting 0/10'; '-' when nothing was lost."""
    lost = [(item["max_points"] - item["points"], item["criterion"], item["points"], item["max_points"])
            for item in (details or {}).get("breakdown", []) if item.get("applicable") and item["points"] < item["max_points"]]
    lost.sort(key=lambda row: (-row[0], row[1]))
    return ", ".join(f"{name} {points:g}/{maximum:g}" for _, name, points, maximum in lost[:count]) or "-"


def _print_table(rows: list[tuple], elapsed_s: float) -> None:
    print(f"\n{'call':<20} {'agent':<24} {'duration':>9} {'score':>7}  top reasons (points lost)")
    for call_id, agent_id, name, duration, score, scorable, reason, details, _ in rows:
        agent = f"{agent_id or '-'} ({name})" if name else (agent_id or "-")
        shown = f"{score:.2f}" if score is not None else "n/a"
        why = top_reasons(details) if scorable else f"not scored: {reason}"
        print(f"{call_id:<20} {agent[:24]:<24} {float(duration or 0):>8.1f}s {shown:>7}  {why}")
    latencies = sorted(row[8] for row in rows if row[8] is not None)
    if latencies:
        p50 = latencies[len(latencies) // 2] / 1000
        p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))] / 1000
        print(f"\ncall end → scored: p50 {p50:.1f} s, p95 {p95:.1f} s over {len(latencies)} calls; "
              f"{len(rows)} calls scored in {elapsed_s:.0f} s since the pipeline started ({len(rows) / elapsed_s:.2f} calls/s)")


def _where_to_look(apps: dict[str, App]) -> None:
    p = settings.ports()
    print("\nWhere to look:")
    print("  PostgreSQL  tables call, audio_asset, scoring_result, transcript, agent")
    print('              eval "$(.venv/bin/ccas env)"; psql "$CCAS_DATABASE_URL"')
    print(f"  S3          s3://{settings.S3_BUCKET_DEV}/raw/YYYY/MM/DD/<call_id>.wav and "
          f"transcripts/YYYY/MM/DD/<call_id>_<asr_model>.json at https://127.0.0.1:{p.s3}")
    print("  Kafka       calls.raw → calls.enriched → audio.ready → scoring.results; dead letters in *.dlq")
    print(f"  Metrics     pipeline http://127.0.0.1:{p.pipeline_metrics}/metrics, poller http://127.0.0.1:{p.poller_metrics}/metrics,"
          f" scoring https://127.0.0.1:{p.scoring_service}/metrics")
    print(f"  QA console  https://127.0.0.1:{p.console}/ (certificate of the stack's CA {tls.ca_file()}); a user first: "
          "`.venv/bin/ccas --local console user add NAME --role admin`")
    print(f"  Logs        {', '.join(str(app.log_file) for app in apps.values())}")


def run(args: argparse.Namespace) -> int:
    print("demo: starting the local stack (Kafka, PostgreSQL, S3, expansion service) and preparing it …", flush=True)
    stack_started = _prepare_stack()
    p = settings.ports()
    logs = settings.stack_dir() / "demo"
    for old in log_scan.log_files(logs):  # the logs are this run's: the leak check at the end reads them whole
        old.unlink()
    seed = args.seed if args.seed is not None else random.randrange(1, 1_000_000)
    # The service refuses every /v1 request without it, and the pipeline sends it: one token, the stack's.
    token = {"CCAS_SCORING_TOKEN": scoring_token()}
    apps: dict[str, App] = {
        "avaya-mock": App("avaya-mock", ccas_command(
            "avaya-mock", "--port", str(p.avaya_mock), "--seed", str(seed), "--calls-per-minute", str(args.calls_per_minute),
            "--count", str(args.calls), "--duration-median", str(args.duration_median), "--duration-max",
            str(args.duration_max), "--duration-min", "8", "--availability-delay", "3"), logs / "avaya-mock.log"),
        "scoring-service": App("scoring-service", ccas_command("scoring-service", "--port", str(p.scoring_service),
                                                               *_asr_args(args.asr)), logs / "scoring-service.log",
                                  env={**token, **tls.scoring_service_env()}),  # HTTPS only
    }
    try:
        for app in apps.values():
            app.start()
        wait_http(f"http://127.0.0.1:{p.avaya_mock}/_mock/health", 60, apps["avaya-mock"])
        wait_http(f"https://127.0.0.1:{p.scoring_service}/healthz", 120, apps["scoring-service"], str(tls.ca_file()))
        # The QA console as deployed: HTTPS, its own database role and S3 identity, the ops principal for requeues.
        apps["console"] = App("console", ccas_command("console", "--port", str(p.console)), logs / "console.log",
                              env={**settings.component_env("console", os.environ["CCAS_DATABASE_URL"]),
                                   **settings.kafka_principal_env("ops"), **tls.console_env()}).start()
        wait_http(f"https://127.0.0.1:{p.console}/healthz", 60, apps["console"], str(tls.ca_file()))
        apps["poller"] = App("poller", ccas_command("poller", "--interval", "10", "--settle", "5",
                                                    # Windows are on start time: look back past the longest call.
                                                    "--lookback", str(int(args.duration_max) + 60),
                                                    "--metrics-port", str(p.poller_metrics)), logs / "poller.log",
                             env=settings.component_env("poller", os.environ["CCAS_DATABASE_URL"])).start()
        pipeline = pipeline_command("--runner=DirectRunner", f"--kafka_io={args.kafka_io}",
                                    f"--metrics_port={p.pipeline_metrics}", f"--skill_languages={skill_languages()}")
        apps["pipeline"] = App("pipeline", pipeline, logs / "pipeline.log",
                               env={**token, **settings.component_env("pipeline", os.environ["CCAS_DATABASE_URL"])}).start()
        print(f"demo: mock recorder (seed {seed}, {args.calls_per_minute:g} calls/min), scoring service (ASR: {args.asr}), "
              f"poller and pipeline ({args.kafka_io} Kafka reader) running; waiting for {args.calls} scored calls …", flush=True)
        pipeline_started = time.monotonic()
        rows = _follow(apps, f"http://127.0.0.1:{p.avaya_mock}", args)
        _print_table(rows, time.monotonic() - pipeline_started)
        _where_to_look(apps)
        outcome = 0 if len(rows) >= args.calls else 1
        if args.keep_running:
            print("\ndemo: --keep-running: everything stays up; stop with `ccas stack down` and by the pids above "
                  f"({', '.join(f'{name} {app.pid}' for name, app in apps.items())})")
            apps.clear()
            stack_started.clear()
            return outcome
        numbers = {call["other_party"] for call in _recorder_calls(f"http://127.0.0.1:{p.avaya_mock}")}
    finally:
        for name, app in reversed(list(apps.items())):
            print(f"demo: stopping {name}", flush=True)
            app.stop()
        if stack_started:
            from ccas.stack import cli as stack_cli

            stack_cli.down(stack_started)
    return _check_logs(logs, numbers) or outcome


def _check_logs(folder: Path, numbers: set[str]) -> int:
    """1 when a log of the run holds a customer number or a secret (the findings name the file and line, not the value)."""
    files = log_scan.log_files(folder)
    found = log_scan.scan(files, settings.load_secrets(), numbers)
    for exposure in found[:20]:
        print(f"demo: LEAK {exposure}", file=sys.stderr)
    if found:
        print(f"demo: {len(found)} line(s) of the run's logs hold a customer number or a secret", file=sys.stderr)
        return 1
    print(f"demo: logs checked ({len(files)} files): no customer number ({len(numbers)} known) and no secret in them")
    return 0


def _follow(apps: dict[str, App], recorder_url: str, args: argparse.Namespace) -> list[tuple]:
    deadline = time.monotonic() + args.timeout
    last = None
    connection = psycopg2.connect(os.environ["CCAS_DATABASE_URL"])
    connection.autocommit = True
    try:
        while True:
            for name, app in apps.items():
                if not app.alive():
                    raise SystemExit(f"demo: {name} exited unexpectedly:\n{app.tail()}")
            ids = [call["inum"] for call in _recorder_calls(recorder_url)]
            with connection.cursor() as cursor:
                cursor.execute(_PROGRESS_SQL, {"ids": ids})
                polled, enriched, downloaded, scored, errors = cursor.fetchone()
            line = (f"demo: polled {polled:>3} | enriched {enriched:>3} | downloaded {downloaded:>3} | scored {scored:>3} | "
                    f"dead-lettered {errors:>3}")
            if line != last:
                print(f"{datetime.now():%H:%M:%S} {line}", flush=True)
                last = line
            if scored >= args.calls or time.monotonic() > deadline:
                with connection.cursor() as cursor:
                    cursor.execute(_RESULTS_SQL, {"ids": ids})
                    return cursor.fetchall()
            time.sleep(2)
    finally:
        connection.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ccas demo", description=__doc__)
    parser.add_argument("--calls", type=int, default=20, help="stop after this many calls are scored (default 20)")
    # With ASR on, 20 calls/min of ~45 s were scored with a p95 of 47 s after call end on a 2-core machine (8/min: 42 s), inside
    # the 2-minute target: greedy decoding of speech only keeps ASR near 0.15 CPU-s per second of speech (docs/scoring.md).
    parser.add_argument("--calls-per-minute", type=float, default=20.0, help="mock recorder arrival rate (default 20)")
    parser.add_argument("--duration-median", type=float, default=45.0, help="median call length in seconds (default 45)")
    parser.add_argument("--duration-max", type=float, default=120.0, help="longest call in seconds (default 120)")
    parser.add_argument("--kafka-io", choices=("java", "python"), default="java", help="pipeline Kafka reader (default java)")
    parser.add_argument("--asr", choices=("faster-whisper", "none"), default="faster-whisper",
                        help="speech recognition for the phrase criteria (default faster-whisper; Vietnamese via viet-asr)")
    parser.add_argument("--seed", type=int, default=None, help="mock recorder seed (default random)")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up after this many seconds (default 900)")
    parser.add_argument("--keep-running", action="store_true", help="leave the stack and the apps running")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("demo: interrupted", file=sys.stderr)
        return 130
