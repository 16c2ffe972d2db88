"""The simulated organisation: its traffic, jobs and bill, and the truth tests compare with.

`SandboxOrg` generates per-minute traffic deterministically from a seed and a `now`, and
exposes accessors the tests compare the ledger with (`usage_rows`, `jobs`, `costs`).
The HTTP answers (`answers.py`) are built from the same sums.
"""

from __future__ import annotations

import bisect
import random
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from decimal import Decimal, localcontext
from typing import Any

from ledger.domain import CostObservation, JobObservation, UsageKey, UsageObservation
from ledger.period import floor_to
from ledger.sandbox.billing import (
    EXACT_PRECISION,
    CostAtom,
    inference_costs,
    training_costs,
)
from ledger.sandbox.cast import (
    CORE_JOBS,
    DAY,
    HOUR,
    MINUTE,
    PROJECTS,
    STREAMS,
    Event,
    Job,
    Stream,
)

WIDTHS = {"1m": MINUTE, "1h": HOUR, "1d": DAY}
USAGE_DIMENSIONS = ("project_id", "user_id", "api_key_id", "model", "batch", "service_tier")
COST_DIMENSIONS = ("project_id", "line_item", "api_key_id")
SOURCE_GROUP_BY = ("model", "project_id", "api_key_id", "batch", "service_tier")

UsageSums = tuple[int, int, int, int]  # requests, input tokens (cached included), cached, output
Group = tuple[Any, ...]  # one value per dimension, None where not grouped by


