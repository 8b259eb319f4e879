"""Acceptance of the DLQ tooling on the real stack: calls fail in the download and score stages (and one message is
schema-invalid), the cause is fixed, the REST API requeues them by error type and each ends SCORED exactly once; a second
requeue changes nothing; every endpoint checks its bearer token."""

from __future__ import annotations

import json
import os
import random
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from ccas.apps import App, ccas_command, free_port, wait_http
from core.kafka import producer
from tests.pipeline import e2e

pytestmark = pytest.mark.integration

CALLS = 6


@pytest.fixture(scope="module")
def run(stack_env: dict[str, str]) -> Iterator[dict[str, Any]]:
    """Recorder (one dead replay, one corrupt recording) → poller → pipeline until both failures are dead letters; ops API."""
    seed = random.randrange(10_000, 99_999)
    bootstrap = stack_env["CCAS_KAFKA_BOOTSTRAP"]
    test_start = datetime.now(UTC)
    services = e2e.start_services(seed, CALLS)
    apps: list[App] = []
    try:
        planned = services.recorder_calls()
        inums = sorted(call["inum"] for call in planned)
        dead, corrupt = random.Random(seed).sample(inums, 2)
        services.configure_recorder({"replay_failures": {dead: -1}, "corrupt_inums": [corrupt]})
        with e2e.scratch_database(stack_env["CCAS_DATABASE_URL"]) as url:
            start = e2e.end_offsets(bootstrap, "calls.raw")
            outputs_start = e2e.end_offsets(bootstrap, "scoring.results")
            group = f"ccas-pipeline-dlq-{uuid.uuid4().hex[:8]}"
            e2e.commit_group(bootstrap, group, "calls.raw", start)
            first = min(datetime.fromisoformat(call["started_at"]) for call in planned) - timedelta(minutes=1)
            e2e.poll_once(services, url, first, datetime.now(UTC) - timedelta(seconds=5))
            published = e2e.read_since(bootstrap, "calls.raw", start)
            invalid = {**published[0], "call_id": "bad-" + uuid.uuid4().hex[:8], "ingest_uuid": str(uuid.uuid4())}
            del invalid["started_at"]
            send = producer(bootstrap)
            send.send("calls.raw", key=invalid["call_id"].encode(), value=json.dumps(invalid).encode())
            send.flush()
            send.close()
            pipeline = e2e.start_pipeline(services, url, group, "python", f"pipeline-{group}.log")
            apps.append(pipeline)

            def settled() -> bool:
                scored = e2e.query(url, "SELECT count(*) FROM call WHERE status = 'SCORED'")[0][0]
                errors = e2e.query(url, "SELECT count(*) FROM call WHERE status = 'ERROR'")[0][0]
                return scored >= len(inums) - 2 and errors >= 2

            e2e.wait_until(settled, 300, "the good calls scored and two dead-lettered", [pipeline])
            port = free_port()
            api = App("ops-api", ccas_command("ops-api", "--port", str(port)),
                      e2e.log_path(f"ops-api-{seed}.log"), env={"CCAS_DATABASE_URL": url}).start()
            apps.append(api)
            wait_http(f"http://127.0.0.1:{port}/healthz", 60, api)
            yield {"services": services, "url": url, "api": f"http://127.0.0.1:{port}", "token": stack_env["CCAS_OPS_TOKEN"],
                   "inums": inums, "dead": dead, "corrupt": corrupt, "invalid": invalid["call_id"], "bootstrap": bootstrap,
                   "since": test_start.isoformat(), "outputs_start": outputs_start, "pipeline": pipeline,
                   "raw_start": start}
    finally:
        for app in reversed(apps):
            app.stop()
        services.stop()


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _post(run: dict, body: dict) -> dict:
    answer = requests.post(f"{run['api']}/v1/dlq/requeue", json=body, headers=_auth(run["token"]), timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.parametrize("method,path,body", [
    ("GET", "/v1/dlq", None), ("GET", "/v1/dlq/{dead}", None),
    ("POST", "/v1/dlq/requeue", {"call_ids": ["{dead}"], "dry_run": True}),
])
def test_every_endpoint_checks_the_bearer_token(run: dict, method: str, path: str, body: dict | None) -> None:
    url = run["api"] + path.format(dead=run["dead"])
    payload = json.loads(json.dumps(body).replace("{dead}", run["dead"])) if body else None
    assert requests.request(method, url, json=payload, timeout=60).status_code == 401
    wrong = requests.request(method, url, json=payload, headers=_auth("not-the-token-" + uuid.uuid4().hex), timeout=60)
    assert wrong.status_code == 403
    good = requests.request(method, url, json=payload, headers=_auth(run["token"]), timeout=60)
    assert good.status_code == 200, good.text


def test_inputs_are_validated(run: dict) -> None:
    headers = _auth(run["token"])
    assert requests.get(f"{run['api']}/v1/dlq", params={"topic": "calls.raw"}, headers=headers, timeout=30).status_code == 422
    assert requests.get(f"{run['api']}/v1/dlq/bad%20id;drop", headers=headers, timeout=30).status_code == 422
    answer = requests.post(f"{run['api']}/v1/dlq/requeue", json={"error_type": "X", "all": True}, headers=headers, timeout=30)
    assert answer.status_code == 422


def test_dead_letters_are_listed_and_shown(run: dict) -> None:
    headers = _auth(run["token"])
    listed = requests.get(f"{run['api']}/v1/dlq", params={"since": run["since"]}, headers=headers, timeout=60).json()
    ours = {(row["call_id"], row["stage"], row["error_type"], row["dlq_topic"]) for row in listed
            if row["call_id"] in {run["dead"], run["corrupt"], run["invalid"]}}
    # calls.raw is shared: another pipeline on this stack (another group, another recorder) may dead-letter our calls too
    # (AvayaRejected: its recorder does not know them), so ours are a subset of what is listed.
    assert {(run["dead"], "download", "AvayaUnavailable", "audio.ready.dlq"),
            (run["corrupt"], "score", "ScoringRejected", "scoring.results.dlq"),
            (run["invalid"], "parse", "SchemaError", "calls.raw.dlq")} <= ours
    shown = requests.get(f"{run['api']}/v1/dlq/{run['dead']}", headers=headers, timeout=60).json()
    assert shown[0]["payload"]["call_id"] == run["dead"] and shown[0]["stack"] and shown[0]["retries"] == 5


def test_the_cli_lists_shows_and_dry_runs(run: dict) -> None:
    def ccas(*args: str) -> subprocess.CompletedProcess:  # the URL carries the password: environment, not argv
        return subprocess.run(ccas_command("dlq", *args), capture_output=True, text=True, timeout=120, check=False,
                              env={**os.environ, "CCAS_DATABASE_URL": run["url"]})

    listed = ccas("list", "--stage", "download", "--since", run["since"], "--json")
    assert listed.returncode == 0, listed.stderr
    assert run["dead"] in {row["call_id"] for row in json.loads(listed.stdout)}
    shown = ccas("show", run["dead"])
    assert json.loads(shown.stdout)[0]["payload"]["call_id"] == run["dead"]
    assert ccas("show", "../etc").returncode == 2
    dry = ccas("requeue", "--call-id", run["corrupt"], "--dry-run")
    assert dry.returncode == 0 and "would_requeue" in dry.stdout, dry.stdout + dry.stderr
    assert e2e.query(run["url"], "SELECT count(*) FROM dlq_requeue")[0][0] == 0, "a dry run records nothing"


def test_requeue_by_error_type_scores_each_call_exactly_once_and_twice_changes_nothing(run: dict) -> None:
    fixed = {run["dead"], run["corrupt"]}
    # Only the records of the error type asked: the dead replay is not a ScoringRejected record.
    assert _post(run, {"error_type": "ScoringRejected", "call_ids": [run["dead"]], "since": run["since"]})["outcomes"] == []
    # A schema-invalid message cannot be fixed by a requeue: reported, never republished.
    invalid = _post(run, {"call_ids": [run["invalid"]]})["outcomes"]
    assert invalid and {o["action"] for o in invalid} == {"invalid"}, invalid

    run["services"].configure_recorder({"replay_failures": {}, "corrupt_inums": []})
    requeued: dict[str, dict] = {}
    for error_type, call_id in (("AvayaUnavailable", run["dead"]), ("ScoringRejected", run["corrupt"])):
        answer = _post(run, {"error_type": error_type, "call_ids": [call_id], "since": run["since"]})
        assert [(o["call_id"], o["action"], o["requeue_count"]) for o in answer["outcomes"]] == [(call_id, "requeued", 1)]
        requeued[call_id] = answer["outcomes"][0]

    def all_scored() -> bool:
        rows = dict(e2e.query(run["url"], "SELECT call_id, status FROM call"))
        return all(rows.get(inum) == "SCORED" for inum in run["inums"])

    e2e.wait_until(all_scored, 240, "the requeued calls to be SCORED", [run["pipeline"]])
    counts = dict(e2e.query(run["url"], "SELECT call_id, count(*) FROM scoring_result GROUP BY call_id"))
    assert counts == {inum: 1 for inum in run["inums"]}, "one scoring_result per call"
    rows = e2e.query(run["url"], "SELECT call_id, requeue_count, ingest_uuid::text FROM dlq_requeue ORDER BY call_id")
    assert rows == sorted((c, 1, requeued[c]["ingest_uuid"]) for c in fixed)
    # The ops API records the caller's token name (the local stack's CCAS_OPS_TOKEN is the named token dev-operator).
    assert e2e.query(run["url"], "SELECT DISTINCT requested_by FROM dlq_requeue") == [("dev-operator",)]

    before = e2e.end_offsets(run["bootstrap"], "calls.raw")
    again = [outcome for error_type in ("AvayaUnavailable", "ScoringRejected")
             for outcome in _post(run, {"error_type": error_type, "call_ids": sorted(fixed), "since": run["since"]})["outcomes"]]
    assert sorted((o["call_id"], o["action"]) for o in again) == sorted((c, "already_requeued") for c in fixed)
    assert [v for v in e2e.read_since(run["bootstrap"], "calls.raw", before) if v.get("call_id") in fixed] == []
    assert e2e.query(run["url"], "SELECT count(*) FROM dlq_requeue")[0][0] == 2
    results = [v["call_id"] for v in e2e.read_since(run["bootstrap"], "scoring.results", run["outputs_start"])
               if v.get("call_id") in fixed]
    assert sorted(results) == sorted(fixed), "each requeued call scored exactly once"


def test_a_scored_call_is_reported_not_requeued(run: dict) -> None:
    good = sorted(set(run["inums"]) - {run["dead"], run["corrupt"]})[0]
    original = [v for v in e2e.read_since(run["bootstrap"], "calls.raw", run["raw_start"]) if v.get("call_id") == good][-1]
    letter = {"call_id": good, "stage": "download", "source_topic": "calls.raw", "source_partition": 0, "source_offset": 0,
              "error_type": "SyntheticForTest", "error": "synthetic", "stack": "", "retries": 0,
              "failed_at": datetime.now(UTC).isoformat(), "payload": original}
    send = producer(run["bootstrap"])
    send.send("audio.ready.dlq", key=good.encode(), value=json.dumps(letter).encode()).get(timeout=30)
    send.close()
    outcomes = _post(run, {"call_ids": [good], "error_type": "SyntheticForTest"})["outcomes"]
    assert [(o["call_id"], o["action"]) for o in outcomes] == [(good, "already_scored")]
