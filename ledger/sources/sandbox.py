"""A fake OpenAI organisation served over real HTTP on loopback.

Tests, benchmarks and `ftledger demo` poll it through the real `openai` SDK, so the
whole path (query encoding, auth headers, retries, pagination, parsing) is exercised
without a network. It is written against OpenAI's published shapes, not against our
own client, and it knows the truth: `SandboxOrg` generates per-minute traffic
deterministically from a seed and a `now`, and exposes accessors the tests compare
the ledger with (`usage_rows`, `jobs`, `costs`).

    org = SandboxOrg(seed=7, now=1_750_000_000, days=3)
    with SandboxServer(org) as srv:
        srv.base_url                      # "http://127.0.0.1:PORT/v1"
        srv.faults.rate_limit("usage", retry_after=0.01, times=2)
        srv.requests["usage"]             # requests served per endpoint

Endpoints: GET /v1/organization/usage/completions, GET /v1/organization/costs (admin
key), GET /v1/fine_tuning/jobs, POST /v1/moderations (project keys). Endpoint names
used by faults and counters: "usage", "costs", "jobs", "moderations".

How the true costs are made (what reconciliation should find):
- inference at the list prices in `_LIST` (per 1M tokens); batch and flex at 50%;
  the unknown model `mystery-model-2099` is billed at a private price;
- training: trained tokens x training price on the day the job finished, except that
  gpt-4o-mini training enjoys 2M free training tokens per UTC day (the 2024 promotion);
  reinforcement jobs bill $100 per training hour, prorated by the second, not tokens;
  failed and cancelled jobs bill nothing;
- `add_cost` injects extra billed amounts (credits, adjustments, awkward decimals).

Line items: "<line model>, input" / ", cached input" / ", output" with " (batch)" or
" (flex)" appended, and "<line model>, training"; the line model of a fine-tuned model
is "ft-" + its dated base (e.g. "ft-gpt-4o-mini-2024-07-18").
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import hashlib
import json
import random
import re
import socket
import struct
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, localcontext
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ledger.domain import CostObservation, JobObservation, UsageKey, UsageObservation

MINUTE, HOUR, DAY = 60, 3600, 86400
WIDTHS = {"1m": MINUTE, "1h": HOUR, "1d": DAY}
USAGE_LIMITS = {"1m": (60, 1440), "1h": (24, 168), "1d": (7, 31)}  # (default, max) buckets
COSTS_LIMITS = (7, 180)
JOBS_LIMITS = (20, 100)
MODERATION_MAX_INPUTS = 32  # a sandbox limit, so batching is exercised
USAGE_DIMENSIONS = ("project_id", "user_id", "api_key_id", "model", "batch", "service_tier")
COST_DIMENSIONS = ("project_id", "line_item", "api_key_id")
SOURCE_GROUP_BY = ("model", "project_id", "api_key_id", "batch", "service_tier")
ENDPOINTS = ("usage", "costs", "jobs", "moderations")
EXACT_PRECISION = 100  # Decimal digits for sums: the default 28 would round

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
class _Rates:
    """USD per 1M tokens; training per 1M trained tokens (or per hour when hourly)."""

    input: str
    cached: str | None
    output: str
    training: str | None = None
    hourly: bool = False


_LIST: dict[str, _Rates] = {
    "gpt-4o-mini-2024-07-18": _Rates("0.15", "0.075", "0.60"),
    "gpt-4.1-mini-2025-04-14": _Rates("0.40", "0.10", "1.60"),
    UNKNOWN_MODEL: _Rates("1.10", None, "3.30"),
    "ft-gpt-4o-mini-2024-07-18": _Rates("0.30", "0.15", "1.20", "3.00"),
    "ft-gpt-4.1-2025-04-14": _Rates("3.00", "0.75", "12.00", "25.00"),
    "ft-gpt-4.1-mini-2025-04-14": _Rates("0.80", "0.20", "3.20", "5.00"),
    "ft-gpt-4.1-nano-2025-04-14": _Rates("0.20", "0.05", "0.80", "1.50"),
    "ft-gpt-3.5-turbo-0125": _Rates("3.00", None, "6.00", "8.00"),
    "ft-o4-mini-2025-04-16": _Rates("4.00", "1.00", "16.00", "100.00", hourly=True),
}
PROMO_FREE_TRAINING_TOKENS = {"ft-gpt-4o-mini-2024-07-18": 2_000_000}  # per UTC day
DISCOUNTED_TIERS = {"flex"}
FLAG_MARKERS = {"violence": "kill", "harassment": "idiot", "illicit": "counterfeit"}
MODERATION_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)


def line_model(model: str) -> str:
    """The model part of a Costs line item: dated base, "ft-" for fine-tuned models."""
    if not model.startswith("ft:"):
        return ALIASES.get(model, model)
    base = model.split(":")[1]
    return "ft-" + ALIASES.get(base, base)


def floor_to(ts: int, width: int) -> int:
    return ts - ts % width


# --- the simulated organisation -------------------------------------------------------


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
    Stream(FT_LEGAL, "proj_legal", "key_legal", "user-carol", service_tier="flex"),
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


def _hour_events(seed: int, hour: int) -> list[Event]:
    """The traffic of one hour: a pure function of (seed, hour), so advancing is stable."""
    events: list[Event] = []
    for index, stream in enumerate(STREAMS):
        rng = random.Random(f"{seed}:{hour}:{index}")
        if rng.random() < 0.35:
            continue
        minutes = sorted(rng.sample(range(60), rng.randint(1, 3)))
        for minute in minutes:
            events.append(_event(rng, hour + minute * MINUTE, index, stream))
    return events


def _event(rng: random.Random, at: int, index: int, stream: Stream) -> Event:
    requests = rng.randint(1, 12) * stream.scale
    input_tokens = requests * rng.randint(150, 2500)
    cached = rng.randint(0, input_tokens // 2) // 64 * 64 if stream.cached else 0
    output = requests * rng.randint(20, 600)
    return Event(at, index, requests, input_tokens, cached, output)


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
_CORE_JOBS: tuple[tuple[str, str, str, str, str, int | str, int], ...] = (
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


def _token(rng: random.Random, n: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(rng.choice(alphabet) for _ in range(n))


class SandboxOrg:
    """The simulated organisation: its traffic, jobs and bill; the truth tests compare with.

    Deterministic from `seed` and `now` (unix seconds): traffic starts `days` days before
    the UTC day of `now` and runs until `now`. Thread-safe: the server reads it while a
    test revises it.
    """

    def __init__(
        self, seed: int = 7, now: int = 1_750_000_000, *, days: int = 35, extra_jobs: int = 30
    ) -> None:
        self.seed = seed
        self.now = now
        self.start = floor_to(now, DAY) - days * DAY
        self._lock = threading.RLock()
        self._events: list[Event] = []
        self._ats: list[int] = []
        self._generated_until = self.start
        self._adjustments: list[tuple[int, str, str | None, str, Decimal]] = []
        self._generate_until(now)
        self._jobs = self._make_jobs(extra_jobs)

    # -- traffic -----------------------------------------------------------------------

    def _generate_until(self, now: int) -> None:
        end_hour = floor_to(now, HOUR) + HOUR
        fresh: list[Event] = []
        for hour in range(self._generated_until, end_hour, HOUR):
            fresh.extend(_hour_events(self.seed, hour))
        self._generated_until = max(self._generated_until, end_hour)
        self._events = sorted(self._events + fresh, key=lambda e: (e.at, e.stream))
        self._ats = [e.at for e in self._events]

    def advance(self, now: int) -> None:
        """Move the clock forward: the traffic of the new minutes becomes visible."""
        with self._lock:
            if now < self.now:
                raise ValueError("the sandbox clock only moves forward")
            self._generate_until(now)
            self.now = now

    def events(self, start: int, end: int) -> list[Event]:
        """The visible minute events in [start, end)."""
        with self._lock:
            end = min(end, self.now)
            lo, hi = bisect.bisect_left(self._ats, start), bisect.bisect_left(self._ats, end)
            return self._events[lo:hi] if lo < hi else []

    def revise(self, since: int, until: int | None = None, *, salt: int = 1) -> int:
        """Late data: change visible events in [since, until), some up, some down.

        Deterministic from (seed, salt). Returns the number of events changed.
        """
        with self._lock:
            until = self.now if until is None else min(until, self.now)
            lo, hi = bisect.bisect_left(self._ats, since), bisect.bisect_left(self._ats, until)
            changed = 0
            for i in range(lo, hi):
                revised = _revised(self._events[i], random.Random(f"{self.seed}:r{salt}:{i}"))
                if revised != self._events[i]:
                    self._events[i] = revised
                    changed += 1
            return changed

    def usage_rows(
        self,
        start: int,
        end: int,
        bucket_width: str = "1h",
        group_by: Sequence[str] = SOURCE_GROUP_BY,
    ) -> list[UsageObservation]:
        """The true usage as the source should report it: one observation per group."""
        rows: list[UsageObservation] = []
        for b_start, b_end in self.buckets(start, end, WIDTHS[bucket_width]):
            for result in self.aggregate(b_start, b_end, group_by):
                rows.append(_observation(b_start, b_end, result))
        return rows

    def buckets(self, start: int, end: int, width: int) -> list[tuple[int, int]]:
        """UTC-aligned buckets of [start, end), partial at the edges, none from `now` on."""
        out: list[tuple[int, int]] = []
        cursor = start
        stop = min(end, self.now)
        while cursor < stop:
            b_end = min(floor_to(cursor, width) + width, end)
            out.append((cursor, b_end))
            cursor = b_end
        return out

    def aggregate(
        self, start: int, end: int, group_by: Sequence[str], filters: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Usage results of one bucket in the API's shape (ungrouped dimensions null)."""
        sums: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for event in self.events(start, end):
            dims = _dimensions(STREAMS[event.stream])
            if filters and not _matches(dims, filters):
                continue
            key = tuple(dims[d] if d in group_by else None for d in USAGE_DIMENSIONS)
            acc = sums[key]
            acc[0] += event.requests
            acc[1] += event.input_tokens
            acc[2] += event.cached_tokens
            acc[3] += event.output_tokens
        return [_usage_result(key, acc) for key, acc in sorted(sums.items(), key=_sort_key)]

    # -- jobs ----------------------------------------------------------------------------

    def _make_jobs(self, extra: int) -> list[Job]:
        rng = random.Random(f"{self.seed}:jobs")
        span = max(self.now - self.start, DAY)
        jobs = [self._core_job(rng, i, spec, span) for i, spec in enumerate(_CORE_JOBS)]
        jobs += [self._filler_job(rng, span) for _ in range(extra)]
        return jobs

    def _core_job(self, rng: random.Random, i: int, spec: tuple[Any, ...], span: int) -> Job:
        project, method, model, status, planned, epochs, per_epoch = spec
        terminal = status in ("succeeded", "failed", "cancelled")
        created = (
            self.start + (span * (i + 1)) // (len(_CORE_JOBS) + 2)
            if terminal
            else (self.now - (i + 1) * 1800)
        )
        job = self._job(rng, project, method, model, status, created, planned, epochs, per_epoch)
        if terminal:
            job.finished_at = min(created + rng.randint(1800, 6 * HOUR), self.now - 60)
            self._settle(job, status)
        return job

    def _filler_job(self, rng: random.Random, span: int) -> Job:
        project = rng.choice(sorted(PROJECTS))
        model = rng.choice(["gpt-4o-mini-2024-07-18", "gpt-4.1-nano-2025-04-14"])
        status = rng.choice(["succeeded"] * 4 + ["failed", "cancelled"])
        suffix = _token(rng, 6)
        planned = f"ft:{model}:acme:{project}:{suffix}"
        created = self.start + rng.randint(0, max(span - 8 * HOUR, 1))
        job = self._job(
            rng,
            project,
            "supervised",
            model,
            status,
            created,
            planned,
            rng.randint(1, 5),
            rng.randint(5_000, 400_000),
        )
        job.finished_at = min(created + rng.randint(600, 5 * HOUR), self.now - 60)
        self._settle(job, status)
        return job

    def _job(
        self,
        rng: random.Random,
        project: str,
        method: str,
        model: str,
        status: str,
        created: int,
        planned: str,
        epochs: int | str,
        per_epoch: int,
    ) -> Job:
        n = epochs if isinstance(epochs, int) else 3
        return Job(
            id="ftjob-" + _token(rng, 24),
            project=project,
            model=model,
            method=method,
            status=status,
            created_at=created,
            suffix=planned.split(":")[3],
            planned_model=planned,
            planned_tokens=per_epoch * n,
            n_epochs=epochs,
            training_file="file-" + _token(rng, 22),
            training_seconds=2 * HOUR + 36 * rng.randint(1, 99) if method == "reinforcement" else 0,
        )

    @staticmethod
    def _settle(job: Job, status: str) -> None:
        job.status = status
        if status == "succeeded":
            job.fine_tuned_model = job.planned_model
            job.trained_tokens = job.planned_tokens
            if not isinstance(job.n_epochs, int):
                job.n_epochs = 3
        elif status == "failed":
            job.error = {
                "code": "invalid_training_file",
                "message": "The job failed: training file line 12 has no assistant message.",
                "param": "training_file",
            }

    def jobs(self, project: str | None = None) -> list[JobObservation]:
        """The true jobs (newest first), optionally of one project name."""
        with self._lock:
            return [j.observation() for j in self._listed(project)]

    def _listed(self, project: str | None) -> list[Job]:
        chosen = [j for j in self._jobs if project is None or j.project == project]
        return sorted(chosen, key=lambda j: (-j.created_at, j.id))

    def job(self, job_id: str) -> Job:
        with self._lock:
            for job in self._jobs:
                if job.id == job_id:
                    return job
        raise KeyError(job_id)

    def complete_job(self, job_id: str, *, at: int | None = None, status: str = "succeeded") -> Job:
        """Move a job to a terminal state (as OpenAI would, finishing at `at` or `now`)."""
        with self._lock:
            job = self.job(job_id)
            job.finished_at = self.now if at is None else at
            self._settle(job, status)
            return job

    def set_job_status(self, job_id: str, status: str) -> Job:
        """Move a job to a non-terminal state (queued -> running, ...)."""
        with self._lock:
            job = self.job(job_id)
            job.status = status
            return job

    def job_payload(self, job: Job) -> dict[str, Any]:
        return _job_payload(job, self.now)

    # -- costs ---------------------------------------------------------------------------

    def add_cost(
        self,
        day: int,
        project_id: str,
        line_item: str,
        amount: Decimal | str,
        api_key_id: str | None = None,
    ) -> None:
        """Add a billed amount (a credit when negative) on the UTC day containing `day`."""
        with self._lock:
            value = amount if isinstance(amount, Decimal) else Decimal(amount)
            self._adjustments.append((floor_to(day, DAY), project_id, api_key_id, line_item, value))

    def cost_atoms(self, day: int) -> list[tuple[str, str | None, str, Decimal]]:
        """(project_id, api_key_id, line_item, amount) billed on one UTC day, exact."""
        with self._lock, localcontext() as ctx:
            ctx.prec = EXACT_PRECISION
            atoms = _usage_costs(self.events(day, day + DAY))
            atoms += self._training_costs(day)
            atoms += [(p, k, li, v) for d, p, k, li, v in self._adjustments if d == day]
            return atoms

    def _training_costs(self, day: int) -> list[tuple[str, str | None, str, Decimal]]:
        done = [
            j
            for j in self._jobs
            if j.status == "succeeded"
            and j.finished_at is not None
            and day <= j.finished_at < day + DAY
            and j.finished_at < self.now
        ]
        free = dict(PROMO_FREE_TRAINING_TOKENS)
        out: list[tuple[str, str | None, str, Decimal]] = []
        for job in sorted(done, key=lambda j: (j.finished_at or 0, j.id)):
            lm = "ft-" + ALIASES.get(job.model, job.model)
            amount = _training_amount(job, lm, free)
            out.append((PROJECTS[job.project], None, f"{lm}, training", amount))
        return out

    def costs(
        self, start: int, end: int, group_by: Sequence[str] = ("project_id", "line_item")
    ) -> list[CostObservation]:
        """The true daily bill in [start, end), one observation per group (zeros omitted)."""
        out: list[CostObservation] = []
        for b_start, b_end in self.buckets(start, end, DAY):
            for result in self.cost_results(b_start, b_end, group_by):
                out.append(
                    CostObservation(
                        bucket_start=b_start,
                        bucket_end=b_end,
                        project_id=result["project_id"] or "",
                        line_item=result["line_item"] or "",
                        amount=result["amount"]["value"],
                    )
                )
        return out

    def cost_results(
        self, start: int, end: int, group_by: Sequence[str], project_ids: Iterable[str] = ()
    ) -> list[dict[str, Any]]:
        """Costs results of one daily bucket in the API's shape (amounts as Decimal)."""
        wanted = set(project_ids)
        sums: dict[tuple[Any, ...], Decimal] = defaultdict(Decimal)
        atoms = self.cost_atoms(floor_to(start, DAY))
        with localcontext() as ctx:
            ctx.prec = EXACT_PRECISION
            for project_id, key_id, item, amount in atoms:
                if wanted and project_id not in wanted:
                    continue
                dims = {"project_id": project_id, "api_key_id": key_id, "line_item": item}
                sums[tuple(dims[d] if d in group_by else None for d in COST_DIMENSIONS)] += amount
        return [
            _cost_result(key, amount)
            for key, amount in sorted(sums.items(), key=_sort_key)
            if amount
        ]


