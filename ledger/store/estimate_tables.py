"""Recorded training estimates, kept to be compared with the job that later trains the file.

A file is known by its sha256 (the path may move) and, once uploaded, by OpenAI's file
id, which is what a fine-tuning job names as its `training_file`. Recording the same
estimate twice (same file, model, epochs, price day and price book) keeps one row.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ledger.store.base import Base, BigIntId


class TrainingEstimate(Base):
    __tablename__ = "training_estimates"
    __table_args__ = (
        UniqueConstraint(
            "file_sha256",
            "model",
            "n_epochs",
            "price_date",
            "price_version",
            name="uq_training_estimates_key",
        ),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    file_name: Mapped[str] = mapped_column(String(1024))
    file_sha256: Mapped[str] = mapped_column(String(64), index=True)
    file_bytes: Mapped[int] = mapped_column(BigInteger)
    openai_file_id: Mapped[str] = mapped_column(String(128), default="", index=True)
    model: Mapped[str] = mapped_column(String(255))
    base_model: Mapped[str] = mapped_column(String(255))
    encoding: Mapped[str] = mapped_column(String(32))
    method: Mapped[str] = mapped_column(String(16))  # supervised | dpo
    examples: Mapped[int] = mapped_column(BigInteger)
    billing_tokens: Mapped[int] = mapped_column(BigInteger)
    n_epochs: Mapped[int] = mapped_column(Integer)
    trained_tokens: Mapped[int] = mapped_column(BigInteger)
    training_price: Mapped[str | None] = mapped_column(String(32))  # per 1M tokens, exact text
    cost_pico: Mapped[int | None] = mapped_column(BigInteger)
    price_date: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD (UTC)
    price_version: Mapped[str] = mapped_column(String(32))
    recorded_at: Mapped[int] = mapped_column(BigInteger)
