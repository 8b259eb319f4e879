"""add transcript: what the ASR heard in a call, one row per (call, ASR model), the words themselves in S3

Revision ID: 202612021800
Revises: 202611261000
Create Date: 2026-12-02 18:00:00 UTC

The transcript JSON (words with times and confidence, per channel/speaker) is an object in the audio bucket at
transcripts/{yyyy}/{mm}/{dd}/{call_id}_{asr_model}.json; the row indexes it for queries (coverage per model, low-confidence
calls) without reading S3. Keyed by (call_id, asr_model): a new model adds a row beside the old one instead of replacing it.
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "202612021800"
down_revision = "202611261000"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "transcript",
        sa.Column("call_id", sa.String(32), sa.ForeignKey("call.call_id", ondelete="CASCADE"), nullable=False),
        sa.Column("asr_model", sa.String(64), nullable=False),
        sa.Column("language", sa.String(8)),
        sa.Column("s3_key", sa.Text, nullable=False),
        sa.Column("word_count", sa.Integer, nullable=False),
        sa.Column("confidence", sa.Float),
        sa.Column("created_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("call_id", "asr_model", name="pk_transcript"),
        sa.CheckConstraint("word_count >= 0", name="ck_transcript_word_count"),
        sa.CheckConstraint("confidence IS NULL OR (confidence >= 0 AND confidence <= 1)", name="ck_transcript_confidence"),
    )


def downgrade() -> None:
    op.drop_table("transcript")
