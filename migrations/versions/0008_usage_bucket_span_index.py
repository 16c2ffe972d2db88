"""usage_entries: an index on the bucket span, so the overlap check's widest span is a lookup

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 23:10:00

Before posting, the overlap check (ledger.store.overlap) asks how far back a held bucket
may start and still reach into a batch: max(bucket_end - bucket_start). Without an index
that scanned the whole ledger for every import and poll window (350 ms at 1M entries,
growing with the ledger); with it both databases read one index entry.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_usage_entries_span", "usage_entries", [sa.text("(bucket_end - bucket_start)")]
    )


def downgrade() -> None:
    op.drop_index("ix_usage_entries_span", table_name="usage_entries")
