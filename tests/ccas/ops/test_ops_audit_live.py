"""The ops API's audit rows on the real stack: a dead letter carrying a customer number on audio.ready.dlq, the API in process
(TestClient) on the stack's Kafka and a scratch database, with the local stack's own named tokens (dev-operator, dev-admin)
plus a viewer. Each refusal is checked for its status and its audit_log row, and the CLI's requeue for who ran it."""

from __future__ import annotations

import json
import os
import random
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ccas.apps import ccas_command, free_port
from ccas.ops.api.main import create_app
from ccas.ops.settings import OpsSettings
from core.kafka import producer
from tests.pipeline import e2e

pytestmark = pytest.mark.integration


def _token(stack_env: dict[str, str], name: str) -> str:
    entries = dict(entry.split(":", 1) for entry in stack_env["CCAS_OPS_TOKENS"].split(","))
    return entries[name].split(":", 1)[1]


@pytest.fixture(scope="module")
def run(stack_env: dict[str, str]) -> Iterator[dict[str, Any]]:
    tag = uuid.uuid4().hex[:8]
    call_id = f"aud{tag}"
    customer = "09" + "".join(random.choices("0123456789", k=8))
    error_type = f"AuditTest_{tag}"
    raw = {"call_id": call_id, "started_at": "2026-11-25T09:58:00+00:00", "ended_at": "2026-11-25T09:59:46+00:00",
           "duration": 106.0, "raw_agent": "1234 (agent1234.247)", "other_parties": customer, "skill": "billing",
           "service": "VDN 5001", "switch_call_id": "00012A3F", "event_ts": "2026-11-25T10:00:00+00:00",
           "ingest_uuid": str(uuid.uuid4())}
    letter = {"call_id": call_id, "stage": "download", "source_topic": "calls.raw", "source_partition": 0, "source_offset": 0,
              "error_type": error_type, "error": f"replay refused for {customer}", "stack": "", "retries": 1,
              "failed_at": datetime.now(UTC).isoformat(), "payload": raw}
    bootstrap = stack_env["CCAS_KAFKA_BOOTSTRAP"]
    send = producer(bootstrap)
    send.send("audio.ready.dlq", key=call_id.encode(), value=json.dumps(letter).encode()).get(timeout=30)
    send.close()
    viewer = secrets.token_urlsafe(24)
    with e2e.scratch_database(stack_env["CCAS_DATABASE_URL"]) as url:
        settings = OpsSettings(kafka_bootstrap=bootstrap, database_url=url,
                               ops_tokens=f"{stack_env['CCAS_OPS_TOKENS']},it-viewer:viewer:{viewer}")
        with TestClient(create_app(settings)) as client:
            yield {"client": client, "url": url, "call_id": call_id, "customer": customer, "error_type": error_type,
                   "bootstrap": bootstrap, "tokens": {"it-viewer": viewer, "dev-operator": _token(stack_env, "dev-operator"),
                                                      "dev-admin": _token(stack_env, "dev-admin")}}