class SandboxOrg:
    """The simulated organisation: its traffic, jobs and bill; the truth tests compare with.

    Deterministic from `seed` and `now` (unix seconds): traffic starts `days` days before
    the UTC day of `now` and runs until `now`. Thread-safe: the server reads it (holding
    `lock` across a page) while a test revises it.
    """

    def __init__(
        self, seed: int = 7, now: int = 1_750_000_000, *, days: int = 35, extra_jobs: int = 30
    ) -> None:
        self.seed = seed
        self.now = now
        self.start = floor_to(now, DAY) - days * DAY
        self.lock = threading.RLock()
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
        with self.lock:
            if now < self.now:
                raise ValueError("the sandbox clock only moves forward")
            self._generate_until(now)
            self.now = now

    def events(self, start: int, end: int) -> list[Event]:
        """The visible minute events in [start, end)."""
        with self.lock:
            end = min(end, self.now)
            lo, hi = bisect.bisect_left(self._ats, start), bisect.bisect_left(self._ats, end)
            return self._events[lo:hi]

    def revise(self, since: int, until: int | None = None, *, salt: int = 1) -> int:
        """Late data: change visible events in [since, until), some up, some down.

        Deterministic from (seed, salt). Returns the number of events changed.
        """
        with self.lock:
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
            for group, sums in self.usage_sums(b_start, b_end, group_by):
                rows.append(_observation(b_start, b_end, group, sums))
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

    def usage_sums(
        self, start: int, end: int, group_by: Sequence[str], filters: dict[str, Any] | None = None
    ) -> list[tuple[Group, UsageSums]]:
        """Usage of [start, end) summed per group of USAGE_DIMENSIONS, in a stable order."""
        sums: dict[Group, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
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
        return [
            (key, (acc[0], acc[1], acc[2], acc[3]))
            for key, acc in sorted(sums.items(), key=_sort_key)
        ]

    # -- jobs ----------------------------------------------------------------------------

    def _make_jobs(self, extra: int) -> list[Job]:
        rng = random.Random(f"{self.seed}:jobs")
        span = max(self.now - self.start, DAY)
        jobs = [self._core_job(rng, i, spec, span) for i, spec in enumerate(CORE_JOBS)]
        jobs += [self._filler_job(rng, span) for _ in range(extra)]
        return jobs

    def _core_job(self, rng: random.Random, i: int, spec: tuple[Any, ...], span: int) -> Job:
        project, method, model, status, planned, epochs, per_epoch = spec
        terminal = status in ("succeeded", "failed", "cancelled")
        created = (
            self.start + (span * (i + 1)) // (len(CORE_JOBS) + 2)
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
        with self.lock:
            return [j.observation() for j in self.listed(project)]

    def listed(self, project: str | None) -> list[Job]:
        """The jobs as GET /fine_tuning/jobs lists them (newest first), of one project name."""
        with self.lock:
            chosen = [j for j in self._jobs if project is None or j.project == project]
            return sorted(chosen, key=lambda j: (-j.created_at, j.id))

    def job(self, job_id: str) -> Job:
        with self.lock:
            for job in self._jobs:
                if job.id == job_id:
                    return job
        raise KeyError(job_id)

    def complete_job(self, job_id: str, *, at: int | None = None, status: str = "succeeded") -> Job:
        """Move a job to a terminal state (as OpenAI would, finishing at `at` or `now`)."""
        with self.lock:
            job = self.job(job_id)
            job.finished_at = self.now if at is None else at
            self._settle(job, status)
            return job

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
        with self.lock:
            value = amount if isinstance(amount, Decimal) else Decimal(amount)
            self._adjustments.append((floor_to(day, DAY), project_id, api_key_id, line_item, value))

    def cost_atoms(self, day: int) -> list[CostAtom]:
        """(project_id, api_key_id, line_item, amount) billed on one UTC day, exact."""
        with self.lock, localcontext() as ctx:
            ctx.prec = EXACT_PRECISION
            succeeded = [
                j
                for j in self._jobs
                if j.status == "succeeded"
                and j.finished_at is not None
                and day <= j.finished_at < day + DAY
                and j.finished_at < self.now
            ]
            atoms = inference_costs(self.events(day, day + DAY))
            atoms += training_costs(succeeded)
            atoms += [(p, k, li, v) for d, p, k, li, v in self._adjustments if d == day]
            return atoms

    def costs(
        self, start: int, end: int, group_by: Sequence[str] = ("project_id", "line_item")
    ) -> list[CostObservation]:
        """The true daily bill in [start, end), one observation per group (zeros omitted)."""
        out: list[CostObservation] = []
        for b_start, b_end in self.buckets(start, end, DAY):
            for group, amount in self.cost_sums(b_start, b_end, group_by):
                dims = dict(zip(COST_DIMENSIONS, group, strict=True))
                out.append(
                    CostObservation(
                        bucket_start=b_start,
                        bucket_end=b_end,
                        project_id=dims["project_id"] or "",
                        line_item=dims["line_item"] or "",
                        amount=amount,
                    )
                )
        return out

    def cost_sums(
        self, start: int, end: int, group_by: Sequence[str], project_ids: Iterable[str] = ()
    ) -> list[tuple[Group, Decimal]]:
        """The bill of the UTC day holding `start`, summed per group of COST_DIMENSIONS.

        Exact, in a stable order, groups that sum to zero left out.
        """
        wanted = set(project_ids)
        sums: dict[Group, Decimal] = defaultdict(Decimal)
        atoms = self.cost_atoms(floor_to(start, DAY))
        with localcontext() as ctx:
            ctx.prec = EXACT_PRECISION
            for project_id, key_id, item, amount in atoms:
                if wanted and project_id not in wanted:
                    continue
                dims = {"project_id": project_id, "api_key_id": key_id, "line_item": item}
                sums[tuple(dims[d] if d in group_by else None for d in COST_DIMENSIONS)] += amount
        return [(key, amount) for key, amount in sorted(sums.items(), key=_sort_key) if amount]


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


def _token(rng: random.Random, n: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(rng.choice(alphabet) for _ in range(n))


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


def _observation(start: int, end: int, group: Group, sums: UsageSums) -> UsageObservation:
    dims = dict(zip(USAGE_DIMENSIONS, group, strict=True))
    key = UsageKey(
        source="openai",
        bucket_start=start,
        bucket_end=end,
        model=dims["model"] or "",
        project_id=dims["project_id"] or "",
        api_key_id=dims["api_key_id"] or "",
        user_id=dims["user_id"] or "",
        batch=bool(dims["batch"]),
        service_tier=dims["service_tier"] or "",
    )
    requests, input_tokens, cached, output = sums
    return UsageObservation(
        key=key,
        requests=requests,
        input_tokens=input_tokens,
        cached_tokens=cached,
        output_tokens=output,
    )
