"""`ccas db roles`: the components' login roles created, or their passwords set, from CCAS_DB_PASSWORD_<COMPONENT>.

The command's settings and refusals need no server; the roles themselves are made on the local stack's PostgreSQL (as its
superuser, through the cluster's own socket, as the stack does) on a role of the test's own, dropped afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import psycopg2
import pytest

from ccas import db_admin, db_roles, settings

OWNER_URL = "postgresql://ccas:owner@postgres:5432/ccas?sslmode=verify-full&sslrootcert=/pki/ca/ca.crt"


def test_the_password_variables_are_the_ones_the_local_stack_generates() -> None:
    variables = {f"CCAS_{name.upper()}" for name in db_admin.RoleSettings.model_fields if name.startswith("db_password_")}
    assert variables == {settings.database_password_variable(c) for c in settings.DATABASE_COMPONENTS}
    assert {f"ccas_{c}" for c in settings.DATABASE_COMPONENTS} == set(db_roles.ROLES)


def test_roles_needs_at_least_one_password(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for component in settings.DATABASE_COMPONENTS:
        monkeypatch.delenv(settings.database_password_variable(component), raising=False)
    monkeypatch.setenv("CCAS_DATABASE_URL", OWNER_URL)
    assert db_admin.main(["roles"]) == 2
    assert "no role password is set (one or more of CCAS_DB_PASSWORD_PIPELINE" in capsys.readouterr().err


def test_roles_creates_those_whose_password_is_set(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for component in settings.DATABASE_COMPONENTS:
        monkeypatch.delenv(settings.database_password_variable(component), raising=False)
    monkeypatch.setenv("CCAS_DATABASE_URL", OWNER_URL)
    monkeypatch.setenv("CCAS_DB_PASSWORD_POLLER", "poller-secret")
    monkeypatch.setenv("CCAS_DB_PASSWORD_PIPELINE", "pipeline-secret")
    calls = []
    monkeypatch.setattr(db_admin, "create_roles",
                        lambda url, passwords: calls.append((url, passwords)) or [f"ccas_{c}" for c in passwords])
    assert db_admin.main(["roles"]) == 0
    assert calls == [(OWNER_URL, {"pipeline": "pipeline-secret", "poller": "poller-secret"})]
    out = capsys.readouterr().out
    assert "ccas_pipeline, ccas_poller can log in" in out and "secret" not in out


@pytest.fixture
def superuser(stack_env: dict[str, str]) -> Iterator[psycopg2.extensions.connection]:
    from ccas.stack.postgres import Postgres

    server = Postgres()
    connection = psycopg2.connect(host=str(server.dir), port=server.ports_all.postgres, user="postgres", dbname="postgres",
                                  connect_timeout=10)
    try:
        yield connection
    finally:
        connection.close()


def test_a_role_is_created_then_its_password_changed(superuser: psycopg2.extensions.connection, stack_env: dict[str, str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(db_roles.GRANTS, "ccas_role_test", {})

    def logs_in(password: str) -> bool:
        base, query = stack_env["CCAS_DATABASE_URL"].split("?", 1)
        host = base.rsplit("@", 1)[1]
        try:
            psycopg2.connect(f"postgresql://ccas_role_test:{quote(password, safe='')}@{host}?{query}", connect_timeout=10).close()
        except psycopg2.OperationalError:
            return False
        return True

    try:
        assert db_roles.ensure_login_roles(superuser, {"role-test": "first-password-0123"}) == ["ccas_role_test"]
        assert logs_in("first-password-0123")
        db_roles.ensure_login_roles(superuser, {"role-test": "second-password-0123"})
        assert logs_in("second-password-0123") and not logs_in("first-password-0123")
        with superuser.cursor() as cursor:
            cursor.execute("SELECT rolpassword LIKE 'SCRAM-SHA-256$%', rolcreatedb, rolcreaterole, rolsuper FROM pg_authid "
                           "WHERE rolname = 'ccas_role_test'")
            assert cursor.fetchone() == (True, False, False, False)
    finally:
        with superuser.cursor() as cursor:
            cursor.execute("DROP ROLE IF EXISTS ccas_role_test")
        superuser.commit()
