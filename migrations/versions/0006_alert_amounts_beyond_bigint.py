"""alert_decisions amounts as exact integer text: budgets past $9.2M

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 21:50:00

A $10M budget is 10^19 pico-USD, beyond BIGINT: recording its decision failed with an
overflow on SQLite and "bigint out of range" on PostgreSQL. The three amounts become
VARCHAR(40) holding the exact integer (ledger.store.base.PicoAmount); existing rows are
converted in place.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (("amount_pico", False), ("spend_pico", False), ("forecast_pico", True))


def upgrade() -> None:
    with op.batch_alter_table("alert_decisions", schema=None) as batch_op:
        for name, nullable in COLUMNS:
            batch_op.alter_column(
                name,
                existing_type=sa.BigInteger(),
                type_=sa.String(length=40),
                existing_nullable=nullable,
                postgresql_using=f"{name}::text",
            )


def downgrade() -> None:
    with op.batch_alter_table("alert_decisions", schema=None) as batch_op:
        for name, nullable in COLUMNS:
            batch_op.alter_column(
                name,
                existing_type=sa.String(length=40),
                type_=sa.BigInteger(),
                existing_nullable=nullable,
                postgresql_using=f"{name}::bigint",
            )
