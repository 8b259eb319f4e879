"""call.model_version: the model_version of the call's current score

Revision ID: 202612031500
Revises: 202612031200
Create Date: 2026-12-03 15:00:00 UTC

A call may hold several scoring_result rows, one per model_version (a re-score adds one next to the old). Reports need the one
in force: WriteResults sets call.model_version in the transaction that writes the result, the live job and the re-score job
alike. Existing calls get the version of their most recently written result. The re-score selects calls on this column.
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "202612031500"
down_revision = "202612031200"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("call", sa.Column("model_version", sa.String(32)))
    op.execute("""
        UPDATE call SET model_version = latest.model_version
        FROM (SELECT DISTINCT ON (call_id) call_id, model_version FROM scoring_result
              ORDER BY call_id, updated_at DESC, created_at DESC) AS latest
        WHERE call.call_id = latest.call_id
    """)
    # The re-score's question: scored calls of a period whose version is not the target.
    op.create_index("ix_call_scored_started", "call", ["started_at"], postgresql_where=sa.text("status = 'SCORED'"))


def downgrade() -> None:
    op.drop_index("ix_call_scored_started", table_name="call")
    op.drop_column("call", "model_version")
