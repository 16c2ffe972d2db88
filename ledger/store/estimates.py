"""Recording training estimates, and comparing them with what the jobs really trained.

The comparison tells users how far to trust a forecast: for every recorded estimate
whose file was later trained (a job naming the estimate's OpenAI file id as its
training_file and reporting trained_tokens), estimated against actual trained tokens
and cost, and the error in percent of the actual.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update

from ledger.errors import ConflictError, InputError, Problem
from ledger.money import from_pico, per_token_pico
from ledger.store.errors import db_errors
from ledger.store.estimate_tables import TrainingEstimate

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from ledger.estimate import Estimate

METHODS = {"chat": "supervised", "dpo": "dpo", "prompt_completion": "supervised"}


def file_digest(path: Path) -> tuple[str, int]:
    """(sha256 hex, size in bytes), read in blocks."""
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("rb") as stream:
            while block := stream.read(1 << 20):
                digest.update(block)
                size += len(block)
    except OSError as exc:
        raise InputError([Problem(str(path), f"cannot read: {exc.strerror}")]) from None
    return digest.hexdigest(), size


def record_estimate(
    engine: Engine,
    path: Path,
    result: Estimate,
    *,
    price_version: str = "",
    openai_file_id: str = "",
    now: int | None = None,
) -> int:
    """Store `result` (once per file, model, epochs, price day and price book); its id."""
    sha, size = file_digest(path)
    cost = (
        None
        if result.training_price is None
        else result.trained_tokens * per_token_pico(result.training_price)
    )
    key = {
        "file_sha256": sha,
        "model": result.model,
        "n_epochs": result.n_epochs,
        "price_date": result.price_date.isoformat(),
        "price_version": price_version,
    }
    values = {
        **key,
        "file_name": path.name,
        "file_bytes": size,
        "openai_file_id": openai_file_id,
        "base_model": result.base_model,
        "encoding": result.encoding,
        "method": METHODS.get(result.format, result.format),
        "examples": result.examples,
        "billing_tokens": result.billing_tokens,
        "trained_tokens": result.trained_tokens,
        "training_price": None if result.training_price is None else str(result.training_price),
        "cost_pico": cost,
        "recorded_at": int(time.time()) if now is None else now,
    }
    with db_errors("recording the estimate", engine.url):
        existing = _find(engine, key)
        if existing is not None:
            return _link_file(engine, existing, openai_file_id)
        try:
            with db_errors("recording the estimate", engine.url), engine.begin() as conn:
                done = conn.execute(insert(TrainingEstimate).values(**values))
                assert done.inserted_primary_key is not None
                return int(done.inserted_primary_key[0])
        except ConflictError:  # recorded by someone else just now
            found = _find(engine, key)
            if found is None:
                raise
            return found


def _find(engine: Engine, key: dict[str, Any]) -> int | None:
    columns = TrainingEstimate.__table__.c
    query = select(columns.id).where(*(columns[name] == value for name, value in key.items()))
    with engine.connect() as conn:
        return conn.execute(query).scalar_one_or_none()


def _link_file(engine: Engine, estimate_id: int, openai_file_id: str) -> int:
    """Attach an OpenAI file id to an estimate recorded before the upload."""
    if openai_file_id:
        with engine.begin() as conn:
            conn.execute(
                update(TrainingEstimate)
                .where(TrainingEstimate.id == estimate_id, TrainingEstimate.openai_file_id == "")
                .values(openai_file_id=openai_file_id)
            )
    return estimate_id


@dataclass(frozen=True)
class Comparison:
    estimate_id: int
    file_name: str
    model: str
    openai_file_id: str
    job_id: str | None
    estimated_tokens: int
    actual_tokens: int | None
    estimated_cost: Decimal | None
    actual_cost: Decimal | None

    @property
    def tokens_error_pct(self) -> Decimal | None:
        return error_pct(self.estimated_tokens, self.actual_tokens)

    @property
    def cost_error_pct(self) -> Decimal | None:
        return error_pct(self.estimated_cost, self.actual_cost)

    def as_dict(self) -> dict[str, Any]:
        from ledger.estimate import exact_str

        def text(value: Decimal | None) -> str | None:
            return None if value is None else exact_str(value)

        return {
            "estimate_id": self.estimate_id,
            "file": self.file_name,
            "model": self.model,
            "openai_file_id": self.openai_file_id or None,
            "job_id": self.job_id,
            "estimated_trained_tokens": self.estimated_tokens,
            "actual_trained_tokens": self.actual_tokens,
            "tokens_error_pct": text(self.tokens_error_pct),
            "estimated_cost": text(self.estimated_cost),
            "actual_cost": text(self.actual_cost),
            "cost_error_pct": text(self.cost_error_pct),
        }


def error_pct(estimated: int | Decimal | None, actual: int | Decimal | None) -> Decimal | None:
    """(estimated - actual) / actual in percent, two decimals; None without an actual."""
    if estimated is None or actual is None or actual == 0:
        return None
    return (Decimal(estimated - actual) * 100 / Decimal(actual)).quantize(Decimal("0.01"))


def compare_estimates(engine: Engine) -> list[Comparison]:
    """Every recorded estimate with each finished job that trained its file (if any)."""
    from ledger.store.read import estimate_job_rows

    with db_errors("reading the estimates", engine.url), engine.connect() as conn:
        rows = estimate_job_rows(conn)
    return [
        Comparison(
            estimate_id=r.id,
            file_name=r.file_name,
            model=r.model,
            openai_file_id=r.openai_file_id,
            job_id=r.job_id,
            estimated_tokens=r.trained_tokens,
            actual_tokens=r.actual_tokens,
            estimated_cost=None if r.cost_pico is None else from_pico(r.cost_pico),
            actual_cost=None if r.actual_cost is None else from_pico(r.actual_cost),
        )
        for r in rows
    ]
