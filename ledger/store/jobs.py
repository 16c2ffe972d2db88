"""The mirror of OpenAI's fine-tuning jobs: one row per job, its latest known state."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from ledger.domain import TERMINAL_JOB_STATES, JobObservation
from ledger.errors import ConflictError
from ledger.store.ledger import insert_ignore
from ledger.store.tables import FineTuningJob, core

_jobs = core(FineTuningJob)

_JOB_FIELDS = (
    "project",
    "model",
    "fine_tuned_model",
    "status",
    "method",
    "n_epochs",
    "trained_tokens",
    "created_at",
    "finished_at",
    "training_file",
)


def upsert_job(conn: Connection, job: JobObservation, note: str | None, now: int) -> int:
    """Insert or update a job; a terminal state is never replaced by a non-terminal one.

    Returns the rows changed (0 or 1). A concurrent insert of the same job is a
    ConflictError: the caller's transaction is retried against what the winner wrote.
    """
    values = {name: getattr(job, name) for name in _JOB_FIELDS}
    values["billing_note"] = note
    current = conn.execute(select(_jobs).where(_jobs.c.id == job.id)).first()
    if current is None:
        inserted = insert_ignore(conn, _jobs, [{"id": job.id, **values, "updated_at": now}], ["id"])
        if not inserted:
            raise ConflictError("another poller recorded the same job at the same time")
        return 1
    if all(getattr(current, k) == v for k, v in values.items()):
        return 0
    stmt = update(_jobs).where(_jobs.c.id == job.id)
    if not job.terminal:  # a stale reading: only a job not yet finished may take it
        stmt = stmt.where(_jobs.c.status.not_in(sorted(TERMINAL_JOB_STATES)))
    result = conn.execute(stmt.values(**values, updated_at=now))
    return int(result.rowcount or 0)
