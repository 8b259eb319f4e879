"""End-to-end harness: the real mock recorder, poller, scoring service and pipeline processes on the real local stack.

Each pipeline run gets its own database (migrated by Alembic) and its own consumer group positioned where the test's input
starts, so runs are independent of each other and of anything else on calls.raw.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import requests
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from avaya_source.mock.schedule import skill_languages
from ccas import db_admin, settings
from ccas.apps import App, ccas_command, free_port, pipeline_command, scoring_token, wait_http
from ccas.security import log_scan
from ccas.stack import tls
from core.kafka import client_security, producer
from core.s3 import s3_client
from schemas.contracts import is_watermark_marker
from tests.pipeline import scorecard_sql

LOG_DIR = settings.stack_dir() / "test-e2e"
FLAKY_FAILURES = 2  # replays that fail before succeeding, for the flaky calls of publish_scenario
CUSTOMER_KEY = re.compile(r"hk1:[0-9a-f]{32}")  # core.pii.customer_key
SCORECARD_EARLY_FIRING_S = 3
SCORECARD_TIME_ZONE = "Asia/Ho_Chi_Minh"  # the setting's default
OUTPUT_TOPICS = ("calls.enriched", "audio.ready", "scoring.results", "calls.raw.dlq", "audio.ready.dlq", "scoring.results.dlq")


def wait_until(condition: Callable[[], Any], timeout_s: float, what: str, apps: list[App] = (), interval_s: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        for app in apps:
            if not app.alive():
                raise AssertionError(f"{app.name} exited while waiting for {what}:\n{app.tail(60)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


@contextmanager
def scratch_database(base_url: str, migrate: bool = True) -> Iterator[str]:
    """A new database on the server of `base_url`, at the schema's head (or empty), dropped afterwards."""
    name = f"ccas_e2e_{uuid.uuid4().hex[:10]}"

    def admin(statement: str) -> None:
        # A connection per statement: a fault test may restart PostgreSQL while the database is in use.
        connection = psycopg2.connect(base_url)
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement)
        finally:
            connection.close()

    admin(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(base_url)._replace(path=f"/{name}"))
    try:
        if migrate:
            db_admin.upgrade(url)
        yield url
    finally:
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def query(url: str, sql: str, params: Any = None) -> list[tuple]:
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    connection.close()
    return rows


def execute(url: str, sql: str, params: Any = None) -> None:
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(sql, params)
    connection.close()


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, **client_security(None))
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        return {tp.partition: offset for tp, offset in consumer.end_offsets(partitions).items()}
    finally:
        consumer.close()


def commit_group(bootstrap: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, **client_security(None), group_id=group, enable_auto_commit=False)
    try:
        consumer.commit({TopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()})
    finally:
        consumer.close()


def committed(bootstrap: str, group: str, topic: str, partitions: list[int]) -> dict[int, int | None]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, **client_security(None), group_id=group, enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(topic, p)) for p in partitions}
    finally:
        consumer.close()


