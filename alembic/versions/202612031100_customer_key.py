"""customer_key: the call's customer as a keyed hash instead of the number in clear; optional encrypted copy

Revision ID: 202612031100
Revises: 202612031000
Create Date: 2026-12-03 11:00:00 UTC

`call.customer_id` held the customer's number in clear. It becomes `customer_key` (String(64)): 'hk1:' + 32 hex characters,
the HMAC-SHA256 of the number under CCAS_PII_HMAC_KEY (core.pii.customer_key), written by the pipeline's enrich stage. A
check constraint refuses anything else, so a clear number can never be stored there again. `customer_number_enc` holds the
number Fernet-encrypted under CCAS_PII_ENCRYPTION_KEY, only when CCAS_PII_STORE_ENCRYPTED_NUMBER is on (else NULL).

Existing rows: their numbers cannot be hashed here (SQL does not have the key), and keeping them in clear is what this
migration removes, so they are dropped (set to NULL). Calls the pipeline processes again get their key then.
Downgrade restores the column's old name and width, empty: a key is not a number, and the numbers are gone.
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "202612031100"
down_revision = "202612031000"
branch_labels = None
depends_on = None

KEY_CHECK = r"customer_key IS NULL OR customer_key ~ '^hk1:[0-9a-f]{32}$'"


def upgrade() -> None:
    op.execute("UPDATE call SET customer_id = NULL WHERE customer_id IS NOT NULL")
    op.alter_column("call", "customer_id", new_column_name="customer_key", type_=sa.String(64),
                    existing_type=sa.String(32), existing_nullable=True)
    op.create_check_constraint("ck_call_customer_key_hashed", "call", KEY_CHECK)
    op.add_column("call", sa.Column("customer_number_enc", sa.LargeBinary, nullable=True))


def downgrade() -> None:
    op.drop_column("call", "customer_number_enc")
    op.drop_constraint("ck_call_customer_key_hashed", "call", type_="check")
    # Keys are 36 characters and mean nothing to the old code: emptied before the column narrows back to 32.
    op.execute("UPDATE call SET customer_key = NULL WHERE customer_key IS NOT NULL")
    op.alter_column("call", "customer_key", new_column_name="customer_id", type_=sa.String(32),
                    existing_type=sa.String(64), existing_nullable=True)
