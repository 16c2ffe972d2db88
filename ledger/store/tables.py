"""The ledger's tables.

Money is integer pico-USD (BigInteger), times are unix seconds UTC (BigInteger), and
dimensions OpenAI leaves ungrouped are "" rather than NULL, so unique keys hold.
`usage_entries` and `training_fees` are append-only; the other tables mirror the state
of something outside (jobs, OpenAI's billed costs, poll progress).
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ledger.store.base import Base, BigIntId

SOURCE_LENGTH = 32  # usage_entries.source: an import's --source must fit

USAGE_KEY_COLUMNS = (
    "source",
    "bucket_start",
    "bucket_end",
    "model",
    "project_id",
    "api_key_id",
    "user_id",
    "batch",
    "service_tier",
)

# The unique key's columns in its index's order: time and model first (the index
# serves reads of a span), then the rest of the usage key, then the revision.
_TIME_FIRST = ("bucket_start", "model")
UNIQUE_KEY_ORDER = (
    *_TIME_FIRST,
    *(c for c in USAGE_KEY_COLUMNS if c not in _TIME_FIRST),
    "revision",
)


def core(model: type[Base]) -> Table:
    """The Core table behind a model: bulk SQL reads and writes need no ORM objects."""
    return cast(Table, model.__table__)


class UsageEntry(Base):
    """One immutable ledger line: the difference a usage observation made to its key."""

    __tablename__ = "usage_entries"
    # The unique key leads with the bucket's start, then the model: it is also the time
    # index every read of a span uses (reports, overlap checks, re-imports), so no second
    # index is kept up on each of millions of inserts (migration 0009).
    __table_args__ = (UniqueConstraint(*UNIQUE_KEY_ORDER, name="uq_usage_entries_key_revision"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(SOURCE_LENGTH))
    bucket_start: Mapped[int] = mapped_column(BigInteger)
    bucket_end: Mapped[int] = mapped_column(BigInteger)
    model: Mapped[str] = mapped_column(String(255))
    project_id: Mapped[str] = mapped_column(String(128), default="")
    api_key_id: Mapped[str] = mapped_column(String(128), default="")
    user_id: Mapped[str] = mapped_column(String(128), default="")
    batch: Mapped[bool] = mapped_column(Boolean, default=False)
    service_tier: Mapped[str] = mapped_column(String(32), default="")
    revision: Mapped[int] = mapped_column(Integer)
    requests: Mapped[int] = mapped_column(BigInteger)
    input_tokens: Mapped[int] = mapped_column(BigInteger)
    cached_tokens: Mapped[int] = mapped_column(BigInteger)
    output_tokens: Mapped[int] = mapped_column(BigInteger)
    cost_pico: Mapped[int | None] = mapped_column(BigInteger)  # NULL: the model had no price
    base_cost_pico: Mapped[int | None] = mapped_column(BigInteger)
    # Additive: a key's cost is unknown iff SUM(unpriced) > 0 (a later price posts -1);
    # likewise its base-model cost and SUM(base_unpriced).
    unpriced: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    base_unpriced: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    price_version: Mapped[str] = mapped_column(String(32))
    recorded_at: Mapped[int] = mapped_column(BigInteger)


class UsageBucketKind(Base):
    """Every kind of bucket among the usage entries: (source, length in seconds, start
    modulo length). The overlap check (store.overlap) reaches back by the longest, and
    skips reading the held keys when a batch's kind is the only one held. Written where
    entries are inserted, in their transaction; a handful of rows."""

    __tablename__ = "usage_bucket_kinds"

    source: Mapped[str] = mapped_column(String(SOURCE_LENGTH), primary_key=True)
    width: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    phase: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)


class TrainingFee(Base):
    """A training-fee entry of a finished fine-tuning job: a job's fee is the sum of its
    entries. Revision 1 is the fee as first seen; later revisions are corrections (the
    difference a revised `trained_tokens`, a price that arrived later or `reprice --all`
    made). Identity columns repeat revision 1's; `cost_pico` NULL: no price, and the
    job's fee is unpriced while none of its entries has a cost.
    """

    __tablename__ = "training_fees"
    __table_args__ = (UniqueConstraint("job_id", "revision", name="uq_training_fees_job_revision"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(128))
    revision: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    model: Mapped[str] = mapped_column(String(255), index=True)  # the fine-tuned model
    base_model: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(32))
    trained_tokens: Mapped[int] = mapped_column(BigInteger)
    training_price: Mapped[str | None] = mapped_column(String(32))  # per 1M tokens, exact text
    cost_pico: Mapped[int | None] = mapped_column(BigInteger)
    finished_at: Mapped[int] = mapped_column(BigInteger, index=True)
    project: Mapped[str] = mapped_column(String(128), default="")
    price_version: Mapped[str] = mapped_column(String(32))
    recorded_at: Mapped[int] = mapped_column(BigInteger)


class FineTuningJob(Base):
    """The latest known state of a fine-tuning job (a terminal state is never regressed)."""

    __tablename__ = "fine_tuning_jobs"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    project: Mapped[str] = mapped_column(String(128), default="")
    model: Mapped[str] = mapped_column(String(255))
    fine_tuned_model: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32))
    method: Mapped[str] = mapped_column(String(32))
    n_epochs: Mapped[int | None] = mapped_column(Integer)
    trained_tokens: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)
    finished_at: Mapped[int | None] = mapped_column(BigInteger)
    training_file: Mapped[str | None] = mapped_column(String(128))
    billing_note: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[int] = mapped_column(BigInteger)


class BilledCost(Base):
    """OpenAI's own billed figure (Costs API) for a day, project and line item.

    Kept apart from the ledger's priced entries; used for reconciliation. The amount is
    the exact decimal text OpenAI sent, since it may carry more than 12 decimals.
    """

    __tablename__ = "billed_costs"
    __table_args__ = (
        UniqueConstraint(
            "bucket_start", "project_id", "line_item", "currency", name="uq_billed_costs_key"
        ),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    bucket_start: Mapped[int] = mapped_column(BigInteger)
    bucket_end: Mapped[int] = mapped_column(BigInteger)
    project_id: Mapped[str] = mapped_column(String(128), default="")
    line_item: Mapped[str] = mapped_column(String(255), default="")
    currency: Mapped[str] = mapped_column(String(8))
    amount: Mapped[str] = mapped_column(String(64))
    observed_at: Mapped[int] = mapped_column(BigInteger)


class Watermark(Base):
    """How far a source has been read, and how its last attempts went."""

    __tablename__ = "watermarks"

    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int | None] = mapped_column(BigInteger)  # unix seconds read up to
    last_success_at: Mapped[int | None] = mapped_column(BigInteger)
    last_attempt_at: Mapped[int | None] = mapped_column(BigInteger)
    last_error: Mapped[str | None] = mapped_column(Text)
    failing_since: Mapped[int | None] = mapped_column(BigInteger)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)


from ledger.store.alert_tables import AlertDecision as AlertDecision  # noqa: E402
from ledger.store.alert_tables import AlertDelivery as AlertDelivery  # noqa: E402
from ledger.store.estimate_tables import TrainingEstimate as TrainingEstimate  # noqa: E402