def read_since(bootstrap: str, topic: str, since: dict[int, int], with_positions: bool = False,
               with_times: bool = False) -> list[Any]:
    """Every committed value of `topic` from the given per-partition offsets to the current end
    (as (partition, offset, value) with with_positions; as (timestamp ms, key, value) with with_times)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, **client_security(None),
                             enable_auto_commit=False, isolation_level="read_committed",
                             consumer_timeout_ms=3000)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(partitions)
        ends = consumer.end_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, since.get(tp.partition, 0))
        values = []
        for record in consumer:
            if is_watermark_marker(record.key):  # the poller's, on calls.raw: no call
                if all(consumer.position(tp) >= ends[tp] for tp in partitions):
                    break
                continue
            try:
                value = json.loads(record.value)
            except (ValueError, TypeError):  # a poison message a fault test put there on purpose
                value = {"undecodable": (record.value or b"")[:80].hex()}
            if with_times:
                values.append((record.timestamp, (record.key or b"").decode(errors="replace"), value))
            else:
                values.append((record.partition, record.offset, value) if with_positions else value)
            if all(consumer.position(tp) >= ends[tp] for tp in partitions):
                break
        return values
    finally:
        consumer.close()


@dataclass
class Services:
    """The mock recorder and scoring service shared by the runs of a test module."""

    recorder_url: str
    scoring_url: str
    apps: list[App] = field(default_factory=list)
    # What the scoring service requires and every pipeline of the module sends (CCAS_SCORING_TOKEN).
    scoring_token: str = field(default_factory=scoring_token)

    @property
    def scoring_env(self) -> dict[str, str]:
        """What a pipeline needs to reach the service: its token, and the CA its HTTPS certificate is checked against."""
        return {"CCAS_SCORING_TOKEN": self.scoring_token, "CCAS_SCORING_CA_FILE": str(tls.ca_file())}

    def configure_recorder(self, values: dict[str, Any]) -> dict[str, Any]:
        env = settings.local_stack_env()
        answer = requests.post(f"{self.recorder_url}/_mock/config", json=values, timeout=10,
                               auth=(env["CCAS_AVAYA_USER"], env["CCAS_AVAYA_PASSWORD"]))
        answer.raise_for_status()
        return answer.json()

    def recorder_calls(self) -> list[dict]:
        env = settings.local_stack_env()
        answer = requests.get(f"{self.recorder_url}/_mock/calls", timeout=10,
                              auth=(env["CCAS_AVAYA_USER"], env["CCAS_AVAYA_PASSWORD"]))
        answer.raise_for_status()
        return answer.json()

    def recorder_stats(self) -> dict[str, int]:
        """The mock's request counts (search_<layout>, replay, faults) since it started."""
        env = settings.local_stack_env()
        answer = requests.get(f"{self.recorder_url}/_mock/stats", timeout=10,
                              auth=(env["CCAS_AVAYA_USER"], env["CCAS_AVAYA_PASSWORD"]))
        answer.raise_for_status()
        return answer.json()

    def stop(self) -> None:
        for app in self.apps:
            app.stop()




def start_services(seed: int, count: int, extra_mock_args: list[str] = (), calls_per_minute: float = 30,
                   asr: bool = False) -> Services:
    """asr=True: the scoring service transcribes (Whisper base, viet-asr for Vietnamese) and splits mono speakers
    (set-up's scripts/models.sh puts the models in the cache)."""
    mock_port, scoring_port = free_port(), free_port()
    asr_args = ["--asr-engine", "faster-whisper", "--asr-model-dir", str(settings.whisper_model_dir()),
                "--speaker-model", str(settings.voice_encoder_weights())] if asr else []
    start = (datetime.now(UTC) - timedelta(minutes=40)).isoformat()
    mock = App(f"avaya-mock-{seed}", ccas_command(
        "avaya-mock", "--port", str(mock_port), "--seed", str(seed), "--start", start,
        "--calls-per-minute", str(calls_per_minute),
        "--count", str(count), "--duration-median", "9", "--duration-min", "4", "--duration-max", "20",
        "--availability-delay", "0", "--multi-inum-ratio", "0.15", *extra_mock_args), LOG_DIR / f"mock-{seed}.log").start()
    token = scoring_token()
    scoring = App("scoring-service", ccas_command("scoring-service", "--port", str(scoring_port), *asr_args),
                  LOG_DIR / f"scoring-{seed}.log", env={"CCAS_SCORING_TOKEN": token, **tls.scoring_service_env()}).start()
    services = Services(f"http://127.0.0.1:{mock_port}", f"https://127.0.0.1:{scoring_port}", [mock, scoring], token)
    try:
        wait_http(f"{services.recorder_url}/_mock/health", 60, mock)
        wait_http(f"{services.scoring_url}/healthz", 120, scoring, str(tls.ca_file()))
    except BaseException:
        services.stop()
        raise
    return services


def poll_once(services: Services, database_url: str, window_start: datetime, window_end: datetime) -> str:
    app = App("poller", ccas_command("poller", "--once", "--from", window_start.isoformat(), "--to", window_end.isoformat(),
                                     "--metrics-port", "0", "--transactional-id", f"ccas-poller-e2e-{uuid.uuid4().hex[:8]}"),
              LOG_DIR / "poller.log",
              env={"CCAS_AVAYA_URL": services.recorder_url, **settings.component_env("poller", database_url)})
    app.start()
    code = app.popen.wait(180)
    assert code == 0, f"poller --once failed ({code}):\n{app.tail()}"
    return app.tail(5)


