"""training_fees: correction entries per job (revision), not one frozen row

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 10:00:00

A fee recorded while its model had no price stayed unpriced forever, and a job whose
trained_tokens was revised upstream kept its old fee: the unique job_id allowed one row
per job. A job's fee becomes the sum of its entries, (job_id, revision) unique;
existing rows are revision 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("training_fees", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revision", sa.Integer(), server_default="1", nullable=False))
        batch_op.drop_constraint("uq_training_fees_job_id", type_="unique")
        batch_op.create_unique_constraint("uq_training_fees_job_revision", ["job_id", "revision"])


def downgrade() -> None:
    # Folds each job's corrections back into one row (its sums), as revision 1 held.
    op.execute(
        "UPDATE training_fees SET "
        "trained_tokens = (SELECT sum(f.trained_tokens) FROM training_fees f "
        "WHERE f.job_id = training_fees.job_id), "
        "cost_pico = (SELECT sum(f.cost_pico) FROM training_fees f "
        "WHERE f.job_id = training_fees.job_id) "
        "WHERE revision = 1"
    )
    op.execute("DELETE FROM training_fees WHERE revision > 1")
    with op.batch_alter_table("training_fees", schema=None) as batch_op:
        batch_op.drop_constraint("uq_training_fees_job_revision", type_="unique")
        batch_op.create_unique_constraint("uq_training_fees_job_id", ["job_id"])
        batch_op.drop_column("revision")
