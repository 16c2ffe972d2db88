"""alert_decisions.detail: what an anomaly alert says beyond the budget columns

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 10:00:00

Spend anomalies are decided in the same log as budget thresholds (kind "anomaly", the
period being the day), so they share its once-only constraint and idempotency keys. The
baseline, its method and the models that drove the spike go in this JSON column; budget
decisions leave it NULL. A plain ADD COLUMN: no table rebuild on SQLite.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("alert_decisions", sa.Column("detail", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alert_decisions", schema=None) as batch_op:
        batch_op.drop_column("detail")
