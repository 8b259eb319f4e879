"""The ops API's named tokens, roles, audit rows and masking, in process (FastAPI TestClient): Kafka, PostgreSQL and the
audit table replaced by recorders, so every refusal and every audited outcome is checked without a stack."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg2
import pytest
from fastapi.testclient import TestClient

from ccas.ops import audit, dlq, dlq_state, tokens
from ccas.ops.api import dlq as dlq_routes
from ccas.ops.api.main import create_app
from ccas.ops.dlq import DeadLetterRecord
from ccas.ops.requeue import Outcome
from ccas.ops.settings import OpsSettings

CUSTOMER = "0901234567"
CALL_ID = "100000123456"
TOKENS = {"vera": ("viewer", "viewer-token-0123456789"), "otto": ("operator", "operator-token-0123456789"),
          "ada": ("admin", "admin-token-0123456789abc")}


def _letter(call_id: str = CALL_ID, payload: Any = None) -> DeadLetterRecord:
    raw = {"call_id": call_id, "started_at": "2026-11-25T09:58:00+00:00", "other_parties": CUSTOMER, "skill": "billing"}
    return DeadLetterRecord("audio.ready.dlq", 0, 7, {
        "call_id": call_id, "stage": "download", "error_type": "AvayaUnavailable", "retries": 5,
        "failed_at": "2026-11-25T10:00:00+00:00", "error": f"replay of {call_id} for {CUSTOMER} failed", "stack": "trace",
        "payload": raw if payload is None else payload})


@dataclass
class Fakes:
    letters: list[DeadLetterRecord] = field(default_factory=lambda: [_letter()])
    audit_rows: list[dict[str, Any]] = field(default_factory=list)
    audit_fails: bool = False
    requested_by: list[str] = field(default_factory=list)


@pytest.fixture(autouse=True)
def _no_stack_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    # An integration fixture may have filled the local stack's tokens into this process's environment.
    for name in ("CCAS_OPS_TOKEN", "CCAS_OPS_TOKENS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Fakes:
    state = Fakes()

    def record(url: Any, actor: str, role: str, action: str, object_type: str, object_id: str, source: str | None,
               outcome: str, detail: dict[str, Any] | None = None) -> None:
        if state.audit_fails:
            raise psycopg2.OperationalError("connection refused")
        state.audit_rows.append({"actor": actor, "role": role, "action": action, "object_type": object_type,
                                 "object_id": object_id, "source": source, "outcome": outcome, "detail": detail})

    class FakeRequeuer:
        def __init__(self, bootstrap: str, database_url: str, requested_by: str = "cli") -> None:
            state.requested_by.append(requested_by)

        def requeue(self, where: dlq.Filter, dry_run: bool = False) -> list[Outcome]:
            return [Outcome(CALL_ID, "audio.ready.dlq:0:7", "download", "AvayaUnavailable",
                            "would_requeue" if dry_run else "requeued", "to calls.raw", 1)]

    monkeypatch.setattr(audit, "record", record)
    monkeypatch.setattr(dlq, "show", lambda bootstrap, call_id: [r for r in state.letters if r.call_id == call_id])
    monkeypatch.setattr(dlq, "list_dead_letters", lambda bootstrap, where: [r for r in state.letters if where.matches(r)])
    monkeypatch.setattr(dlq_state, "annotate", lambda records, url: dlq_state.Listing(records, None, "not asked in tests"))
    monkeypatch.setattr(dlq_routes, "Requeuer", FakeRequeuer)
    return state


def _settings(**values: Any) -> OpsSettings:
    named = ",".join(f"{name}:{role}:{token}" for name, (role, token) in TOKENS.items())
    return OpsSettings(kafka_bootstrap="127.0.0.1:9", database_url="postgresql://nobody@127.0.0.1:9/none",
                       **({"ops_tokens": named} | values))


@pytest.fixture
def client(fakes: Fakes) -> Iterator[TestClient]:
    with TestClient(create_app(_settings())) as test_client:
        yield test_client


def _as(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name][1]}"}


REQUEUE = {"call_ids": [CALL_ID]}
ROUTES = [("GET", "/v1/dlq", None), ("GET", f"/v1/dlq/{CALL_ID}", None), ("POST", "/v1/dlq/requeue", REQUEUE)]


@pytest.mark.parametrize("method,path,body", ROUTES)
def test_no_token_is_401_and_a_wrong_one_403_logged_with_the_address_only(
        client: TestClient, fakes: Fakes, caplog: pytest.LogCaptureFixture, method: str, path: str, body: Any) -> None:
    assert client.request(method, path, json=body).status_code == 401
    wrong = "wrong-token-" + "x" * 20
    with caplog.at_level(logging.WARNING, logger="ccas.ops.api.deps"):
        answer = client.request(method, path, json=body, headers={"Authorization": f"Bearer {wrong}"})
    assert answer.status_code == 403 and answer.json()["detail"] == "invalid token"
    assert fakes.audit_rows == [], "an unknown token has no identity to audit"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "testclient" in warnings[0] and wrong not in warnings[0]


def test_every_token_is_compared_even_after_a_match(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[bytes] = []
    real = tokens.secrets.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return real(a, b)

    monkeypatch.setattr(tokens.secrets, "compare_digest", counting)
    known = _settings().tokens()
    assert tokens.identify(TOKENS["vera"][1], known) == known[0]  # the first entry matches...
    assert len(compared) == len(known) == 3  # ...and the other two are compared all the same
    assert tokens.identify("x" * 30, known) is None and len(compared) == 6


def test_a_viewer_lists_and_the_listing_is_audited_with_its_filter(client: TestClient, fakes: Fakes) -> None:
    answer = client.get("/v1/dlq", params={"stage": "download", "error_type": "AvayaUnavailable"}, headers=_as("vera"))
    assert answer.status_code == 200, answer.text
    assert [row["call_id"] for row in answer.json()] == [CALL_ID]
    assert CUSTOMER not in answer.text, "the error line is masked too"
    assert fakes.audit_rows == [{"actor": "vera", "role": "viewer", "action": "dlq.list", "object_type": "dlq",
                                 "object_id": "stage=download&error_type=AvayaUnavailable", "source": "testclient",
                                 "outcome": "ok", "detail": {"records": 1}}]


def test_a_viewer_reads_a_masked_payload_and_the_read_is_audited(client: TestClient, fakes: Fakes) -> None:
    answer = client.get(f"/v1/dlq/{CALL_ID}", headers=_as("vera"))
    assert answer.status_code == 200, answer.text
    assert CUSTOMER not in answer.text
    shown = answer.json()[0]
    assert shown["payload"]["other_parties"] == "********67" and shown["payload"]["call_id"] == CALL_ID
    assert shown["error"] == f"replay of {CALL_ID} for ********67 failed", "the call's own id stays readable"
    assert [(r["actor"], r["action"], r["object_id"], r["outcome"]) for r in fakes.audit_rows] == [
        ("vera", "dlq.read", CALL_ID, "ok")]


@pytest.mark.parametrize("payload", [json.dumps({"other_parties": CUSTOMER, "call_id": CALL_ID}),
                                     f"inum={CALL_ID};ani={CUSTOMER};", CUSTOMER, "84901234567"])
def test_payload_text_is_masked_json_or_not(client: TestClient, fakes: Fakes, payload: str) -> None:
    fakes.letters = [_letter(payload=payload)]
    answer = client.get(f"/v1/dlq/{CALL_ID}", headers=_as("otto"))
    assert answer.status_code == 200
    assert CUSTOMER not in answer.text and "901234567" not in answer.text
    assert "67" in answer.json()[0]["payload"], "the last two digits stay, to tell numbers apart"


def test_a_missing_call_is_404_and_audited_not_found(client: TestClient, fakes: Fakes) -> None:
    assert client.get("/v1/dlq/nosuchcall", headers=_as("vera")).status_code == 404
    assert [(r["action"], r["object_id"], r["outcome"]) for r in fakes.audit_rows] == [("dlq.read", "nosuchcall", "not_found")]


def test_an_operator_may_not_read_full_payloads_and_the_attempt_is_audited(client: TestClient, fakes: Fakes) -> None:
    for name in ("vera", "otto"):
        answer = client.get(f"/v1/dlq/{CALL_ID}", params={"full": "true"}, headers=_as(name))
        assert answer.status_code == 403, answer.text
        assert answer.json()["detail"] == f"role {TOKENS[name][0]} may not read full dead-letter payloads"
        assert CUSTOMER not in answer.text
    assert [(r["actor"], r["role"], r["action"], r["outcome"]) for r in fakes.audit_rows] == [
        ("vera", "viewer", "dlq.read_full", "denied"), ("otto", "operator", "dlq.read_full", "denied")]


def test_an_admin_reads_the_full_payload_audited_as_read_full(client: TestClient, fakes: Fakes) -> None:
    answer = client.get(f"/v1/dlq/{CALL_ID}", params={"full": "true"}, headers=_as("ada"))
    assert answer.status_code == 200
    assert answer.json()[0]["payload"]["other_parties"] == CUSTOMER
    assert [(r["actor"], r["role"], r["action"], r["object_id"], r["outcome"]) for r in fakes.audit_rows] == [
        ("ada", "admin", "dlq.read_full", CALL_ID, "ok")]
    masked = client.get(f"/v1/dlq/{CALL_ID}", headers=_as("ada"))
    assert CUSTOMER not in masked.text, "masked unless asked: an admin gets the clear number only with full=true"


def test_a_read_that_cannot_be_audited_fails_and_returns_nothing(client: TestClient, fakes: Fakes) -> None:
    fakes.audit_fails = True
    for params in ({}, {"full": "true"}):
        answer = client.get(f"/v1/dlq/{CALL_ID}", params=params, headers=_as("ada"))
        assert answer.status_code == 500
        assert CALL_ID not in answer.text and "67" not in answer.text


def test_a_listing_still_answers_when_its_audit_row_cannot_be_written(client: TestClient, fakes: Fakes,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    fakes.audit_fails = True
    with caplog.at_level(logging.ERROR, logger="ccas.ops.api.deps"):
        assert client.get("/v1/dlq", headers=_as("vera")).status_code == 200
    assert any("dlq.list" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


def test_a_viewer_may_not_requeue_and_the_attempt_is_audited(client: TestClient, fakes: Fakes) -> None:
    answer = client.post("/v1/dlq/requeue", json=REQUEUE, headers=_as("vera"))
    assert answer.status_code == 403 and answer.json()["detail"] == "role viewer may not requeue dead letters"
    assert fakes.requested_by == [], "nothing was requeued"
    assert [(r["actor"], r["action"], r["object_id"], r["outcome"]) for r in fakes.audit_rows] == [
        ("vera", "dlq.requeue", f"call_ids={CALL_ID}", "denied")]


@pytest.mark.parametrize("name", ["otto", "ada"])
def test_a_requeue_is_requested_by_the_caller_and_audited(client: TestClient, fakes: Fakes, name: str) -> None:
    answer = client.post("/v1/dlq/requeue", json={**REQUEUE, "error_type": "AvayaUnavailable"}, headers=_as(name))
    assert answer.status_code == 200, answer.text
    assert answer.json()["requeued"] == 1
    assert fakes.requested_by == [name]
    [row] = fakes.audit_rows
    assert (row["actor"], row["action"], row["object_id"], row["outcome"]) == (
        name, "dlq.requeue", f"call_ids={CALL_ID}&error_type=AvayaUnavailable", "ok")
    assert row["detail"] == {"dry_run": False, "call_ids": [CALL_ID], "actions": {"requeued": 1}}


def test_a_requeue_that_cannot_be_audited_says_it_ran(client: TestClient, fakes: Fakes) -> None:
    fakes.audit_fails = True
    answer = client.post("/v1/dlq/requeue", json=REQUEUE, headers=_as("otto"))
    assert answer.status_code == 500 and "the requeue ran" in answer.json()["detail"]


def test_the_single_token_form_is_operator_ops(fakes: Fakes) -> None:
    single = "single-token-0123456789"
    with TestClient(create_app(_settings(ops_tokens=None, ops_token=single))) as legacy:
        headers = {"Authorization": f"Bearer {single}"}
        assert legacy.post("/v1/dlq/requeue", json=REQUEUE, headers=headers).status_code == 200
        assert legacy.get(f"/v1/dlq/{CALL_ID}", params={"full": "true"}, headers=headers).status_code == 403
    assert fakes.requested_by == ["ops"]
    assert [(r["actor"], r["role"], r["outcome"]) for r in fakes.audit_rows] == [("ops", "operator", "ok"),
                                                                                  ("ops", "operator", "denied")]
