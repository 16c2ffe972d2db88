"""usage_entries.unpriced: an additive flag, so a later price can reprice a key

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 21:40:00

A key's cost is unknown iff SUM(unpriced) over its entries > 0. Entries posted while
the model had no price are flagged 1; a correction entry posts -1 once a price exists.
base_unpriced does the same for the base-model cost.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN with a server default: no table rebuild on SQLite.
    for column in ("unpriced", "base_unpriced"):
        op.add_column(
            "usage_entries",
            sa.Column(column, sa.Integer(), server_default="0", nullable=False),
        )
    op.execute("UPDATE usage_entries SET unpriced = 1 WHERE cost_pico IS NULL")
    op.execute("UPDATE usage_entries SET base_unpriced = 1 WHERE base_cost_pico IS NULL")


def downgrade() -> None:
    with op.batch_alter_table("usage_entries", schema=None) as batch_op:
        batch_op.drop_column("base_unpriced")
        batch_op.drop_column("unpriced")