def _revised(event: Event, rng: random.Random) -> Event:
    roll = rng.random()
    if roll < 0.4:  # late requests arrive
        extra = rng.randint(1, 3)
        more_in = extra * rng.randint(100, 900)
        return replace(
            event,
            requests=event.requests + extra,
            input_tokens=event.input_tokens + more_in,
            output_tokens=event.output_tokens + extra * rng.randint(10, 200),
        )
    if roll < 0.7 and event.requests > 1:  # over-count corrected downwards
        ratio = Decimal(event.requests - 1) / event.requests
        input_tokens = max(int(event.input_tokens * ratio), 1)
        return replace(
            event,
            requests=event.requests - 1,
            input_tokens=input_tokens,
            cached_tokens=min(event.cached_tokens, input_tokens),
            output_tokens=int(event.output_tokens * ratio),
        )
    return event


def _dimensions(stream: Stream) -> dict[str, Any]:
    return {
        "project_id": stream.project_id,
        "user_id": stream.user_id,
        "api_key_id": stream.api_key_id,
        "model": stream.model,
        "batch": stream.batch,
        "service_tier": stream.service_tier,
    }


def _matches(dims: dict[str, Any], filters: dict[str, Any]) -> bool:
    for name, allowed in filters.items():
        if name == "batch":
            if dims["batch"] is not allowed:
                return False
        elif allowed and dims[name] not in allowed:
            return False
    return True


