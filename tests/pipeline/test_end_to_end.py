"""The pipeline end to end on the real stack: 40 recorded calls with duplicates, flaky and dead replays, a corrupt recording and
a schema-invalid message; then a kill -9 in the middle of a run; then the same input through the other Kafka reader.

Input is published once (real poller → calls.raw, plus the injected messages); each pipeline run reads it with its own consumer
group and writes its own database, so the runs can be compared row by row.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from ccas.kafka_admin import producer
from ccas.s3_admin import s3_client
from tests.pipeline import e2e

pytestmark = pytest.mark.integration

CALLS = 40
FLAKY_FAILURES = 2


@pytest.fixture(scope="module")
def scenario(stack_env: dict[str, str]) -> Iterator[dict]:
    """Mock recorder + scoring service, the faults, and the published input (offsets where it starts and ends)."""
    seed = random.randrange(10_000, 99_999)
    services = e2e.start_services(seed, CALLS)
    try:
        calls = services.recorder_calls()
        inums = sorted(call["inum"] for call in calls)
        assert len(inums) >= CALLS, f"the recorder planned {len(inums)} recordings"
        picked = random.Random(seed).sample(inums, 4)
        flaky, dead, corrupt = picked[:2], picked[2], picked[3]
        services.configure_recorder({"replay_failures": {**{inum: FLAKY_FAILURES for inum in flaky}, dead: -1},
                                     "corrupt_inums": [corrupt]})
        bootstrap = stack_env["CCAS_KAFKA_BOOTSTRAP"]
        start = e2e.end_offsets(bootstrap, "calls.raw")
        with e2e.scratch_database(stack_env["CCAS_DATABASE_URL"]) as poller_db:
            first = min(datetime.fromisoformat(call["started_at"]) for call in calls) - timedelta(minutes=1)
            e2e.poll_once(services, poller_db, first, datetime.now(UTC) - timedelta(seconds=5))
        published = e2e.read_since(bootstrap, "calls.raw", start)
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
        for partition, offset, _ in e2e.read_since(bootstrap, "calls.raw", start, with_positions=True):
            data_end[partition] = max(data_end[partition], offset + 1)
        yield {"services": services, "data_end": data_end, "inums": inums, "flaky": flaky, "dead": dead, "corrupt": corrupt,
               "invalid": invalid["call_id"], "start": start, "end": e2e.end_offsets(bootstrap, "calls.raw"),
               "bootstrap": bootstrap, "env": stack_env}
    finally:
        services.stop()


def _run_to_completion(scenario: dict, kafka_io: str, database_url: str, *, kill_after_scored: int | None = None) -> dict:
    """Run the pipeline over the scenario's input until every call is settled; optionally kill -9 it mid-way and restart."""
    group = f"e2e-{kafka_io}-{uuid.uuid4().hex[:8]}"
    e2e.commit_group(scenario["bootstrap"], group, "calls.raw", scenario["start"])
    outputs_start = {topic: e2e.end_offsets(scenario["bootstrap"], topic) for topic in e2e.OUTPUT_TOPICS}
    good = len(scenario["inums"]) - 2

    def settled() -> bool:
        scored = e2e.query(database_url, "SELECT count(*) FROM scoring_result")[0][0]
        errors = e2e.query(database_url, "SELECT count(*) FROM call WHERE status = 'ERROR'")[0][0]
        return scored >= good and errors >= 2

    pipeline = e2e.start_pipeline(scenario["services"], database_url, group, kafka_io, f"pipeline-{group}.log")
    try:
        if kill_after_scored is not None:
            def scored_enough() -> bool:
                return e2e.query(database_url, "SELECT count(*) FROM scoring_result")[0][0] >= kill_after_scored

            e2e.wait_until(scored_enough, 300, f"{kill_after_scored} scored calls before the kill", [pipeline])
            pipeline.kill()
            pipeline = e2e.start_pipeline(scenario["services"], database_url, group, kafka_io, f"pipeline-{group}-restart.log")
        e2e.wait_until(settled, 420, f"{good} scored and 2 dead-lettered calls ({kafka_io} reader)", [pipeline])
        def all_committed() -> bool:
            done = e2e.committed(scenario["bootstrap"], group, "calls.raw", sorted(scenario["data_end"]))
            return all(scenario["data_end"][p] <= (offset or 0) <= scenario["end"][p] for p, offset in done.items())

        e2e.wait_until(all_committed, 60, "the consumer group to be committed past every input message", [pipeline])
    finally:
        exit_code = pipeline.stop()
    outputs = {topic: [v for v in e2e.read_since(scenario["bootstrap"], topic, outputs_start[topic])
                       if v.get("call_id") in set(scenario["inums"]) | {scenario["invalid"]}]
               for topic in e2e.OUTPUT_TOPICS}
    return {"outputs": outputs, "exit_code": exit_code, "log": pipeline.log_file}


