"""Database roles of least privilege: what each component may do to which table, granted after every migration.

The role that runs the migrations owns the schema (only an owner may ALTER or DROP a table); the components log in as
roles of their own, each granted exactly what its code does:

| role            | may                                                                                                |
|-----------------|----------------------------------------------------------------------------------------------------|
| `ccas_pipeline` | read and write the call tables it fills (call, agent, audio_asset, scoring_result, transcript,     |
|                 | agent_scorecard)                                                                                   |
| `ccas_poller`   | read and write the ingestion tables (ingestion_checkpoint, ingested_recording, in_progress_recording) |
| `ccas_ops`      | read the call and ingestion tables and dlq_requeue, record requeues, write audit_log                |
| `ccas_console`  | read the call tables and console_user, write audit_log, read and record requeues (dlq_requeue)     |

No role but the owner reads `audit_log`. `grant()` is idempotent: it revokes what a role holds on every table first, so a
privilege removed here is removed from the database too. A role that does not exist on the server is skipped (a deployment
names the roles it creates: the local stack creates all four, `ccas db roles` those whose password it is given).
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg2.extensions
from psycopg2 import sql

log = logging.getLogger(__name__)

CALL_TABLES = ("call", "agent", "audio_asset", "scoring_result", "transcript", "agent_scorecard")
INGESTION_TABLES = ("ingestion_checkpoint", "ingested_recording", "in_progress_recording")
READ, WRITE = ("SELECT",), ("SELECT", "INSERT", "UPDATE")

GRANTS: dict[str, dict[str, tuple[str, ...]]] = {
    "ccas_pipeline": {table: WRITE for table in CALL_TABLES},
    "ccas_poller": {table: (*WRITE, "DELETE") for table in INGESTION_TABLES},
    "ccas_ops": {**{table: READ for table in (*CALL_TABLES, *INGESTION_TABLES)},
                 "dlq_requeue": ("SELECT", "INSERT"), "audit_log": ("INSERT",)},
    # The QA console: the pages read; its admins requeue dead letters through ccas.ops.requeue, as `ccas_ops` does.
    "ccas_console": {**{table: READ for table in CALL_TABLES}, "console_user": READ, "dlq_requeue": ("SELECT", "INSERT"),
                     "audit_log": ("INSERT",)},
}
ROLES = tuple(GRANTS)


def component_role(component: str) -> str:
    """`pipeline` → `ccas_pipeline`."""
    role = f"ccas_{component.replace('-', '_')}"
    if role not in GRANTS:
        raise ValueError(f"no database role for {component!r} (one of {', '.join(r[5:] for r in ROLES)})")
    return role


def ensure_login_roles(connection: Any, passwords: dict[str, str]) -> list[str]:
    """Create each component's login role, or set its password when it exists (idempotent); returns the roles.

    The connection's role must be allowed to create roles. The password reaches the server as a SCRAM verifier computed here,
    so neither the statement nor a log line of it holds the password itself.
    """
    roles = []
    with connection.cursor() as cursor:
        for component, password in passwords.items():
            role = component_role(component)
            verifier = psycopg2.extensions.encrypt_password(password, role, connection, "scram-sha-256")
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            verb = sql.SQL("ALTER" if cursor.fetchone() else "CREATE")
            cursor.execute(sql.SQL("{} ROLE {} LOGIN NOCREATEDB NOCREATEROLE PASSWORD %s").format(verb, sql.Identifier(role)),
                           (verifier,))
            roles.append(role)
    connection.commit()
    return roles


def grant(connection: Any) -> list[str]:
    """Apply GRANTS in the connection's database (as the tables' owner); returns the roles granted."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (list(ROLES),))
        present = {row[0] for row in cursor.fetchall()}
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = {row[0] for row in cursor.fetchall()}
        for role in ROLES:
            if role not in present:
                log.info("database role %s does not exist here: no grants for it", role)
                continue
            who = sql.Identifier(role)
            cursor.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {}").format(who))
            cursor.execute(sql.SQL("REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {}").format(who))
            for table, privileges in GRANTS[role].items():
                if table not in tables:
                    continue  # a downgraded schema: the table comes back with its migration, and so does the grant
                cursor.execute(sql.SQL("GRANT {} ON {} TO {}").format(
                    sql.SQL(", ").join(sql.SQL(p) for p in privileges), sql.Identifier(table), who))
            # Identity columns draw from sequences: a role that inserts needs to use them.
            if any("INSERT" in privileges for privileges in GRANTS[role].values()):
                cursor.execute(sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {}").format(who))
    connection.commit()
    return sorted(present)
