"""`ccas dlq list` and GET /v1/dlq on the real stack show what became of each dead letter: four dead letters of one test
(error type unique to the run), one requeued and then scored the way the pipeline records it, one requeued whose call is still
ERROR, one waiting, one parse failure without a call row. Listing shows requeued / call status / result per record;
hide-resolved hides exactly the scored one; an unreachable PostgreSQL leaves the records listed with unknown states."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from ccas.apps import App, ccas_command, free_port, wait_http
from core.kafka import producer
from pipeline.io.database import Database
from pipeline.model import EnrichedCall, ScoredCall, SourcePosition, StoredAudio
from tests.pipeline import e2e

pytestmark = pytest.mark.integration

STAGE_TOPIC = {"download": "audio.ready.dlq", "score": "scoring.results.dlq", "parse": "calls.raw.dlq"}


def _raw_value(call_id: str) -> dict[str, Any]:
    return {"call_id": call_id, "started_at": "2026-11-25T09:58:00+00:00", "ended_at": "2026-11-25T09:59:46+00:00",
            "duration": 106.0, "raw_agent": "1234 (agent1234.247)", "other_parties": "0901234567", "skill": "billing",
            "service": "VDN 5001", "switch_call_id": "00012A3F", "event_ts": "2026-11-25T10:00:00+00:00",
            "ingest_uuid": str(uuid.uuid4())}


def _enriched(call_id: str) -> EnrichedCall:
    return EnrichedCall(call_id, "2026-11-25T09:58:00+00:00", "2026-11-25T09:59:46+00:00", 106.0, "1234", "agent1234.247",
                        None, "billing", "VDN 5001", "00012A3F", SourcePosition("calls.raw", 0, 0))  # no customer_key


def _score(database: Database, call_id: str) -> None:
    """What the pipeline writes for a requeued call: call back to PENDING_DOWNLOAD, audio READY, result and SCORED."""
    call = _enriched(call_id)
    database.upsert_calls([call])
    audio = StoredAudio(call, f"recordings/{call_id}.wav", None, "0" * 64, 1000, "pcm_s16le", 8000, 1, 106.0,
                        datetime.now(UTC).isoformat())
    database.record_assets([audio])
    database.record_scores([ScoredCall(audio, 87.5, True, None, "test-1", 12, [], {"score": 87.5})], {call_id: 1000})


def _ccas(*args: str, database_url: str) -> subprocess.CompletedProcess:
    """The URL (it carries the password) goes in the environment: a command line is readable by every local user."""
    return subprocess.run(ccas_command("dlq", *args), capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "CCAS_DATABASE_URL": database_url})


@pytest.fixture(scope="module")
def run(stack_env: dict[str, str]) -> Iterator[dict[str, Any]]:
    tag = uuid.uuid4().hex[:8]
    calls = {name: f"lst{tag}{name}" for name in ("scored", "pending", "waiting", "parse")}
    stages = {"scored": "download", "pending": "score", "waiting": "download", "parse": "parse"}
    error_type = f"ListingTest_{tag}"
    since = datetime.now(UTC).isoformat()
    bootstrap = stack_env["CCAS_KAFKA_BOOTSTRAP"]
    send = producer(bootstrap)
    for name, call_id in calls.items():
        letter = {"call_id": call_id, "stage": stages[name], "source_topic": "calls.raw", "source_partition": 0,
                  "source_offset": 0, "error_type": error_type, "error": f"synthetic {name}", "stack": "", "retries": 1,
                  "failed_at": datetime.now(UTC).isoformat(), "payload": _raw_value(call_id)}
        send.send(STAGE_TOPIC[stages[name]], key=call_id.encode(), value=json.dumps(letter).encode()).get(timeout=30)
    send.close()
    apps: list[App] = []
    with e2e.scratch_database(stack_env["CCAS_DATABASE_URL"]) as url:
        database = Database(url)
        try:
            failed = [calls["scored"], calls["pending"], calls["waiting"]]
            database.upsert_calls([_enriched(call_id) for call_id in failed])
            database.mark_errors({call_id: "synthetic failure" for call_id in failed})
            requeue = _ccas("requeue", "--call-id", calls["scored"], calls["pending"], "--since", since, database_url=url)
            assert requeue.returncode == 0 and requeue.stdout.count(" requeued ") == 2, requeue.stdout + requeue.stderr
            _score(database, calls["scored"])
            closed = f"postgresql://ccas:not-the-password@127.0.0.1:{free_port()}/ccas"
            apis = {}
            for name, database_url in (("api", url), ("api_no_db", closed)):
                port = free_port()
                api = App(f"ops-api-{name}", ccas_command("ops-api", "--port", str(port)),
                          e2e.log_path(f"ops-api-listing-{tag}-{name}.log"),
                          env={"CCAS_DATABASE_URL": database_url}).start()
                apps.append(api)
                wait_http(f"http://127.0.0.1:{port}/healthz", 60, api)
                apis[name] = f"http://127.0.0.1:{port}/v1/dlq"
            yield {"url": url, "closed": closed, "calls": calls, "error_type": error_type, "since": since,
                   "token": stack_env["CCAS_OPS_TOKEN"], **apis}
        finally:
            for app in reversed(apps):
                app.stop()
            database.close()


def _by_name(run: dict, rows: list[dict]) -> dict[str, dict]:
    names = {call_id: name for name, call_id in run["calls"].items()}
    return {names[row["call_id"]]: row for row in rows if row["call_id"] in names}


def _cli_rows(run: dict, *extra: str, database_url: str | None = None) -> tuple[list[dict], str]:
    listed = _ccas("list", "--since", run["since"], "--error-type", run["error_type"], "--json", *extra,
                   database_url=database_url or run["url"])
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout), listed.stderr


def _api_rows(run: dict, api: str, **params: str) -> requests.Response:
    answer = requests.get(run[api], params={"since": run["since"], "error_type": run["error_type"], **params},
                          headers={"Authorization": f"Bearer {run['token']}"}, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer


def _check_states(run: dict, rows: list[dict]) -> None:
    by_name = _by_name(run, rows)
    assert len(rows) == 4 and set(by_name) == {"scored", "pending", "waiting", "parse"}, rows
    requeues = {call_id: (count, ingest_uuid, by) for call_id, count, ingest_uuid, by in e2e.query(
        run["url"], "SELECT call_id, requeue_count, ingest_uuid::text, requested_by FROM dlq_requeue")}
    for name in ("scored", "pending"):
        row = by_name[name]
        assert row["requeued"] is True and row["requeued_at"]
        assert (row["requeue_count"], row["requeue_ingest_uuid"], row["requeued_by"]) == requeues[row["call_id"]] == (
            1, row["requeue_ingest_uuid"], getpass.getuser())  # `ccas dlq requeue` records the OS user who ran it
    assert (by_name["scored"]["call_status"], by_name["scored"]["has_scoring_result"], by_name["scored"]["resolved"]) == (
        "SCORED", True, True)
    assert (by_name["pending"]["call_status"], by_name["pending"]["resolved"]) == ("ERROR", False)
    for name, status in (("waiting", "ERROR"), ("parse", None)):
        row = by_name[name]
        assert (row["requeued"], row["requeue_count"], row["call_status"], row["has_scoring_result"], row["resolved"]) == (
            False, None, status, False, False), row


def test_cli_json_shows_requeue_and_call_status(run: dict) -> None:
    rows, stderr = _cli_rows(run)
    assert stderr == ""
    _check_states(run, rows)


def test_cli_hide_resolved_hides_exactly_the_scored_call(run: dict) -> None:
    rows, _ = _cli_rows(run, "--hide-resolved")
    assert set(_by_name(run, rows)) == {"pending", "waiting", "parse"}
    table = _ccas("list", "--since", run["since"], "--error-type", run["error_type"], "--hide-resolved",
                  database_url=run["url"])
    assert table.returncode == 0 and table.stdout.splitlines()[-1] == "3 dead letter(s), 1 resolved hidden", table.stdout
    assert run["calls"]["scored"] not in table.stdout


def test_cli_table_shows_the_columns_and_the_requeue_line(run: dict) -> None:
    table = _ccas("list", "--since", run["since"], "--error-type", run["error_type"], database_url=run["url"])
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["call_id", "stage", "error_type", "retries", "failed_at", "requeued", "call_status", "result",
                                "error"]
    cells = {line.split()[0]: line.split() for line in lines[1:-1] if not line.startswith(" ")}
    calls = run["calls"]
    assert cells[calls["scored"]][6:10] == ["yes", "#1", "SCORED", "yes"]
    assert cells[calls["pending"]][6:10] == ["yes", "#1", "ERROR", "no"]
    assert cells[calls["waiting"]][6:9] == ["no", "ERROR", "no"]
    assert cells[calls["parse"]][6:9] == ["no", "-", "no"]
    ingest_uuid = e2e.query(run["url"], "SELECT ingest_uuid::text FROM dlq_requeue WHERE call_id = %s",
                            (calls["scored"],))[0][0]
    scored_line = next(i for i, line in enumerate(lines) if line.startswith(calls["scored"]))
    assert lines[scored_line + 1].split()[:2] == ["requeued", "#1"] and lines[scored_line + 1].endswith(ingest_uuid)
    assert lines[-1] == "4 dead letter(s)"


def test_cli_lists_with_unknown_states_when_postgresql_is_unreachable(run: dict) -> None:
    for extra in ((), ("--hide-resolved",)):
        rows, stderr = _cli_rows(run, *extra, database_url=run["closed"])
        assert len(_by_name(run, rows)) == 4 and {row["resolved"] for row in rows} == {None}
        assert {row["call_status"] for row in rows} == {None} and {row["requeued"] for row in rows} == {None}
        assert len(stderr.strip().splitlines()) == 1, stderr
        assert "status unknown because PostgreSQL is unreachable" in stderr and "not-the-password" not in stderr
        assert ("nothing hidden" in stderr) == bool(extra)


def test_api_shows_requeue_and_call_status_and_hides_resolved(run: dict) -> None:
    answer = _api_rows(run, "api")
    assert "X-CCAS-Status-Unknown" not in answer.headers
    _check_states(run, answer.json())
    hidden = _api_rows(run, "api", hide_resolved="true").json()
    assert set(_by_name(run, hidden)) == {"pending", "waiting", "parse"}


def test_api_lists_with_unknown_states_when_postgresql_is_unreachable(run: dict) -> None:
    answer = _api_rows(run, "api_no_db", hide_resolved="true")
    assert "PostgreSQL is unreachable" in answer.headers["X-CCAS-Status-Unknown"]
    rows = answer.json()
    assert len(_by_name(run, rows)) == 4 and {row["resolved"] for row in rows} == {None}
    assert {row["call_status"] for row in rows} == {None}