def _sort_key(item: tuple[tuple[Any, ...], Any]) -> tuple[str, ...]:
    return tuple("" if v is None else str(v) for v in item[0])


def _usage_result(key: tuple[Any, ...], acc: list[int]) -> dict[str, Any]:
    requests, input_tokens, cached, output = acc
    result: dict[str, Any] = {
        "object": "organization.usage.completions.result",
        "input_tokens": input_tokens,
        "output_tokens": output,
        "input_cached_tokens": cached,
        "input_uncached_tokens": input_tokens - cached,
        "input_audio_tokens": 0,
        "output_audio_tokens": 0,
        "num_model_requests": requests,
    }
    result.update(zip(USAGE_DIMENSIONS, key, strict=True))
    result["api_source"] = None
    return result


def _observation(start: int, end: int, result: dict[str, Any]) -> UsageObservation:
    key = UsageKey(
        source="openai",
        bucket_start=start,
        bucket_end=end,
        model=result["model"] or "",
        project_id=result["project_id"] or "",
        api_key_id=result["api_key_id"] or "",
        user_id=result["user_id"] or "",
        batch=bool(result["batch"]),
        service_tier=result["service_tier"] or "",
    )
    return UsageObservation(
        key=key,
        requests=result["num_model_requests"],
        input_tokens=result["input_tokens"],
        cached_tokens=result["input_cached_tokens"],
        output_tokens=result["output_tokens"],
    )