def start_pipeline(services: Services, database_url: str, group: str, kafka_io: str, log_name: str,
                   extra: list[str] = (), runner: list[str] = ("--runner=DirectRunner",)) -> App:
    return App(f"pipeline-{kafka_io}", pipeline_command(
        *runner, f"--kafka_io={kafka_io}", f"--consumer_group={group}",
        f"--avaya_url={services.recorder_url}", f"--scoring_url={services.scoring_url}", f"--metrics_port={free_port()}",
        "--download_backoff_s=1", "--scoring_backoff_s=0.5", *extra), LOG_DIR / log_name,
        # Secrets in the environment, never argv; the pipeline's own Kafka principal, database role and S3 identity.
        env={**services.scoring_env, **settings.component_env("pipeline", database_url)}).start()


def stack_logs() -> list[Path]:
    """Every log the stack and the tests' processes write (Kafka's segment files, also named *.log, are data, not logs)."""
    data = settings.stack_dir() / "kafka" / "data"
    return [path for path in log_scan.log_files(settings.stack_dir()) if not path.is_relative_to(data)]


def log_path(name: str) -> Path:
    return LOG_DIR / name


# The end-to-end scenario, shared by test_end_to_end.py and test_runner_parity.py --------------------------------------------
@contextmanager
def publish_scenario(stack_env: dict[str, str], calls: int, asr: bool = False) -> Iterator[dict]:
    """Mock recorder + scoring service (transcribing when `asr`), the faults (2 flaky and 1 dead replay, 1 corrupt recording,
    3 re-published messages, 1 schema-invalid message), and the published input (offsets where it starts and ends)."""
    seed = random.randrange(10_000, 99_999)
    services = start_services(seed, calls, asr=asr)
    try:
        planned = services.recorder_calls()
        inums = sorted(call["inum"] for call in planned)
        assert len(inums) >= calls, f"the recorder planned {len(inums)} recordings"
        picked = random.Random(seed).sample(inums, 4)
        flaky, dead, corrupt = picked[:2], picked[2], picked[3]
        services.configure_recorder({"replay_failures": {**{inum: FLAKY_FAILURES for inum in flaky}, dead: -1},
                                     "corrupt_inums": [corrupt]})
        bootstrap = stack_env["CCAS_KAFKA_BOOTSTRAP"]
        start = end_offsets(bootstrap, "calls.raw")
        with scratch_database(stack_env["CCAS_DATABASE_URL"]) as poller_db:
            first = min(datetime.fromisoformat(call["started_at"]) for call in planned) - timedelta(minutes=1)
            poll_once(services, poller_db, first, datetime.now(UTC) - timedelta(seconds=5))
        published = read_since(bootstrap, "calls.raw", start)
        assert sorted(value["call_id"] for value in published) == inums, "the poller publishes each recording once"
        send = producer(bootstrap)
        for value in published[:3]:  # a restarted poller without its checkpoint would publish these again
            again = {**value, "ingest_uuid": str(uuid.uuid4())}
            send.send("calls.raw", key=value["call_id"].encode(), value=json.dumps(again).encode())
        invalid = {**published[4], "call_id": "bad-" + uuid.uuid4().hex[:8], "ingest_uuid": str(uuid.uuid4())}
        del invalid["started_at"]
        send.send("calls.raw", key=invalid["call_id"].encode(), value=json.dumps(invalid).encode())
        send.flush()
        send.close()
        # Where the group must end up: past the last data record of each partition. Transaction markers after it are
        # stepped over only when a later record arrives there, so the log end itself may stay one or two offsets ahead.
        data_end = dict(start)
        for partition, offset, _ in read_since(bootstrap, "calls.raw", start, with_positions=True):
            data_end[partition] = max(data_end[partition], offset + 1)
        yield {"services": services, "data_end": data_end, "inums": inums, "flaky": flaky, "dead": dead, "corrupt": corrupt,
               "invalid": invalid["call_id"], "start": start, "end": end_offsets(bootstrap, "calls.raw"),
               "bootstrap": bootstrap, "env": stack_env, "asr": asr,
               "customer_numbers": {call["other_party"] for call in planned}}
    finally:
        services.stop()


