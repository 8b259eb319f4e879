"""The audit trail of the operator tools: one `audit_log` row per DLQ read, listing and requeue (alembic 202612031000).

Outcomes: `ok`; `denied` (a known caller whose role is too low); `not_found` (nothing to read); `refused` (a request the
tools would not carry out, e.g. an invalid selection); `error` (it failed part way). A row names the actor (the token's name,
or the OS user of a CLI run), its role, what was done to which object, and where the request came from.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg2
from psycopg2.extras import Json

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5
# The audit_log column widths: a longer value is cut rather than failing the insert (and with it the audited request).
_WIDTHS = {"actor": 128, "role": 32, "action": 64, "object_type": 32, "object_id": 256, "source": 128, "outcome": 32}
_INSERT = ("INSERT INTO audit_log (actor, role, action, object_type, object_id, source, outcome, detail)"
           " VALUES (%(actor)s, %(role)s, %(action)s, %(object_type)s, %(object_id)s, %(source)s, %(outcome)s, %(detail)s)")


def record(connection_or_url: Any, actor: str, role: str, action: str, object_type: str, object_id: str,
           source: str | None, outcome: str, detail: dict[str, Any] | None = None) -> None:
    """Insert one audit row; raises psycopg2.Error when it cannot be written.

    With a URL the row is committed on its own connection before this returns. With an open connection the row joins the
    caller's transaction (committed or rolled back with what it audits) and the caller commits.
    """
    row: dict[str, Any] = {"actor": actor, "role": role, "action": action, "object_type": object_type,
                           "object_id": object_id, "source": source, "outcome": outcome}
    row = {key: (value[:_WIDTHS[key]] if isinstance(value, str) else value) for key, value in row.items()}
    row["detail"] = Json(detail) if detail is not None else None
    if isinstance(connection_or_url, str):
        connection = psycopg2.connect(connection_or_url, connect_timeout=CONNECT_TIMEOUT_S)
        try:
            with connection.cursor() as cursor:
                cursor.execute(_INSERT, row)
            connection.commit()
        finally:
            connection.close()
    else:
        with connection_or_url.cursor() as cursor:
            cursor.execute(_INSERT, row)
    log.info("audit: %s (%s) %s %s %s from %s: %s", row["actor"], row["role"], action, object_type, row["object_id"],
             source or "-", outcome)
