"""The pipeline's `call` upsert stores the customer as enrich left it: the keyed hash in customer_key, the Fernet-encrypted
number in customer_number_enc when the job stores one, never the number in clear. The unit test checks the rows the writer
sends; the integration tests check what PostgreSQL keeps, and the migration that took `customer_id` away."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg2
import psycopg2.errors
import pytest
from cryptography.fernet import Fernet

from ccas import db_admin
from core.pii import customer_key
from pipeline.io import database as database_module
from pipeline.io.database import Database
from pipeline.model import CallEvent, EnrichedCall, SourcePosition
from pipeline.transforms.enrich import CustomerNumbers, enrich
from tests.pipeline import e2e

HMAC_KEY = b"database-test-hmac-key-0123456789"
NUMBER = "0901234567"


def _enriched(call_id: str, numbers: CustomerNumbers, other_parties: str | None = NUMBER,
              value: dict[str, Any] | None = None) -> EnrichedCall:
    value = value or {"call_id": call_id, "started_at": "2026-11-25T09:58:00+00:00", "ended_at": "2026-11-25T09:59:46+00:00",
                      "duration": 106.0, "raw_agent": "1234 (agent1234.247)", "other_parties": other_parties,
                      "skill": "billing", "service": "VDN 5001", "switch_call_id": "00012A3F"}
    return enrich(CallEvent(call_id, value, SourcePosition("calls.raw", 0, 0)), numbers)


class _Cursor:
    def __enter__(self) -> _Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class _Connection:
    closed = False

    def __enter__(self) -> _Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def cursor(self) -> _Cursor:
        return _Cursor()


def test_the_call_rows_hold_the_key_and_the_encrypted_copy_never_the_number(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[str, list[tuple]]] = []

    def execute_values(cursor: Any, sql: str, rows: list[tuple], fetch: bool = False) -> list[tuple]:
        sent.append((sql, rows))
        return [(row[0], "PENDING_DOWNLOAD") for row in rows]

    monkeypatch.setattr(database_module, "execute_values", execute_values)
    db = Database("postgresql://nobody@127.0.0.1:9/none")
    db._connection = _Connection()  # type: ignore[assignment]
    secret = Fernet.generate_key()
    calls = [_enriched("4001", CustomerNumbers(HMAC_KEY)), _enriched("4002", CustomerNumbers(HMAC_KEY, Fernet(secret)))]
    assert db.upsert_calls(calls) == {"4001": "PENDING_DOWNLOAD", "4002": "PENDING_DOWNLOAD"}
    [(sql, rows)] = [(sql, rows) for sql, rows in sent if "INSERT INTO call " in sql]
    assert "customer_key" in sql and "customer_number_enc" in sql and "customer_id" not in sql
    columns = [name.strip() for name in sql.split("(", 1)[1].split(")", 1)[0].split(",")]
    by_call = {row[0]: dict(zip(columns, row, strict=True)) for row in rows}
    key = customer_key(NUMBER, HMAC_KEY)
    assert (by_call["4001"]["customer_key"], by_call["4001"]["customer_number_enc"]) == (key, None)
    assert by_call["4002"]["customer_key"] == key
    assert Fernet(secret).decrypt(by_call["4002"]["customer_number_enc"]).decode() == NUMBER
    assert not any(NUMBER in str(value) for row in rows for value in row)


# -- against the local stack's PostgreSQL -------------------------------------------------------------------------------------


@pytest.fixture
def database_url(stack_env: dict[str, str]) -> Iterator[str]:
    with e2e.scratch_database(stack_env["CCAS_DATABASE_URL"]) as url:
        yield url


def test_postgres_keeps_the_key_and_a_decryptable_copy(database_url: str) -> None:
    secret = Fernet.generate_key()
    with_copy = CustomerNumbers(HMAC_KEY, Fernet(secret))
    db = Database(database_url)
    try:
        db.upsert_calls([_enriched("4101", CustomerNumbers(HMAC_KEY)), _enriched("4102", with_copy),
                         _enriched("4103", with_copy, other_parties=None)])
        rows = {row[0]: row[1:] for row in e2e.query(
            database_url, "SELECT call_id, customer_key, customer_number_enc FROM call ORDER BY call_id")}
        key = customer_key(NUMBER, HMAC_KEY)
        assert rows["4101"] == (key, None) and rows["4103"] == (None, None)
        assert rows["4102"][0] == key and Fernet(secret).decrypt(bytes(rows["4102"][1])).decode() == NUMBER
        # A requeued download/score dead letter comes back with the key but without the number: the copy stays.
        requeued = _enriched("4102", with_copy, value=_enriched("4102", with_copy).raw)
        assert (requeued.customer_key, requeued.customer_number_enc) == (key, None)
        db.upsert_calls([requeued])
        [(stored_key, stored_copy)] = e2e.query(database_url, "SELECT customer_key, customer_number_enc FROM call "
                                                              "WHERE call_id = '4102'")
        assert stored_key == key and Fernet(secret).decrypt(bytes(stored_copy)).decode() == NUMBER
    finally:
        db.close()
    with pytest.raises(psycopg2.errors.CheckViolation, match="ck_call_customer_key_hashed"):
        e2e.query(database_url, "UPDATE call SET customer_key = %s WHERE call_id = '4101'", (NUMBER,))


@pytest.fixture
def empty_database(stack_env: dict[str, str]) -> Iterator[str]:
    """A database with no tables, so the test can stop at the revision before customer_key."""
    with e2e.scratch_database(stack_env["CCAS_DATABASE_URL"], migrate=False) as url:
        yield url


def _columns(url: str) -> dict[str, tuple[str, int | None]]:
    return {name: (kind, length) for name, kind, length in e2e.query(
        url, "SELECT column_name, data_type, character_maximum_length FROM information_schema.columns "
             "WHERE table_name = 'call'")}


def test_the_migration_drops_clear_numbers_and_its_downgrade_restores_the_shape(empty_database: str) -> None:
    url = empty_database
    db_admin.upgrade(url, "202612031000")
    e2e.query(url, "INSERT INTO call (call_id, started_at, customer_id, status) "
                   "VALUES ('4201', now(), %s, 'SCORED') RETURNING 1", (NUMBER,))
    db_admin.upgrade(url, "202612031100")
    columns = _columns(url)
    assert "customer_id" not in columns
    assert columns["customer_key"] == ("character varying", 64) and columns["customer_number_enc"] == ("bytea", None)
    assert e2e.query(url, "SELECT customer_key, customer_number_enc FROM call") == [(None, None)], "the clear number is gone"
    db_admin.downgrade(url, "202612031000")
    columns = _columns(url)
    assert columns["customer_id"] == ("character varying", 32)
    assert "customer_key" not in columns and "customer_number_enc" not in columns
    assert e2e.query(url, "SELECT customer_id, status FROM call") == [(None, "SCORED")]
