"""add initial tables: call, audio_asset, scoring_result, ingestion_checkpoint, agent, ingested_recording

Revision ID: 202611252215
Revises:
Create Date: 2026-11-25 22:15:00 UTC

The schema of docs/design.md (tables) with its indexes and status checks. Differences, each on purpose:
- timestamps are TIMESTAMPTZ: everything is stored in UTC and the recorder's zone must never be guessed again;
- scoring_result.score may be NULL for a call that is not scorable (silent, too short): `scorable` says so, a check enforces it;
- scoring_result.model_version is NOT NULL, or the unique (call_id, model_version) would admit duplicates through NULLs;
- call_id must match schemas.contracts.CALL_ID_PATTERN before it is stored (it becomes an S3 key);
- ingested_recording is the poller's dedup index (one row per published inum), separate from `call`, which the pipeline owns.
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "202611252215"
down_revision = None
branch_labels = None
depends_on = None

CALL_ID_CHECK = "call_id ~ '^[0-9A-Za-z_-]{1,32}$'"
CALL_STATUSES = ("PENDING_DOWNLOAD", "DOWNLOADED", "SCORED", "ERROR")
ASSET_STATUSES = ("READY", "MISSING", "ERROR")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
    ]


def upgrade() -> None:
    op.create_table(
        "agent",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("agent_id", sa.String(16), nullable=False, unique=True),
        sa.Column("full_name", sa.Text),
        sa.Column("team", sa.String(64)),
        sa.Column("hire_date", sa.Date),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        *_timestamps(),
    )
    op.create_table(
        "call",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("call_id", sa.String(32), nullable=False, unique=True),
        sa.Column("started_at", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("ended_at", sa.TIMESTAMP(timezone=True)),
        sa.Column("duration_seconds", sa.Numeric(10, 2)),
        sa.Column("agent_id", sa.String(16)),
        sa.Column("customer_id", sa.String(32)),
        sa.Column("skill", sa.String(64)),
        sa.Column("service", sa.String(128)),
        sa.Column("switch_call_id", sa.String(64)),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("error_reason", sa.Text),
        *_timestamps(),
        sa.CheckConstraint(_in("status", CALL_STATUSES), name="ck_call_status"),
        sa.CheckConstraint(CALL_ID_CHECK, name="ck_call_call_id_pattern"),
        sa.CheckConstraint("ended_at IS NULL OR ended_at >= started_at", name="ck_call_ended_after_started"),
    )
    op.create_index("idx_call_status", "call", ["status"])
    op.create_index("idx_call_agent_started", "call", ["agent_id", "started_at"])
    op.create_index("idx_call_switch_call_id", "call", ["switch_call_id"])

    op.create_table(
        "audio_asset",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("call_id", sa.String(32), sa.ForeignKey("call.call_id", ondelete="CASCADE"), nullable=False),
        sa.Column("s3_key", sa.Text, nullable=False),
        sa.Column("s3_version_id", sa.Text),
        sa.Column("sha256", sa.CHAR(64), nullable=False),
        sa.Column("codec", sa.String(16)),
        sa.Column("sample_rate", sa.Integer),
        sa.Column("channels", sa.SmallInteger),
        sa.Column("duration_seconds", sa.Numeric(10, 2)),
        sa.Column("size_bytes", sa.BigInteger),
        sa.Column("status", sa.String(16), nullable=False),
        *_timestamps(),
        sa.CheckConstraint(_in("status", ASSET_STATUSES), name="ck_audio_asset_status"),
        sa.CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name="ck_audio_asset_sha256_hex"),
    )
    op.create_index("uq_audio_asset_call", "audio_asset", ["call_id"], unique=True)

    op.create_table(
        "scoring_result",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("call_id", sa.String(32), sa.ForeignKey("call.call_id", ondelete="CASCADE"), nullable=False),
        sa.Column("score", sa.Numeric(5, 2)),
        sa.Column("scorable", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("reason", sa.Text),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("details", sa.dialects.postgresql.JSONB),
        sa.Column("latency_ms", sa.Integer),
        sa.Column("end_to_end_ms", sa.Integer),
        *_timestamps(),
        sa.UniqueConstraint("call_id", "model_version", name="uq_scoring_result_call_model"),
        sa.CheckConstraint("score IS NULL OR (score >= 0 AND score <= 100)", name="ck_scoring_result_score_range"),
        sa.CheckConstraint("score IS NOT NULL OR NOT scorable", name="ck_scoring_result_score_when_scorable"),
    )
    op.create_index("idx_scoring_result_created", "scoring_result", ["created_at"])

    op.create_table(
        "ingestion_checkpoint",
        sa.Column("id", sa.Integer, primary_key=True, server_default=sa.text("1"), autoincrement=False),
        sa.Column("last_polled_from", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("last_polled_to", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("updated_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("id = 1", name="ck_ingestion_checkpoint_single_row"),
        sa.CheckConstraint("last_polled_to >= last_polled_from", name="ck_ingestion_checkpoint_window"),
    )
    op.create_table(
        "ingested_recording",
        sa.Column("call_id", sa.String(32), primary_key=True),
        sa.Column("switch_call_id", sa.String(64)),
        sa.Column("started_at", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("ended_at", sa.TIMESTAMP(timezone=True)),
        sa.Column("published_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(CALL_ID_CHECK, name="ck_ingested_recording_call_id_pattern"),
    )
    op.create_index("idx_ingested_recording_started", "ingested_recording", ["started_at"])


def downgrade() -> None:
    for table in ("ingested_recording", "ingestion_checkpoint", "scoring_result", "audio_asset", "call", "agent"):
        op.drop_table(table)