def _usage_costs(events: list[Event]) -> list[tuple[str, str | None, str, Decimal]]:
    """Inference costs of some events at list price, per project, key and line item."""
    sums: dict[tuple[str, str | None, str], Decimal] = defaultdict(Decimal)
    million = Decimal(1_000_000)
    for event in events:
        stream = STREAMS[event.stream]
        lm = line_model(stream.model)
        rates = _LIST[lm]
        factor = Decimal("0.5") if stream.batch or stream.service_tier in DISCOUNTED_TIERS else 1
        mark = " (batch)" if stream.batch else f" ({stream.service_tier})" if factor != 1 else ""
        parts = [
            ("input", event.input_tokens - event.cached_tokens, rates.input),
            ("cached input", event.cached_tokens, rates.cached or rates.input),
            ("output", event.output_tokens, rates.output),
        ]
        for label, tokens, price in parts:
            if tokens:
                key = (stream.project_id, stream.api_key_id, f"{lm}, {label}{mark}")
                sums[key] += tokens * Decimal(price) * factor / million
    return [(p, k, li, v) for (p, k, li), v in sums.items()]


def _training_amount(job: Job, lm: str, free: dict[str, int]) -> Decimal:
    rates = _LIST[lm]
    price = Decimal(rates.training or "0")
    if rates.hourly:
        return price * job.training_seconds / HOUR
    tokens = job.trained_tokens or 0
    waived = min(tokens, free.get(lm, 0))
    if lm in free:
        free[lm] -= waived
    return (tokens - waived) * price / Decimal(1_000_000)


