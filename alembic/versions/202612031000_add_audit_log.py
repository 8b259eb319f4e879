"""add audit_log: who read or changed what through the APIs (a recording, a transcript, a score breakdown, a DLQ payload)

Revision ID: 202612031000
Revises: 202612021800
Create Date: 2026-12-03 10:00:00 UTC

Append-only by intent: the APIs insert, nothing updates or deletes; a reader's role gets INSERT without SELECT where the
database roles are split. `actor` is the named token (or OIDC subject) of the caller, `source` the address it came from.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision = "202612031000"
down_revision = "202612021800"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("object_type", sa.String(32), nullable=False),
        sa.Column("object_id", sa.String(256), nullable=False),
        sa.Column("source", sa.String(128)),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("detail", postgresql.JSONB),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_actor_at", "audit_log", ["actor", "at"])
    op.create_index("ix_audit_log_object", "audit_log", ["object_type", "object_id"])


def downgrade() -> None:
    op.drop_table("audit_log")
