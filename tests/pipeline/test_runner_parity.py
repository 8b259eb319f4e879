"""The same input through DirectRunner (Prism in the pipeline's process) and through PortableRunner → a standalone Prism
(`ccas jobserver`): the same rows, assets, scores and dead letters, field by field.

12 calls instead of test_end_to_end's 40, with the same fault kinds (2 flaky and 1 dead replay, 1 corrupt recording,
3 re-published messages, 1 schema-invalid message), to keep three pipeline runs affordable on a shared machine.
Database rows (each run has its own database) are compared row by row, field by field. Kafka outputs are compared as sets of
call ids and dead-letter tuples: a retried bundle may write a message again, and any other pipeline reading the shared calls.raw
at the same time writes calls.enriched copies of our calls (test_end_to_end.py judges their exactness on a quiet stack).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ccas.stack.jobserver import JobServer, WorkerPool, job_endpoint, worker_pool_endpoint
from tests.pipeline import e2e

pytestmark = pytest.mark.integration

CALLS = 12


@pytest.fixture(scope="module")
def scenario(stack_env: dict[str, str]) -> Iterator[dict]:
    with e2e.publish_scenario(stack_env, CALLS) as published:
        yield published


@pytest.fixture(scope="module")
def job_server(stack_env: dict[str, str]) -> Iterator[JobServer]:
    """The standalone Prism and the worker pool; stopped afterwards unless they were running before the module."""
    services = [WorkerPool(), JobServer()]
    started = [service for service in services if service.pid() is None]
    for service in started:
        service.up()
    yield services[1]
    for service in reversed(started):
        service.down()


@pytest.fixture(scope="module")
def direct_run(scenario: dict) -> Iterator[dict]:
    with e2e.scratch_database(scenario["env"]["CCAS_DATABASE_URL"]) as url:
        result = _ours(e2e.run_to_completion(scenario, "java", url, quiet_topic=False))
        found = _check(scenario, url, result)
        yield {"rows": found, "dead": sorted(set(e2e.dead_letters(result["outputs"]))), "outputs": _call_ids(result)}


def _ours(result: dict) -> dict:
    """The run's outputs without what other pipelines on the shared calls.raw wrote about our calls: they read our input too,
    ask their own recorder for the audio and dead-letter it as 404 (ours knows every call it planned, so it never answers 404)."""
    def foreign(value: dict) -> bool:
        return value.get("error_type") == "AvayaRejected" and "404" in str(value.get("error"))

    return {**result, "outputs": {topic: [v for v in values if not foreign(v)] for topic, values in result["outputs"].items()}}


def _check(scenario: dict, url: str, result: dict) -> dict[str, list[tuple]]:
    """The scenario's expectations on this run's rows of our calls (the pipeline also stores rows for calls that other tests
    publish to calls.raw meanwhile: it reads the shared topic from our start offsets on)."""
    inums = scenario["inums"]
    found = {table: [row for row in values if row[0] in set(inums)] for table, values in e2e.rows(url).items()}
    good = sorted(set(inums) - {scenario["dead"], scenario["corrupt"]})
    statuses = {row[0]: row[1] for row in found["call"]}
    assert sorted(statuses) == inums, "one call row per recording, the invalid message stored nowhere"
    assert sorted(c for c, status in statuses.items() if status == "SCORED") == good
    assert [row[0] for row in found["scoring_result"]] == good, "exactly one scoring_result per good call"
    assert [row[0] for row in found["audio_asset"]] == sorted(set(inums) - {scenario["dead"]})
    dead = e2e.dead_letters(result["outputs"])
    assert (scenario["dead"], "download", "AvayaUnavailable", 5, "audio.ready.dlq") in dead
    assert (scenario["corrupt"], "score", "ScoringRejected", 1, "scoring.results.dlq") in dead
    assert (scenario["invalid"], "parse", "SchemaError", 0, "calls.raw.dlq") in dead
    return found


def _call_ids(result: dict) -> dict[str, list[str]]:
    return {topic: sorted({value["call_id"] for value in values}) for topic, values in result["outputs"].items()}


def _portable_run(scenario: dict, job_server: JobServer, kafka_io: str, environment: list[str]) -> dict:
    before = {job[0] for job in job_server.jobs()}
    runner = ["--runner=PortableRunner", f"--job_endpoint={job_endpoint()}", *environment]
    with e2e.scratch_database(scenario["env"]["CCAS_DATABASE_URL"]) as url:
        result = _ours(e2e.run_to_completion(scenario, kafka_io, url, runner=runner, quiet_topic=False))
        found = _check(scenario, url, result)
        ours = [job for job in job_server.jobs() if job[0] not in before]
        return {"rows": found, "dead": sorted(set(e2e.dead_letters(result["outputs"]))), "outputs": _call_ids(result),
                "exit_code": result["exit_code"], "jobs": ours}


def _assert_same(portable: dict, direct: dict) -> None:
    for table in ("call", "audio_asset", "scoring_result"):
        assert len(portable["rows"][table]) == len(direct["rows"][table]), table
        for got, expected in zip(portable["rows"][table], direct["rows"][table], strict=True):
            assert got == expected, f"{table} row differs between runners"
    assert portable["dead"] == direct["dead"], "the same dead letters (call, stage, error type, retries, topic)"
    assert portable["outputs"] == direct["outputs"], "the same messages on every output topic"


def _assert_job_cancelled(portable: dict) -> None:
    assert portable["exit_code"] == 0, "SIGTERM cancels the job and the client exits cleanly"
    assert len(portable["jobs"]) == 1, f"one job submitted to the standalone Prism: {portable['jobs']}"
    assert portable["jobs"][0][2] == "CANCELLED", f"the job is cancelled on the job server, not left running: {portable['jobs']}"


def test_portable_external_worker_pool_gives_the_same_rows(scenario: dict, direct_run: dict, job_server: JobServer) -> None:
    portable = _portable_run(scenario, job_server, "java", ["--environment_type=EXTERNAL",
                                                            f"--environment_config={worker_pool_endpoint()}"])
    _assert_same(portable, direct_run)
    _assert_job_cancelled(portable)


def test_portable_loopback_gives_the_same_rows(scenario: dict, direct_run: dict, job_server: JobServer) -> None:
    # The smaller smoke: our own Python Kafka reader (no Java harness), SDK worker inside the submitting process.
    portable = _portable_run(scenario, job_server, "python", ["--environment_type=LOOPBACK"])
    _assert_same(portable, direct_run)
    _assert_job_cancelled(portable)
