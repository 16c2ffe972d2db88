"""usage_entries: the unique key leads with time and serves as the time index

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 04:00:00

Every usage entry was written into three indexes besides its table: the unique key
(source first), (bucket_start, model) for reads of a span, and the bucket-length
expression index (0008) for the overlap check's reach. The unique key reordered to
(bucket_start, model, source, ...) serves the span reads itself, and the lengths the
ledger holds go to a table of a few rows, written where entries are inserted. A large
import writes a third fewer pages (bench/import_usage.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEY = ["bucket_end", "project_id", "api_key_id", "user_id", "batch", "service_tier"]
TIME_FIRST = ["bucket_start", "model", "source", *_KEY, "revision"]
SOURCE_FIRST = ["source", "bucket_start", "bucket_end", "model", *_KEY[1:], "revision"]


def upgrade() -> None:
    op.create_table(
        "usage_bucket_widths",
        sa.Column("width", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("width", name=op.f("pk_usage_bucket_widths")),
    )
    op.execute(
        "INSERT INTO usage_bucket_widths (width) "
        "SELECT DISTINCT bucket_end - bucket_start FROM usage_entries"
    )
    # Dropped outside the batch: SQLite's table copy cannot reflect an expression index.
    op.drop_index("ix_usage_entries_span", table_name="usage_entries")
    with op.batch_alter_table("usage_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_entries_bucket_model")
        batch_op.drop_constraint("uq_usage_entries_key_revision", type_="unique")
        batch_op.create_unique_constraint("uq_usage_entries_key_revision", TIME_FIRST)


def downgrade() -> None:
    with op.batch_alter_table("usage_entries", schema=None) as batch_op:
        batch_op.drop_constraint("uq_usage_entries_key_revision", type_="unique")
        batch_op.create_unique_constraint("uq_usage_entries_key_revision", SOURCE_FIRST)
        batch_op.create_index("ix_usage_entries_bucket_model", ["bucket_start", "model"])
    op.create_index(
        "ix_usage_entries_span", "usage_entries", [sa.text("(bucket_end - bucket_start)")]
    )
    op.drop_table("usage_bucket_widths")
