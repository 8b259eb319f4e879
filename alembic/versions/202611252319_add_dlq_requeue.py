"""add dlq_requeue: one row per dead-letter record requeued (ccas dlq requeue / POST /v1/dlq/requeue)

Revision ID: 202611252319
Revises: 202611252215
Create Date: 2026-11-25 23:19:00 UTC

The unique key on the dead letter's Kafka position (topic, partition, offset) is what keeps the same DLQ record from being
requeued twice, even by two operators at once: the row is inserted before the payload is republished, in one transaction.
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "202611252319"
down_revision = "202611252215"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dlq_requeue",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("dlq_topic", sa.String(64), nullable=False),
        sa.Column("dlq_partition", sa.Integer, nullable=False),
        sa.Column("dlq_offset", sa.BigInteger, nullable=False),
        sa.Column("call_id", sa.String(32), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("error_type", sa.String(128), nullable=False),
        sa.Column("target_topic", sa.String(64), nullable=False),
        sa.Column("requeue_count", sa.Integer, nullable=False),
        sa.Column("ingest_uuid", sa.Uuid, nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("requeued_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("dlq_topic", "dlq_partition", "dlq_offset", name="uq_dlq_requeue_position"),
        sa.CheckConstraint("call_id ~ '^[0-9A-Za-z_-]{1,32}$'", name="ck_dlq_requeue_call_id"),
        sa.CheckConstraint("requeue_count > 0", name="ck_dlq_requeue_count"),
    )
    op.create_index("ix_dlq_requeue_call_id", "dlq_requeue", ["call_id"])


def downgrade() -> None:
    op.drop_index("ix_dlq_requeue_call_id", table_name="dlq_requeue")
    op.drop_table("dlq_requeue")
