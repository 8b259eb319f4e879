"""scoring_result: the criteria a result failed and passed, and its language, as generated columns beside `details`

Revision ID: 202612031610
Revises: 202612031600
Create Date: 2026-12-03 15:10:00 UTC

The console filters calls by a failed criterion and computes pass rates over every call of a team. Reading those from
`details` means de-TOASTing and parsing each whole scoring response (several kB) for every row: about 0.7 s for 10,000 calls.
These STORED generated columns hold just the criterion names (JSON arrays of applicable criteria, from the breakdown) and the
language, computed by PostgreSQL on every insert and update of `details`, so no writer changes and they cannot drift from it.
`criteria_failed` has a GIN index for `criteria_failed ? 'closing'`. Adding them rewrites the table once.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision = "202612031610"
down_revision = "202612031600"
branch_labels = None
depends_on = None

FAILED = "jsonb_path_query_array(details, '$.breakdown[*] ? (@.applicable == true && @.passed == false).criterion')"
PASSED = "jsonb_path_query_array(details, '$.breakdown[*] ? (@.applicable == true && @.passed == true).criterion')"


def upgrade() -> None:
    op.add_column("scoring_result", sa.Column("criteria_failed", postgresql.JSONB, sa.Computed(FAILED, persisted=True)))
    op.add_column("scoring_result", sa.Column("criteria_passed", postgresql.JSONB, sa.Computed(PASSED, persisted=True)))
    op.add_column("scoring_result", sa.Column("language", sa.Text, sa.Computed("details->>'language'", persisted=True)))
    op.create_index("ix_scoring_result_criteria_failed", "scoring_result", ["criteria_failed"], postgresql_using="gin")
    op.create_index("ix_scoring_result_call_created", "scoring_result", ["call_id", sa.text("created_at DESC")])


def downgrade() -> None:
    op.drop_index("ix_scoring_result_call_created", table_name="scoring_result")
    op.drop_index("ix_scoring_result_criteria_failed", table_name="scoring_result")
    for column in ("language", "criteria_passed", "criteria_failed"):
        op.drop_column("scoring_result", column)
