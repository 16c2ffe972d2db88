"""Alert state: which budget thresholds were decided, and how their delivery went.

A decision is recorded before anything is sent, once per (budget, period, kind,
threshold): the unique constraint, not the code, decides who alerts when two checks
run at once. Each decision has one delivery row per channel, claimed with a lease
before sending, so two checkers never send the same row together; the idempotency key
is the same on every retry. No URL, address or credential is ever stored here.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ledger.store.base import Base, BigIntId, PicoAmount


class AlertDecision(Base):
    """A threshold that was crossed in a period: alerted at most once, kept for good."""

    __tablename__ = "alert_decisions"
    __table_args__ = (
        UniqueConstraint("budget", "period", "kind", "threshold", name="uq_alert_decisions_key"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    budget: Mapped[str] = mapped_column(String(128))
    period: Mapped[str] = mapped_column(String(16))  # 2026-11, 2026-W48, 2026-11-25
    kind: Mapped[str] = mapped_column(String(16))  # actual | forecast | anomaly
    threshold: Mapped[str] = mapped_column(String(16))  # percent, exact decimal text
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    amount_pico: Mapped[int] = mapped_column(PicoAmount)
    spend_pico: Mapped[int] = mapped_column(PicoAmount)  # at decision time; never revised
    forecast_pico: Mapped[int | None] = mapped_column(PicoAmount)
    scope: Mapped[str] = mapped_column(Text)  # JSON: {"models": [...], "projects": [...]}
    decided_at: Mapped[int] = mapped_column(BigInteger)
    # kind "anomaly": JSON with the baseline and the models that drove the spike
    # (the budget column then names the [[anomaly]], period is the day, amount the
    # expected spend, threshold "0"); None for budget decisions.
    detail: Mapped[str | None] = mapped_column(Text)


class AlertDelivery(Base):
    """Delivery of one decision to one channel: pending until a channel accepted it."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        UniqueConstraint("decision_id", "channel", name="uq_alert_deliveries_decision_channel"),
        Index("ix_alert_deliveries_status", "status"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    decision_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("alert_decisions.id")
    )
    channel: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | delivered
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)  # never holds a URL or credential
    last_attempt_at: Mapped[int | None] = mapped_column(BigInteger)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[int | None] = mapped_column(BigInteger)
    delivered_at: Mapped[int | None] = mapped_column(BigInteger)
