"""usage_bucket_kinds: the kinds of bucket the ledger holds, not only their lengths

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 07:00:00

A bucket's kind is (source, width, start modulo width). The overlap check reads the
held keys of any other kind than a batch's own in the batch's time span; knowing the
kinds held, a batch of the only kind held (a re-import or a steady poll of a ledger
with one source) skips that read. The longest width, the check's reach, is the
kinds' longest: usage_bucket_widths (0009) is replaced.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Floored as Python's % floors, for starts before 1970 too (widths are positive).
_WIDTH = "(bucket_end - bucket_start)"
_PHASE = f"((bucket_start % {_WIDTH}) + {_WIDTH}) % {_WIDTH}"


def upgrade() -> None:
    op.create_table(
        "usage_bucket_kinds",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("width", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("phase", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("source", "width", "phase", name=op.f("pk_usage_bucket_kinds")),
    )
    op.execute(
        "INSERT INTO usage_bucket_kinds (source, width, phase) "
        f"SELECT DISTINCT source, {_WIDTH}, {_PHASE} FROM usage_entries"
    )
    op.drop_table("usage_bucket_widths")


def downgrade() -> None:
    op.create_table(
        "usage_bucket_widths",
        sa.Column("width", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("width", name=op.f("pk_usage_bucket_widths")),
    )
    op.execute(
        "INSERT INTO usage_bucket_widths (width) SELECT DISTINCT width FROM usage_bucket_kinds"
    )
    op.drop_table("usage_bucket_kinds")