def run_to_completion(scenario: dict, kafka_io: str, database_url: str, *, kill_after_scored: int | None = None,
                      runner: list[str] = ("--runner=DirectRunner",), quiet_topic: bool = True) -> dict:
    """Run the pipeline over the scenario's input until every call is settled; optionally kill -9 it mid-way and restart.

    quiet_topic=False: others may publish to calls.raw meanwhile, so the group may rightly commit past the scenario's end;
    only "past every input message" is checked then."""
    group = f"ccas-pipeline-e2e-{kafka_io}-{uuid.uuid4().hex[:8]}"
    commit_group(scenario["bootstrap"], group, "calls.raw", scenario["start"])
    outputs_start = {topic: end_offsets(scenario["bootstrap"], topic) for topic in (*OUTPUT_TOPICS, "agent.scorecards")}
    good = len(scenario["inums"]) - 2

    def settled() -> bool:
        scored = query(database_url, "SELECT count(*) FROM scoring_result")[0][0]
        errors = query(database_url, "SELECT count(*) FROM call WHERE status = 'ERROR'")[0][0]
        return scored >= good and errors >= 2

    # With ASR, the language of a call is its skill's (as an operator configures it); without, nothing is sent.
    extra = [f"--skill_languages={skill_languages()}"] if scenario.get("asr") else []
    # Scorecard windows of calls that end now are open for the whole run: their early firings are what can be checked.
    extra.append(f"--scorecard_early_firing_s={SCORECARD_EARLY_FIRING_S}")
    pipeline = start_pipeline(scenario["services"], database_url, group, kafka_io, f"pipeline-{group}.log",
                              extra=extra, runner=runner)
    try:
        if kill_after_scored is not None:
            def scored_enough() -> bool:
                return query(database_url, "SELECT count(*) FROM scoring_result")[0][0] >= kill_after_scored

            wait_until(scored_enough, 300, f"{kill_after_scored} scored calls before the kill", [pipeline])
            pipeline.kill()
            pipeline = start_pipeline(scenario["services"], database_url, group, kafka_io, f"pipeline-{group}-restart.log",
                                      extra=extra, runner=runner)
        wait_until(settled, 420, f"{good} scored and 2 dead-lettered calls ({kafka_io} reader)", [pipeline])
        def all_committed() -> bool:
            done = committed(scenario["bootstrap"], group, "calls.raw", sorted(scenario["data_end"]))
            return all(scenario["data_end"][p] <= (offset or 0) <= (scenario["end"][p] if quiet_topic else offset or 0)
                       for p, offset in done.items())

        # Strict, kill or not: the group must pass the last data record of every partition within the bound.
        wait_until(all_committed, 180, "the consumer group to be committed past every input message", [pipeline])
        if kill_after_scored is None:  # a killed Prism job loses its open windows (pipeline/transforms/scorecard.py)
            differences: list[str] = []

            def scorecards_equal() -> bool:
                differences[:] = scorecard_sql.mismatches(database_url, SCORECARD_TIME_ZONE)
                return not differences

            try:
                wait_until(scorecards_equal, 120, "agent_scorecard to equal its SQL recomputation", [pipeline], interval_s=2)
            except AssertionError as error:
                written = query(database_url, "SELECT dimension, granularity, pane_timing, count(*) FROM agent_scorecard "
                                              "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
                raise AssertionError(f"{error}; rows written {written}; {len(differences)} differences:\n  "
                                     + "\n  ".join(differences[:40])) from None
    finally:
        exit_code = pipeline.stop()
    outputs = {topic: [v for v in read_since(scenario["bootstrap"], topic, outputs_start[topic])
                       if v.get("call_id") in set(scenario["inums"]) | {scenario["invalid"]}]
               for topic in OUTPUT_TOPICS}
    # Other runs publish scorecards meanwhile: every message since the start, the test picks this run's agents.
    scorecards = read_since(scenario["bootstrap"], "agent.scorecards", outputs_start["agent.scorecards"])
    return {"outputs": outputs, "exit_code": exit_code, "log": pipeline.log_file, "scorecards": scorecards}


def rows(database_url: str) -> dict[str, list[tuple]]:
    return {
        "call": query(database_url, "SELECT call_id, status, agent_id, started_at, ended_at, duration_seconds, skill,"
                                        " service, switch_call_id FROM call ORDER BY call_id"),
        "audio_asset": query(database_url, "SELECT call_id, s3_key, sha256, codec, sample_rate, channels, duration_seconds,"
                                               " size_bytes, status FROM audio_asset ORDER BY call_id"),
        "scoring_result": query(database_url, "SELECT call_id, score, scorable, model_version FROM scoring_result"
                                                  " ORDER BY call_id"),
    }


def dead_letters(outputs: dict) -> list[tuple]:
    return sorted((v["call_id"], v["stage"], v["error_type"], v["retries"], topic)
                  for topic in ("calls.raw.dlq", "audio.ready.dlq", "scoring.results.dlq") for v in outputs[topic])


def check_customer_keys(database_url: str, outputs: dict) -> None:
    """Past enrich the customer is its keyed hash (every mock call has a number): in the call rows, on calls.enriched, and in
    the download and score dead letters, whose payload is the calls.raw value with its number emptied."""
    def is_key(value: object) -> bool:
        return isinstance(value, str) and CUSTOMER_KEY.fullmatch(value) is not None

    assert all(is_key(key) for _, key in query(database_url, "SELECT call_id, customer_key FROM call"))
    assert all(is_key(v["customer_key"]) and "other_party" not in v for v in outputs["calls.enriched"])
    for topic in ("audio.ready.dlq", "scoring.results.dlq"):
        assert all(v["payload"]["other_parties"] is None and is_key(v["payload"]["customer_key"]) for v in outputs[topic])


def differences(got: list[str], expected: list[str]) -> str:
    """What a list of call ids has too many and too few of, against the expected ones: what an exactly-once check shows."""
    counts, wanted = Counter(got), Counter(expected)
    extra, missing = counts - wanted, wanted - counts
    return f"{sum(extra.values())} extra {dict(extra)}, {sum(missing.values())} missing {sorted(missing)}"


def check_final_state(scenario: dict, database_url: str, result: dict, *, exactly_once_outputs: bool = True) -> None:
    """Rows, S3 objects and dead letters as expected. After a crash, Kafka outputs may repeat a message (at-least-once);
    with exactly_once_outputs=False they are compared as sets. Database rows are always exactly once."""
    found = rows(database_url)
    inums = scenario["inums"]
    good = sorted(set(inums) - {scenario["dead"], scenario["corrupt"]})
    statuses = dict((row[0], row[1]) for row in found["call"])
    assert sorted(statuses) == inums, "one call row per recording, the invalid message stored nowhere"
    assert sorted(c for c, s in statuses.items() if s == "SCORED") == good
    assert statuses[scenario["dead"]] == "ERROR" and statuses[scenario["corrupt"]] == "ERROR"
    scored = [row[0] for row in found["scoring_result"]]
    assert scored == good, "exactly one scoring_result per good call"

    s3 = s3_client(scenario["env"]["CCAS_S3_ENDPOINT"], scenario["env"]["CCAS_S3_ACCESS_KEY"],
                   scenario["env"]["CCAS_S3_SECRET_KEY"], ca_file=scenario["env"]["CCAS_S3_CA_FILE"])
    assets = {row[0]: row for row in found["audio_asset"]}
    assert sorted(assets) == sorted(set(inums) - {scenario["dead"]})
    for call_id, key, sha256, *_ in assets.values():
        body = s3.get_object(Bucket=scenario["env"]["CCAS_S3_BUCKET"], Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == sha256, f"S3 object of {call_id} does not match audio_asset.sha256"

    dead = dead_letters(result["outputs"])
    as_expected = (lambda values: sorted(values)) if exactly_once_outputs else (lambda values: sorted(set(values)))
    assert (scenario["dead"], "download", "AvayaUnavailable", 5, "audio.ready.dlq") in dead
    assert (scenario["corrupt"], "score", "ScoringRejected", 1, "scoring.results.dlq") in dead
    assert (scenario["invalid"], "parse", "SchemaError", 0, "calls.raw.dlq") in dead
    outputs = result["outputs"]
    for topic, expected in (("scoring.results", good), ("audio.ready", sorted(set(inums) - {scenario["dead"]})),
                            ("calls.enriched", inums)):
        got = as_expected(v["call_id"] for v in outputs[topic])
        assert got == expected, f"{topic}: {differences(got, expected)} (log: {result['log']})"
    check_customer_keys(database_url, outputs)
