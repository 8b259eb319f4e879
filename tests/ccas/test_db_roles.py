"""Each component's database role may do what its code does and nothing more; `db migrate` grants it (ccas/db_roles.py)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg2
import pytest
from psycopg2 import errors

from ccas import db_roles, settings
from tests.pipeline import e2e

pytestmark = pytest.mark.integration

CALL = ("INSERT INTO call (call_id, started_at, agent_id, status) "
        "VALUES ('900000000000001', '2026-12-03T08:00:00Z', '1234', 'PENDING_DOWNLOAD')")
AUDIT = ("INSERT INTO audit_log (actor, role, action, object_type, object_id, source, outcome) "
         "VALUES ('ann', 'viewer', 'score.read', 'call', '900000000000001', '127.0.0.1', 'ok')")


@pytest.fixture(scope="module")
def database(stack_env: dict[str, str]) -> Iterator[str]:
    with e2e.scratch_database(stack_env["CCAS_DATABASE_URL"]) as url:
        yield url


def _as(database: str, component: str, statement: str) -> list[tuple]:
    connection = psycopg2.connect(settings.database_role_url(database, component), connect_timeout=10)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(statement)
            return cursor.fetchall() if cursor.description else []
    finally:
        connection.close()


def test_the_pipeline_writes_calls_but_cannot_drop_them_or_read_the_audit_log(database: str) -> None:
    _as(database, "pipeline", CALL)
    assert _as(database, "pipeline", "SELECT count(*) FROM call") == [(1,)]
    _as(database, "pipeline", "UPDATE call SET status = 'DOWNLOADED' WHERE call_id = '900000000000001'")
    with pytest.raises(errors.InsufficientPrivilege, match="must be owner of table call"):
        _as(database, "pipeline", "DROP TABLE call")
    with pytest.raises(errors.InsufficientPrivilege, match="permission denied for table audit_log"):
        _as(database, "pipeline", "SELECT * FROM audit_log")
    with pytest.raises(errors.InsufficientPrivilege):
        _as(database, "pipeline", "SELECT * FROM ingestion_checkpoint")


def test_the_console_reads_and_audits_but_cannot_update_a_call(database: str) -> None:
    assert _as(database, "console", "SELECT count(*) FROM scoring_result") == [(0,)]
    _as(database, "console", AUDIT)
    with pytest.raises(errors.InsufficientPrivilege, match="permission denied for table call"):
        _as(database, "console", "UPDATE call SET status = 'SCORED'")
    with pytest.raises(errors.InsufficientPrivilege, match="permission denied for table audit_log"):
        _as(database, "console", "SELECT * FROM audit_log")


def test_the_console_reads_its_users_but_cannot_create_or_promote_one(database: str) -> None:
    assert _as(database, "console", "SELECT count(*) FROM console_user") == [(0,)]
    with pytest.raises(errors.InsufficientPrivilege, match="permission denied for table console_user"):
        _as(database, "console", "INSERT INTO console_user (name, password_hash, role) VALUES ('x', '$argon2id$x', 'admin')")
    with pytest.raises(errors.InsufficientPrivilege, match="permission denied for table console_user"):
        _as(database, "console", "UPDATE console_user SET role = 'admin'")
    assert _as(database, "console", "SELECT count(*) FROM dlq_requeue") == [(0,)]  # its admins requeue dead letters


def test_the_poller_keeps_to_its_ingestion_tables(database: str) -> None:
    assert _as(database, "poller", "SELECT count(*) FROM ingested_recording") == [(0,)]
    with pytest.raises(errors.InsufficientPrivilege, match="permission denied for table call"):
        _as(database, "poller", "SELECT * FROM call")


def test_ops_records_requeues_and_reads_but_changes_no_call(database: str) -> None:
    assert _as(database, "ops", "SELECT count(*) FROM dlq_requeue") == [(0,)]
    _as(database, "ops", AUDIT)
    with pytest.raises(errors.InsufficientPrivilege, match="permission denied for table call"):
        _as(database, "ops", "DELETE FROM call")


def test_every_table_of_the_grants_exists_at_head(database: str) -> None:
    tables = {row[0] for row in e2e.query(database, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    named = {table for grants in db_roles.GRANTS.values() for table in grants}
    assert named <= tables, sorted(named - tables)
    granted = {(role, table) for role, table in e2e.query(
        database, "SELECT grantee, table_name FROM information_schema.role_table_grants WHERE grantee LIKE 'ccas\\_%'")}
    assert {(role, table) for role, grants in db_roles.GRANTS.items() for table in grants} <= granted