def _as(run: dict, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {run['tokens'][name]}"}


def _rows(run: dict, action: str) -> list[tuple]:
    return e2e.query(run["url"], "SELECT actor, role, object_type, object_id, source, outcome FROM audit_log"
                                 " WHERE action = %s ORDER BY id", (action,))


def test_the_local_stack_tokens_are_an_operator_and_an_admin(stack_env: dict[str, str]) -> None:
    roles = {entry.split(":")[0]: entry.split(":")[1] for entry in stack_env["CCAS_OPS_TOKENS"].split(",")}
    assert roles == {"dev-operator": "operator", "dev-admin": "admin"}
    assert _token(stack_env, "dev-operator") == stack_env["CCAS_OPS_TOKEN"], "the single-token form keeps working"


def test_a_viewer_reads_the_masked_payload_and_the_read_is_audited(run: dict) -> None:
    answer = run["client"].get(f"/v1/dlq/{run['call_id']}", headers=_as(run, "it-viewer"))
    assert answer.status_code == 200, answer.text
    assert run["customer"] not in answer.text
    assert answer.json()[0]["payload"]["other_parties"] == "*" * 8 + run["customer"][-2:]
    assert _rows(run, "dlq.read") == [("it-viewer", "viewer", "dead_letter", run["call_id"], "testclient", "ok")]


def test_an_operator_asking_for_the_full_payload_is_refused_and_audited_then_an_admin_gets_it(run: dict) -> None:
    refused = run["client"].get(f"/v1/dlq/{run['call_id']}", params={"full": "true"}, headers=_as(run, "dev-operator"))
    assert refused.status_code == 403 and refused.json()["detail"] == "role operator may not read full dead-letter payloads"
    assert run["customer"] not in refused.text
    full = run["client"].get(f"/v1/dlq/{run['call_id']}", params={"full": "true"}, headers=_as(run, "dev-admin"))
    assert full.status_code == 200 and full.json()[0]["payload"]["other_parties"] == run["customer"]
    assert _rows(run, "dlq.read_full") == [("dev-operator", "operator", "dead_letter", run["call_id"], "testclient", "denied"),
                                           ("dev-admin", "admin", "dead_letter", run["call_id"], "testclient", "ok")]


def test_a_listing_is_audited_with_its_filter(run: dict) -> None:
    answer = run["client"].get("/v1/dlq", params={"error_type": run["error_type"]}, headers=_as(run, "it-viewer"))
    assert answer.status_code == 200 and [row["call_id"] for row in answer.json()] == [run["call_id"]]
    assert run["customer"] not in answer.text, "the error line quotes the number: masked"
    assert _rows(run, "dlq.list") == [("it-viewer", "viewer", "dlq", f"error_type={run['error_type']}", "testclient", "ok")]


def test_a_viewer_requeue_is_refused_and_audited_and_an_operator_requeue_names_the_operator(run: dict) -> None:
    body = {"call_ids": [run["call_id"]], "error_type": run["error_type"]}
    refused = run["client"].post("/v1/dlq/requeue", json=body, headers=_as(run, "it-viewer"))
    assert refused.status_code == 403 and refused.json()["detail"] == "role viewer may not requeue dead letters"
    assert e2e.query(run["url"], "SELECT count(*) FROM dlq_requeue")[0][0] == 0
    done = run["client"].post("/v1/dlq/requeue", json=body, headers=_as(run, "dev-operator"))
    assert done.status_code == 200 and done.json()["requeued"] == 1, done.text
    assert e2e.query(run["url"], "SELECT call_id, requested_by FROM dlq_requeue") == [(run["call_id"], "dev-operator")]
    selection = f"call_ids={run['call_id']}&error_type={run['error_type']}"
    assert _rows(run, "dlq.requeue") == [("it-viewer", "viewer", "dlq", selection, "testclient", "denied"),
                                         ("dev-operator", "operator", "dlq", selection, "testclient", "ok")]
    detail = e2e.query(run["url"], "SELECT detail FROM audit_log WHERE action = 'dlq.requeue' AND outcome = 'ok'")[0][0]
    assert detail == {"dry_run": False, "call_ids": [run["call_id"]], "actions": {"requeued": 1}}


def test_an_unknown_token_is_refused_and_leaves_no_audit_row(run: dict) -> None:
    before = e2e.query(run["url"], "SELECT count(*) FROM audit_log")[0][0]
    answer = run["client"].get(f"/v1/dlq/{run['call_id']}", headers={"Authorization": "Bearer " + secrets.token_urlsafe(24)})
    assert answer.status_code == 403
    assert run["client"].get(f"/v1/dlq/{run['call_id']}").status_code == 401
    assert e2e.query(run["url"], "SELECT count(*) FROM audit_log")[0][0] == before


def test_a_read_is_refused_when_its_audit_row_cannot_be_written(run: dict) -> None:
    closed = f"postgresql://ccas:not-the-password@127.0.0.1:{free_port()}/ccas"
    settings = OpsSettings(kafka_bootstrap=run["bootstrap"], database_url=closed,
                           ops_tokens=f"dev-admin:admin:{run['tokens']['dev-admin']}")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        answer = client.get(f"/v1/dlq/{run['call_id']}", params={"full": "true"}, headers=_as(run, "dev-admin"))
    assert answer.status_code == 500 and run["customer"] not in answer.text and run["call_id"] not in answer.text


def test_the_cli_requeue_records_who_ran_it(run: dict) -> None:
    done = subprocess.run(ccas_command("dlq", "requeue", "--call-id", run["call_id"], "--dry-run",
                                       "--requested-by", "it-cli-user"),
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "CCAS_DATABASE_URL": run["url"]})
    assert done.returncode == 0, done.stdout + done.stderr
    rows = e2e.query(run["url"], "SELECT actor, role, object_id, outcome, detail FROM audit_log WHERE role = 'cli'")
    assert [(actor, role, object_id, outcome) for actor, role, object_id, outcome, _ in rows] == [
        ("it-cli-user", "cli", f"call_ids={run['call_id']}", "ok")]
    assert rows[0][4]["dry_run"] is True