def _cost_result(key: tuple[Any, ...], amount: Decimal) -> dict[str, Any]:
    result: dict[str, Any] = {
        "object": "organization.costs.result",
        "amount": {"value": amount, "currency": "usd"},
    }
    result.update(zip(COST_DIMENSIONS, key, strict=True))
    result["api_source"] = None
    return result


def _job_payload(job: Job, now: int) -> dict[str, Any]:
    """A job in the shape of GET /v1/fine_tuning/jobs (openai.types.fine_tuning.FineTuningJob)."""
    hyper = {
        "batch_size": "auto" if job.status == "queued" else 8,
        "learning_rate_multiplier": "auto" if job.status == "queued" else 1.8,
        "n_epochs": job.n_epochs,
    }
    method: dict[str, Any] = {"type": job.method}
    if job.method == "reinforcement":
        grader = {
            "type": "string_check",
            "name": "exact_match",
            "operation": "eq",
            "input": "{{sample.output_text}}",
            "reference": "{{item.answer}}",
        }
        method["reinforcement"] = {"grader": grader, "hyperparameters": hyper}
        top_hyper: dict[str, Any] = {}
    else:
        method[job.method] = {"hyperparameters": hyper}
        top_hyper = hyper
    running = job.status == "running"
    return {
        "object": "fine_tuning.job",
        "id": job.id,
        "model": job.model,
        "created_at": job.created_at,
        "finished_at": job.finished_at,
        "fine_tuned_model": job.fine_tuned_model,
        "organization_id": ORGANIZATION_ID,
        "result_files": ["file-res" + job.id[-18:]] if job.status == "succeeded" else [],
        "status": job.status,
        "validation_file": None,
        "training_file": job.training_file,
        "hyperparameters": top_hyper,
        "trained_tokens": job.trained_tokens,
        "error": job.error,
        "user_provided_suffix": job.suffix,
        "seed": 42,
        "integrations": [],
        "metadata": None,
        "estimated_finish": now + 1200 if running else None,
        "method": method,
    }


def _moderation_result(text: str) -> dict[str, Any]:
    lowered = text.lower()
    hits = {cat for cat, marker in FLAG_MARKERS.items() if marker in lowered}
    return {
        "flagged": bool(hits),
        "categories": {c: c in hits for c in MODERATION_CATEGORIES},
        "category_scores": {c: 0.93 if c in hits else 0.0001 for c in MODERATION_CATEGORIES},
        "category_applied_input_types": {
            c: ["text"] if c in hits else [] for c in MODERATION_CATEGORIES
        },
    }


# --- faults -------------------------------------------------------------------------------


@dataclass
class Fault:
    """One planned misbehaviour of an endpoint; `times` -1 means forever."""

    kind: str  # status reset truncate slow no_next_page repeat_cursor echo_key
    # duplicate_results conflicting_results garbage
    status: int = 500
    retry_after: float | None = None
    delay: float = 0.0
    times: int = 1
    skip: int = 0  # let this many requests through first


