"""agent_scorecard: per-agent and per-skill scorecards over hourly and daily event-time windows

Revision ID: 202612031200
Revises: 202612031100
Create Date: 2026-12-03 12:00:00 UTC

One row per window: (dimension, dimension_key, granularity, window_start) is unique. The streaming pipeline upserts it at
every firing of the window (early, on time, late within the allowed lateness) and a row only moves forward: a pane whose
index is lower than the stored one never overwrites it. Definitions of the values: pipeline/transforms/scorecard_values.py.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision = "202612031200"
down_revision = "202612031100"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_scorecard",
        sa.Column("dimension", sa.String(16), nullable=False),
        sa.Column("dimension_key", sa.String(64), nullable=False),
        sa.Column("granularity", sa.String(8), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("pane_index", sa.Integer, nullable=False),
        sa.Column("pane_timing", sa.String(8), nullable=False),
        sa.Column("calls", sa.Integer, nullable=False),
        sa.Column("scored_calls", sa.Integer, nullable=False),
        sa.Column("score_mean", sa.Float),
        sa.Column("score_min", sa.Float),
        sa.Column("score_max", sa.Float),
        sa.Column("score_p50", sa.Float),
        sa.Column("score_p90", sa.Float),
        sa.Column("criteria", postgresql.JSONB, nullable=False),
        sa.Column("dead_air_total_s", sa.Float, nullable=False),
        sa.Column("hold_total_s", sa.Float, nullable=False),
        sa.Column("talk_listen_ratio_mean", sa.Float),
        sa.Column("customer_sentiment_mean", sa.Float),
        sa.Column("model_versions", postgresql.ARRAY(sa.String(32)), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("dimension", "dimension_key", "granularity", "window_start", name="pk_agent_scorecard"),
        sa.CheckConstraint("dimension IN ('agent', 'skill')", name="ck_agent_scorecard_dimension"),
        sa.CheckConstraint("granularity IN ('hour', 'day')", name="ck_agent_scorecard_granularity"),
        sa.CheckConstraint("window_end > window_start", name="ck_agent_scorecard_window"),
    )
    # The console's and reports' question: one agent's days (or hours), newest first.
    op.create_index("ix_agent_scorecard_key_time", "agent_scorecard",
                    ["dimension", "dimension_key", "granularity", sa.text("window_start DESC")])


def downgrade() -> None:
    op.drop_index("ix_agent_scorecard_key_time", table_name="agent_scorecard")
    op.drop_table("agent_scorecard")
