"""training estimates (recorded, compared with jobs)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 20:19:28.915761
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "training_estimates",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("file_name", sa.String(length=1024), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("file_bytes", sa.BigInteger(), nullable=False),
        sa.Column("openai_file_id", sa.String(length=128), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("base_model", sa.String(length=255), nullable=False),
        sa.Column("encoding", sa.String(length=32), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("examples", sa.BigInteger(), nullable=False),
        sa.Column("billing_tokens", sa.BigInteger(), nullable=False),
        sa.Column("n_epochs", sa.Integer(), nullable=False),
        sa.Column("trained_tokens", sa.BigInteger(), nullable=False),
        sa.Column("training_price", sa.String(length=32), nullable=True),
        sa.Column("cost_pico", sa.BigInteger(), nullable=True),
        sa.Column("price_date", sa.String(length=10), nullable=False),
        sa.Column("price_version", sa.String(length=32), nullable=False),
        sa.Column("recorded_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_estimates")),
        sa.UniqueConstraint(
            "file_sha256",
            "model",
            "n_epochs",
            "price_date",
            "price_version",
            name="uq_training_estimates_key",
        ),
    )
    with op.batch_alter_table("training_estimates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_training_estimates_file_sha256"), ["file_sha256"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_training_estimates_openai_file_id"), ["openai_file_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("training_estimates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_training_estimates_openai_file_id"))
        batch_op.drop_index(batch_op.f("ix_training_estimates_file_sha256"))

    op.drop_table("training_estimates")
