"""Who is in the simulated organisation: projects, models, traffic streams and jobs.

Data and value types only; `organisation.py` turns them into traffic and a bill.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledger.domain import JobObservation

MINUTE, HOUR, DAY = 60, 3600, 86400

ORGANIZATION_ID = "org-acmeSandbox0001"
PROJECTS = {"support": "proj_support", "legal": "proj_legal", "research": "proj_research"}

FT_SUPPORT = "ft:gpt-4o-mini-2024-07-18:acme:support:A1b2C3"
FT_SUPPORT_CKPT = FT_SUPPORT + ":ckpt-step-88"
FT_LEGAL = "ft:gpt-4o-mini:acme:legal:Lx9Qp2"
FT_RESEARCH = "ft:gpt-4.1-2025-04-14:acme:research:R4nD0m"
FT_FAQ = "ft:gpt-3.5-turbo-0125:acme:faq:9XyZ12"
FT_PREFS = "ft:gpt-4.1-mini-2025-04-14:acme:prefs:Dp0Xy7"
FT_GRADER = "ft:o4-mini-2025-04-16:acme:grader:Rf7Ab1"
UNKNOWN_MODEL = "mystery-model-2099"

ALIASES = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "gpt-3.5-turbo": "gpt-3.5-turbo-0125",
    "o4-mini": "o4-mini-2025-04-16",
}


@dataclass(frozen=True)
class Stream:
    """One steady source of traffic: a model used by one user through one key."""

    model: str
    project_id: str
    api_key_id: str
    user_id: str
    batch: bool = False
    service_tier: str = "default"
    cached: bool = True
    scale: int = 1


STREAMS: tuple[Stream, ...] = (
    Stream(FT_SUPPORT, "proj_support", "key_support_prod", "user-alice", scale=4),
    Stream(FT_SUPPORT, "proj_support", "key_support_prod", "user-bob", scale=2),
    Stream(FT_SUPPORT, "proj_support", "key_support_batch", "user-alice", batch=True, cached=False),
    Stream(FT_SUPPORT_CKPT, "proj_support", "key_support_prod", "user-bob"),
    Stream(FT_FAQ, "proj_support", "key_support_prod", "user-bob", cached=False),
    Stream(FT_LEGAL, "proj_legal", "key_legal", "user-carol", scale=2),
    # Flex is offered on o3/o4-mini base models only (no fine-tuned flex price exists).
    Stream("o4-mini-2025-04-16", "proj_legal", "key_legal", "user-carol", service_tier="flex"),
    Stream("gpt-4.1-mini-2025-04-14", "proj_legal", "key_legal", "user-carol", batch=True),
    Stream(FT_RESEARCH, "proj_research", "key_research", "user-dave", scale=2),
    Stream("gpt-4o-mini-2024-07-18", "proj_research", "key_research", "user-dave", scale=3),
    Stream(FT_GRADER, "proj_research", "key_research", "user-erin"),
    Stream(UNKNOWN_MODEL, "proj_research", "key_research", "user-erin", cached=False),
)


@dataclass(frozen=True)
class Event:
    """Traffic of one stream in one minute: the finest grain the truth is kept at."""

    at: int
    stream: int  # index into STREAMS
    requests: int
    input_tokens: int  # includes cached_tokens
    cached_tokens: int
    output_tokens: int


@dataclass
class Job:
    """A fine-tuning job as the org knows it; `planned_*` is what it becomes when done."""

    id: str
    project: str  # project name (a key of PROJECTS)
    model: str
    method: str
    status: str
    created_at: int
    suffix: str
    planned_model: str
    planned_tokens: int
    n_epochs: int | str
    training_file: str
    finished_at: int | None = None
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    training_seconds: int = 0  # reinforcement jobs bill wall-clock time
    error: dict[str, Any] | None = None

    def observation(self) -> JobObservation:
        epochs = self.n_epochs if isinstance(self.n_epochs, int) else None
        return JobObservation(
            id=self.id,
            model=self.model,
            fine_tuned_model=self.fine_tuned_model,
            status=self.status,
            method=self.method,
            n_epochs=epochs,
            trained_tokens=self.trained_tokens,
            created_at=self.created_at,
            finished_at=self.finished_at,
            training_file=self.training_file,
            project=self.project,
        )


# (project, method, model, status, planned fine-tuned model, epochs, tokens per epoch)
CORE_JOBS: tuple[tuple[str, str, str, str, str, int | str, int], ...] = (
    ("support", "supervised", "gpt-4o-mini-2024-07-18", "succeeded", FT_SUPPORT, 3, 900_000),
    ("legal", "supervised", "gpt-4o-mini", "succeeded", FT_LEGAL, 4, 310_000),
    ("research", "supervised", "gpt-4.1-2025-04-14", "succeeded", FT_RESEARCH, 2, 420_000),
    ("support", "supervised", "gpt-3.5-turbo-0125", "succeeded", FT_FAQ, 3, 86_120),
    ("research", "dpo", "gpt-4.1-mini-2025-04-14", "succeeded", FT_PREFS, 2, 150_000),
    ("research", "reinforcement", "o4-mini-2025-04-16", "succeeded", FT_GRADER, 1, 240_000),
    (
        "support",
        "supervised",
        "gpt-4o-mini-2024-07-18",
        "running",
        "ft:gpt-4o-mini-2024-07-18:acme:support:N3wRun",
        3,
        500_000,
    ),
    (
        "legal",
        "supervised",
        "gpt-4o-mini-2024-07-18",
        "queued",
        "ft:gpt-4o-mini-2024-07-18:acme:legal:Qu3u3d",
        "auto",
        200_000,
    ),
    (
        "research",
        "supervised",
        "gpt-4.1-nano-2025-04-14",
        "validating_files",
        "ft:gpt-4.1-nano-2025-04-14:acme:research:V4l1d8",
        3,
        100_000,
    ),
    (
        "support",
        "supervised",
        "gpt-4o-mini-2024-07-18",
        "failed",
        "ft:gpt-4o-mini-2024-07-18:acme:support:F41led",
        3,
        300_000,
    ),
    (
        "legal",
        "dpo",
        "gpt-4.1-mini-2025-04-14",
        "cancelled",
        "ft:gpt-4.1-mini-2025-04-14:acme:legal:C4ncel",
        2,
        80_000,
    ),
    (
        "research",
        "reinforcement",
        "o4-mini-2025-04-16",
        "running",
        "ft:o4-mini-2025-04-16:acme:grader:Rf2Run",
        1,
        120_000,
    ),
)
