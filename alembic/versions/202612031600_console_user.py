"""console_user: the people who sign in to the QA console, with an argon2 password hash and one role

Revision ID: 202612031600
Revises: 202612031500
Create Date: 2026-12-03 15:00:00 UTC

The hash is argon2id in its PHC string form (argon2-cffi), which carries its own salt and cost parameters, so a later change
of parameters rehashes on sign-in without a migration. Roles: viewer (calls, details, agents), qa_lead (the same; the role a
future review workflow writes with), admin (also Operations). `ccas console user add` inserts the rows; the console's
database role only reads them.
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "202612031600"
down_revision = "202612031500"
branch_labels = None
depends_on = None

ROLES = ("viewer", "qa_lead", "admin")


def upgrade() -> None:
    op.create_table(
        "console_user",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(f"role IN ({', '.join(repr(role) for role in ROLES)})", name="ck_console_user_role"),
        sa.CheckConstraint("name ~ '^[A-Za-z0-9._@-]{1,64}$'", name="ck_console_user_name"),
        sa.CheckConstraint("password_hash LIKE '$argon2id$%'", name="ck_console_user_hash_argon2id"),
    )


def downgrade() -> None:
    op.drop_table("console_user")