class FaultPlan:
    """Faults per endpoint, consumed in order; safe to change while the server runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: dict[str, list[Fault]] = defaultdict(list)

    def add(self, endpoint: str, fault: Fault) -> Fault:
        if endpoint not in ENDPOINTS and endpoint != "*":
            raise ValueError(f"unknown endpoint {endpoint!r}; one of {ENDPOINTS}")
        with self._lock:
            self._rules[endpoint].append(fault)
        return fault

    def rate_limit(
        self, endpoint: str, retry_after: float | None = 0.01, *, times: int = 1, skip: int = 0
    ) -> Fault:
        return self.add(endpoint, Fault("status", 429, retry_after, times=times, skip=skip))

    def error(self, endpoint: str, status: int = 500, *, times: int = 1, skip: int = 0) -> Fault:
        """A 5xx (or any status); several `times` make a storm."""
        return self.add(endpoint, Fault("status", status, times=times, skip=skip))

    def slow(self, endpoint: str, delay: float, *, times: int = 1, skip: int = 0) -> Fault:
        return self.add(endpoint, Fault("slow", delay=delay, times=times, skip=skip))

    def reset(self, endpoint: str, *, times: int = 1, skip: int = 0) -> Fault:
        """Close the connection with a TCP reset before answering."""
        return self.add(endpoint, Fault("reset", times=times, skip=skip))

    def truncate(self, endpoint: str, *, times: int = 1, skip: int = 0) -> Fault:
        """Send half of the body promised by Content-Length, then close."""
        return self.add(endpoint, Fault("truncate", times=times, skip=skip))

    def no_next_page(self, endpoint: str, *, times: int = 1, skip: int = 0) -> Fault:
        """`has_more` true with no way forward (no next_page; no jobs for `after`)."""
        return self.add(endpoint, Fault("no_next_page", times=times, skip=skip))

    def repeat_cursor(self, endpoint: str, *, times: int = -1, skip: int = 0) -> Fault:
        """Hand out the cursor just presented (or this page's own) as the next one."""
        return self.add(endpoint, Fault("repeat_cursor", times=times, skip=skip))

    def echo_key(self, endpoint: str, *, times: int = -1, skip: int = 0) -> Fault:
        """A 500 whose body quotes the presented key (for secret-leak tests)."""
        return self.add(endpoint, Fault("echo_key", 500, times=times, skip=skip))

    def duplicate_results(
        self, endpoint: str, *, conflicting: bool = False, times: int = 1, skip: int = 0
    ) -> Fault:
        """Report the first result of a page twice: identical, or with different numbers."""
        kind = "conflicting_results" if conflicting else "duplicate_results"
        return self.add(endpoint, Fault(kind, times=times, skip=skip))

    def garbage(self, endpoint: str, *, times: int = 1, skip: int = 0) -> Fault:
        """A 200 whose body is not JSON (a proxy's error page)."""
        return self.add(endpoint, Fault("garbage", times=times, skip=skip))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def pending(self, endpoint: str) -> int:
        with self._lock:
            return len(self._rules.get(endpoint, []))

    def take(self, endpoint: str) -> Fault | None:
        """The fault for this request, if any (consumes one use)."""
        with self._lock:
            for name in (endpoint, "*"):
                rules = self._rules.get(name)
                if rules:
                    return _consume(rules)
        return None


def _consume(rules: list[Fault]) -> Fault | None:
    rule = rules[0]
    if rule.skip > 0:
        rule.skip -= 1
        return None
    if rule.times > 0:
        rule.times -= 1
        if rule.times == 0:
            rules.pop(0)
    return rule


# --- HTTP ---------------------------------------------------------------------------------


class BadRequest(Exception):
    """A request OpenAI would refuse with 400."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


def _dumps(payload: Any) -> bytes:
    """JSON with Decimal written as exact numbers (the real API sends numbers, not strings)."""

    def default(obj: Any) -> Any:
        if isinstance(obj, Decimal):
            return f"\x00DEC{format(obj, 'f')}\x00"
        raise TypeError(type(obj).__name__)

    text = json.dumps(payload, default=default)
    return re.sub(r'"\\u0000DEC([-0-9.]+)\\u0000"', r"\1", text).encode()


def _error_body(message: str, kind: str, code: str | None, param: str | None = None) -> bytes:
    return _dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


def encode_cursor(position: int | str) -> str:
    raw = base64.urlsafe_b64encode(str(position).encode()).decode().rstrip("=")
    return "page_" + raw


def decode_cursor(cursor: str) -> int:
    if not cursor.startswith("page_"):
        raise BadRequest("Invalid page cursor.", "page")
    raw = cursor[5:]
    try:
        return int(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode())
    except ValueError:
        raise BadRequest("Invalid page cursor.", "page") from None


@dataclass
class _Page:
    """What a handler answers; faults may rewrite it before it is sent."""

    status: int
    body: dict[str, Any] | bytes
    headers: dict[str, str] = field(default_factory=dict)


class SandboxServer:
    """The sandbox on 127.0.0.1 (port chosen by the OS) in a background thread."""

    def __init__(
        self,
        org: SandboxOrg,
        *,
        admin_key: str = "sk-admin-sandbox-0000",
        project_keys: dict[str, str] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.org = org
        self.admin_key = admin_key
        self.project_keys = project_keys or {name: f"sk-proj-sandbox-{name}" for name in PROJECTS}
        unknown = set(self.project_keys) - set(PROJECTS)
        if unknown:
            raise ValueError(f"unknown sandbox projects {sorted(unknown)}; one of {list(PROJECTS)}")
        self.faults = FaultPlan()
        self.requests: Counter[str] = Counter()
        self.errors: list[str] = []  # sandbox bugs (never expected); tests may assert empty
        self._lock = threading.Lock()
        self._seq = 0
        self._stop = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd = _HTTPServer((host, 0), _Handler, self)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> SandboxServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="sandbox-openai",
                daemon=True,
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, drop open keep-alive connections and join every thread."""
        self._stop.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        with self._lock:
            for conn in list(self._connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- called by the handler threads --------------------------------------------------

    def next_request_id(self) -> str:
        with self._lock:
            self._seq += 1
            return f"req_sandbox{self._seq:08x}"

    def count(self, endpoint: str) -> None:
        with self._lock:
            self.requests[endpoint] += 1

    def track(self, conn: socket.socket, alive: bool) -> None:
        with self._lock:
            if alive:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def wait(self, seconds: float) -> None:
        """Sleep, but wake when the server closes so shutdown never waits for a slow reply."""
        self._stop.wait(seconds)

    def role_of(self, key: str | None) -> tuple[str, str | None]:
        """("admin"|"project"|"none"|"unknown", project name) for a presented key."""
        if not key:
            return "none", None
        if key == self.admin_key:
            return "admin", None
        for name, candidate in self.project_keys.items():
            if key == candidate:
                return "project", name
        return "unknown", None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the handler threads
    block_on_close = True

    def __init__(self, address: tuple[str, int], handler: type, sandbox: SandboxServer):
        self.sandbox = sandbox
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up (timeouts, resets) are normal here: stay quiet."""


_ROUTES = {
    ("GET", "/v1/organization/usage/completions"): ("usage", "admin"),
    ("GET", "/v1/organization/costs"): ("costs", "admin"),
    ("GET", "/v1/fine_tuning/jobs"): ("jobs", "project"),
    ("POST", "/v1/moderations"): ("moderations", "project"),
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes: without this, Nagle + delayed ACK add 40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.sandbox.track(self.connection, True)

    def finish(self) -> None:
        self.server.sandbox.track(self.connection, False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: a request line is harmless, but nothing here ever prints a key."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        sandbox = self.server.sandbox
        url = urlsplit(self.path)
        body = self._read_body()
        request_id = sandbox.next_request_id()
        route = _ROUTES.get((method, url.path.rstrip("/")))
        if route is None:
            self._send(
                _Page(
                    404,
                    _error_body(
                        f"Unknown request URL: {method} {url.path}.",
                        "invalid_request_error",
                        "unknown_url",
                    ),
                ),
                request_id,
            )
            return
        endpoint, role = route
        sandbox.count(endpoint)
        key = self._bearer()
        denied = _check_key(sandbox, key, role)
        if denied is not None:
            self._send(denied, request_id)
            return
        fault = sandbox.faults.take(endpoint)
        if fault is not None and self._pre_fault(fault, key, request_id):
            return
        query = parse_qs(url.query, keep_blank_values=True)
        if fault is not None and fault.kind == "repeat_cursor" and endpoint == "jobs":
            query.pop("after", None)  # the first page again: its last id repeats
        page = self._answer(endpoint, query, body, key)
        if fault is not None:
            page = _post_fault(fault, page, query)
        self._send(page, request_id, truncate=fault is not None and fault.kind == "truncate")

    def _answer(
        self, endpoint: str, query: dict[str, list[str]], body: bytes, key: str | None
    ) -> _Page:
        sandbox = self.server.sandbox
        try:
            _, project = sandbox.role_of(key)
            return _Page(200, _ANSWERS[endpoint](sandbox.org, query, body, project))
        except BadRequest as exc:
            return _Page(400, _error_body(str(exc), "invalid_request_error", None, exc.param))
        except Exception as exc:  # a sandbox bug: answer 500 and remember it
            sandbox.errors.append(f"{endpoint}: {type(exc).__name__}: {exc}")
            return _Page(
                500, _error_body("The sandbox had an internal error.", "server_error", None)
            )

    def _pre_fault(self, fault: Fault, key: str | None, request_id: str) -> bool:
        """Faults that replace the answer; True when the request is finished."""
        sandbox = self.server.sandbox
        if fault.kind == "slow":
            sandbox.wait(fault.delay)
            return False
        if fault.kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return True
        if fault.kind == "status":
            self._send(_status_fault(fault), request_id)
            return True
        if fault.kind == "echo_key":
            message = f"Internal error while serving the request authorised by {key}."
            self._send(_Page(500, _error_body(message, "server_error", None)), request_id)
            return True
        return False

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _bearer(self) -> str | None:
        header = self.headers.get("Authorization") or ""
        scheme, _, token = header.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    def _send(self, page: _Page, request_id: str, *, truncate: bool = False) -> None:
        data = page.body if isinstance(page.body, bytes) else _dumps(page.body)
        try:
            self.send_response(page.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-request-id", request_id)
            for name, value in page.headers.items():
                self.send_header(name, value)
            if truncate:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data[: len(data) // 2] if truncate else data)
        except OSError:
            self.close_connection = True


def _check_key(sandbox: SandboxServer, key: str | None, needed: str) -> _Page | None:
    role, _ = sandbox.role_of(key)
    if role == "none":
        message = (
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        )
        return _Page(401, _error_body(message, "invalid_request_error", None))
    if role == "unknown":
        masked = f"{(key or '')[:3]}****{(key or '')[-4:]}"
        message = f"Incorrect API key provided: {masked}. Find your API keys in the dashboard."
        return _Page(401, _error_body(message, "invalid_request_error", "invalid_api_key"))
    if role != needed:
        message = "You have insufficient permissions for this operation. Missing scopes: " + (
            "api.usage.read." if needed == "admin" else "api.model.request."
        )
        return _Page(403, _error_body(message, "invalid_request_error", None))
    return None


def _status_fault(fault: Fault) -> _Page:
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = f"{fault.retry_after:g}"
    if fault.status == 429:
        body = _error_body(
            "Rate limit reached for requests. Please try again later.",
            "requests",
            "rate_limit_exceeded",
        )
    else:
        body = _error_body(
            "The server had an error while processing your request.", "server_error", None
        )
    return _Page(fault.status, body, headers)


def _post_fault(fault: Fault, page: _Page, query: dict[str, list[str]]) -> _Page:
    """Faults that bend a correct page (pagination lies)."""
    if page.status != 200 or not isinstance(page.body, dict):
        return page
    body = dict(page.body)
    if fault.kind == "no_next_page":
        body["has_more"] = True
        if "next_page" in body:
            body["next_page"] = None
        else:
            body["data"] = []
    elif fault.kind == "repeat_cursor":
        body["has_more"] = True
        if "next_page" in body:
            presented = (query.get("page") or [""])[0]
            first = body["data"][0]["start_time"] if body["data"] else 0
            body["next_page"] = presented or encode_cursor(first)
    elif fault.kind in ("duplicate_results", "conflicting_results"):
        body["data"] = _duplicated(body["data"], fault.kind == "conflicting_results")
    elif fault.kind == "garbage":
        return _Page(200, b"<html><body>502 Bad Gateway</body></html>", page.headers)
    return _Page(page.status, body, page.headers)


def _duplicated(data: list[dict[str, Any]], conflicting: bool) -> list[dict[str, Any]]:
    """`data` with the first bucket's first result repeated (changed when conflicting)."""
    data = [dict(item) for item in data]
    for bucket in data:
        results = bucket.get("results")
        if results:
            twin = json.loads(_dumps(results[0]), parse_float=Decimal)
            if conflicting:
                if "amount" in twin:
                    twin["amount"]["value"] += 1
                else:
                    twin["num_model_requests"] += 1
            bucket["results"] = [*results, twin]
            break
    return data


# --- endpoint answers ---------------------------------------------------------------------


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _many(query: dict[str, list[str]], name: str) -> list[str]:
    return [v for v in query.get(name, []) + query.get(name + "[]", []) if v]


def _int(query: dict[str, list[str]], name: str, default: int | None = None) -> int:
    raw = _one(query, name)
    if raw is None:
        if default is None:
            raise BadRequest(f"Missing required parameter: '{name}'.", name)
        return default
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"Invalid integer for '{name}': {raw!r}.", name) from None


def _limit(query: dict[str, list[str]], limits: tuple[int, int]) -> int:
    limit = _int(query, "limit", limits[0])
    if not 1 <= limit <= limits[1]:
        raise BadRequest(f"Invalid 'limit': must be between 1 and {limits[1]}.", "limit")
    return limit


def _group_by(query: dict[str, list[str]], allowed: Sequence[str]) -> list[str]:
    group_by = _many(query, "group_by")
    for name in group_by:
        if name not in allowed:
            raise BadRequest(f"Invalid value for 'group_by': {name!r}.", "group_by")
    return group_by


def _paged_buckets(
    org: SandboxOrg, query: dict[str, list[str]], width: int, limits: tuple[int, int]
) -> tuple[list[tuple[int, int]], str | None]:
    start = _int(query, "start_time")
    end = _int(query, "end_time", org.now)
    limit = _limit(query, limits)
    page = _one(query, "page")
    position = decode_cursor(page) if page else start
    buckets = org.buckets(position, end, width)
    chosen, rest = buckets[:limit], buckets[limit:]
    return chosen, (encode_cursor(rest[0][0]) if rest else None)


def _page(data: list[dict[str, Any]], next_page: str | None) -> dict[str, Any]:
    return {
        "object": "page",
        "data": data,
        "has_more": next_page is not None,
        "next_page": next_page,
    }


def _answer_usage(
    org: SandboxOrg, query: dict[str, list[str]], body: bytes, project: str | None
) -> dict[str, Any]:
    width_name = _one(query, "bucket_width") or "1d"
    if width_name not in WIDTHS:
        raise BadRequest(f"Invalid 'bucket_width': {width_name!r}.", "bucket_width")
    group_by = _group_by(query, USAGE_DIMENSIONS)
    filters = _usage_filters(query)
    with org._lock:
        buckets, next_page = _paged_buckets(
            org, query, WIDTHS[width_name], USAGE_LIMITS[width_name]
        )
        data = [
            {
                "object": "bucket",
                "start_time": s,
                "end_time": e,
                "results": org.aggregate(s, e, group_by, filters),
            }
            for s, e in buckets
        ]
    return _page(data, next_page)


def _usage_filters(query: dict[str, list[str]]) -> dict[str, Any]:
    filters: dict[str, Any] = {
        "model": _many(query, "models"),
        "project_id": _many(query, "project_ids"),
        "api_key_id": _many(query, "api_key_ids"),
        "user_id": _many(query, "user_ids"),
    }
    batch = _one(query, "batch")
    if batch is not None:
        filters["batch"] = batch.lower() == "true"
    return {k: v for k, v in filters.items() if v or k == "batch"}


def _answer_costs(
    org: SandboxOrg, query: dict[str, list[str]], body: bytes, project: str | None
) -> dict[str, Any]:
    if (_one(query, "bucket_width") or "1d") != "1d":
        raise BadRequest("Invalid 'bucket_width': only '1d' is supported.", "bucket_width")
    group_by = _group_by(query, COST_DIMENSIONS)
    project_ids = _many(query, "project_ids")
    with org._lock:
        buckets, next_page = _paged_buckets(org, query, DAY, COSTS_LIMITS)
        data = [
            {
                "object": "bucket",
                "start_time": s,
                "end_time": e,
                "results": org.cost_results(s, e, group_by, project_ids),
            }
            for s, e in buckets
        ]
    return _page(data, next_page)


def _answer_jobs(
    org: SandboxOrg, query: dict[str, list[str]], body: bytes, project: str | None
) -> dict[str, Any]:
    limit = _limit(query, JOBS_LIMITS)
    after = _one(query, "after")
    with org._lock:
        jobs = org._listed(project)
        ids = [j.id for j in jobs]
        if after is not None and after not in ids:
            raise BadRequest(f"No fine-tuning job found with id {after!r}.", "after")
        first = ids.index(after) + 1 if after is not None else 0
        chosen = jobs[first : first + limit]
        data = [org.job_payload(j) for j in chosen]
    return {"object": "list", "data": data, "has_more": first + limit < len(jobs)}


def _answer_moderations(
    org: SandboxOrg, query: dict[str, list[str]], body: bytes, project: str | None
) -> dict[str, Any]:
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        raise BadRequest("We could not parse the JSON body of your request.") from None
    inputs = request.get("input")
    texts = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise BadRequest("'input' must be a string or a non-empty list of strings.", "input")
    if len(texts) > MODERATION_MAX_INPUTS:
        raise BadRequest(f"At most {MODERATION_MAX_INPUTS} inputs per request.", "input")
    model = request.get("model") or "omni-moderation-latest"
    resolved = "omni-moderation-2024-09-26" if model == "omni-moderation-latest" else model
    digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:24]
    return {
        "id": f"modr-{digest}",
        "model": resolved,
        "results": [_moderation_result(t) for t in texts],
    }


_ANSWERS = {
    "usage": _answer_usage,
    "costs": _answer_costs,
    "jobs": _answer_jobs,
    "moderations": _answer_moderations,
}
