"""add in_progress_recording: recordings the poller saw still in progress, asked for again until they end

Revision ID: 202611261000
Revises: 202611252319
Create Date: 2026-11-26 10:00:00 UTC

The poller's windows are on start time and reach back only the look-back (900 s by default), so a call longer than that would
never be listed again once it ends. Every recording listed with no duration gets a row here; the poller searches the start
second of each row on every poll until the recording has ended (then it is published and the row deleted, in the same
transaction that records it in ingested_recording) or the row is older than the maximum call age (then it is counted, logged
and deleted). `last_seen_at` bounds how far back the start-up reconciliation must read the topic.
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "202611261000"
down_revision = "202611252319"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "in_progress_recording",
        sa.Column("call_id", sa.String(32), primary_key=True),
        sa.Column("switch_call_id", sa.String(64)),
        sa.Column("started_at", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("first_seen_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("last_seen_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("call_id ~ '^[0-9A-Za-z_-]{1,32}$'", name="ck_in_progress_recording_call_id_pattern"),
        sa.CheckConstraint("last_seen_at >= first_seen_at", name="ck_in_progress_recording_seen"),
    )
    op.create_index("idx_in_progress_recording_started", "in_progress_recording", ["started_at"])


def downgrade() -> None:
    op.drop_index("idx_in_progress_recording_started", table_name="in_progress_recording")
    op.drop_table("in_progress_recording")