def _rows(database_url: str) -> dict[str, list[tuple]]:
    return {
        "call": e2e.query(database_url, "SELECT call_id, status, agent_id, started_at, ended_at, duration_seconds, skill,"
                                        " service, switch_call_id FROM call ORDER BY call_id"),
        "audio_asset": e2e.query(database_url, "SELECT call_id, s3_key, sha256, codec, sample_rate, channels, duration_seconds,"
                                               " size_bytes, status FROM audio_asset ORDER BY call_id"),
        "scoring_result": e2e.query(database_url, "SELECT call_id, score, scorable, model_version FROM scoring_result"
                                                  " ORDER BY call_id"),
    }


def _dead_letters(outputs: dict) -> list[tuple]:
    return sorted((v["call_id"], v["stage"], v["error_type"], v["retries"], topic)
                  for topic in ("calls.raw.dlq", "audio.ready.dlq", "scoring.results.dlq") for v in outputs[topic])


def _check_final_state(scenario: dict, database_url: str, result: dict, *, exactly_once_outputs: bool = True) -> None:
    """Rows, S3 objects and dead letters as expected. After a crash, Kafka outputs may repeat a message (at-least-once);
    with exactly_once_outputs=False they are compared as sets. Database rows are always exactly once."""
    rows = _rows(database_url)
    inums = scenario["inums"]
    good = sorted(set(inums) - {scenario["dead"], scenario["corrupt"]})
    statuses = dict((row[0], row[1]) for row in rows["call"])
    assert sorted(statuses) == inums, "one call row per recording, the invalid message stored nowhere"
    assert sorted(c for c, s in statuses.items() if s == "SCORED") == good
    assert statuses[scenario["dead"]] == "ERROR" and statuses[scenario["corrupt"]] == "ERROR"
    scored = [row[0] for row in rows["scoring_result"]]
    assert scored == good, "exactly one scoring_result per good call"

    s3 = s3_client(scenario["env"]["CCAS_S3_ENDPOINT"], scenario["env"]["CCAS_S3_ACCESS_KEY"],
                   scenario["env"]["CCAS_S3_SECRET_KEY"])
    assets = {row[0]: row for row in rows["audio_asset"]}
    assert sorted(assets) == sorted(set(inums) - {scenario["dead"]})
    for call_id, key, sha256, *_ in assets.values():
        body = s3.get_object(Bucket=scenario["env"]["CCAS_S3_BUCKET"], Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == sha256, f"S3 object of {call_id} does not match audio_asset.sha256"

    dead = _dead_letters(result["outputs"])
    as_expected = (lambda values: sorted(values)) if exactly_once_outputs else (lambda values: sorted(set(values)))
    assert (scenario["dead"], "download", "AvayaUnavailable", 5, "audio.ready.dlq") in dead
    assert (scenario["corrupt"], "score", "ScoringRejected", 1, "scoring.results.dlq") in dead
    assert (scenario["invalid"], "parse", "SchemaError", 0, "calls.raw.dlq") in dead
    outputs = result["outputs"]
    assert as_expected(v["call_id"] for v in outputs["scoring.results"]) == good
    assert as_expected(v["call_id"] for v in outputs["audio.ready"]) == sorted(set(inums) - {scenario["dead"]})
    assert as_expected(v["call_id"] for v in outputs["calls.enriched"]) == inums


@pytest.fixture(scope="module")
def java_run(scenario: dict) -> Iterator[tuple[dict, dict]]:
    with e2e.scratch_database(scenario["env"]["CCAS_DATABASE_URL"]) as url:
        result = _run_to_completion(scenario, "java", url)
        yield result, {"rows": _rows(url), "url": url}


def test_java_reader_end_to_end(scenario: dict, java_run: tuple[dict, dict]) -> None:
    result, state = java_run
    _check_final_state(scenario, state["url"], result)
    assert len(_dead_letters(result["outputs"])) == 3, "only the three broken inputs are dead letters"
    assert result["exit_code"] == 0, "SIGTERM cancels the job and exits cleanly"


def test_python_reader_gives_the_same_rows(scenario: dict, java_run: tuple[dict, dict]) -> None:
    java_result, java_state = java_run
    with e2e.scratch_database(scenario["env"]["CCAS_DATABASE_URL"]) as url:
        result = _run_to_completion(scenario, "python", url)
        _check_final_state(scenario, url, result)
        assert _rows(url) == java_state["rows"]
    assert _dead_letters(result["outputs"]) == _dead_letters(java_result["outputs"])


def test_kill_9_mid_run_then_restart_loses_nothing_and_duplicates_nothing(scenario: dict) -> None:
    with e2e.scratch_database(scenario["env"]["CCAS_DATABASE_URL"]) as url:
        result = _run_to_completion(scenario, "python", url, kill_after_scored=12)
        _check_final_state(scenario, url, result, exactly_once_outputs=False)
        counts = e2e.query(url, "SELECT call_id, count(*) FROM scoring_result GROUP BY call_id HAVING count(*) > 1")
        assert counts == []
