"""Seeding helpers shared by the report tests: post usage and fees through the ledger."""

from __future__ import annotations

from datetime import UTC, datetime

from ledger.domain import JobObservation, UsageKey, UsageObservation
from ledger.store.ledger import post_training_fee, post_usage

FT = "ft:gpt-4o-mini-2024-07-18:acme:support:A1"
FT2 = "ft:gpt-4o-mini-2024-07-18:acme:legal:B2"
FT35 = "ft:gpt-3.5-turbo-0613:acme::C3"
FT35_0125 = "ft:gpt-3.5-turbo-0125:acme::D4"
MYSTERY = "mystery-model"


def ts(text: str) -> int:
    """Unix seconds of an ISO date or date-time, read as UTC."""
    moment = datetime.fromisoformat(text)
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


def usage(
    model: str,
    when: str,
    *,
    inp: int,
    cached: int = 0,
    out: int = 0,
    requests: int = 1,
    batch: bool = False,
    project: str = "proj_a",
    api_key: str = "",
    tier: str = "",
) -> UsageObservation:
    start = ts(when)
    key = UsageKey("test", start, start + 3600, model, project, api_key, "", batch, tier)
    return UsageObservation(key, requests, inp, cached, out)


def post(engine, book, *observations: UsageObservation) -> None:
    with engine.begin() as conn:
        post_usage(conn, {o.key: o for o in observations}, book)


def fee(
    engine,
    book,
    job_id: str,
    fine_tuned: str,
    finished: str,
    tokens: int,
    *,
    base: str = "gpt-4o-mini-2024-07-18",
    method: str = "supervised",
    project: str = "proj_a",
) -> None:
    job = JobObservation(
        id=job_id,
        model=base,
        fine_tuned_model=fine_tuned,
        status="succeeded",
        method=method,
        n_epochs=3,
        trained_tokens=tokens,
        created_at=ts(finished) - 3600,
        finished_at=ts(finished),
        project=project,
    )
    with engine.begin() as conn:
        post_training_fee(conn, job, book)
