"""Frozen value types that flow from sources through sync into the ledger.

Times are integer unix seconds, UTC. Token counts are ints. Amounts are Decimal.
Dimensions OpenAI leaves ungrouped arrive as None and are stored as "" so that
they never defeat a unique key.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

TERMINAL_JOB_STATES = frozenset({"succeeded", "failed", "cancelled"})


class UsageKey(NamedTuple):
    """What identifies one usage bucket; equal keys are the same bucket re-read.

    Usage types are NamedTuples: immutable like the rest, and cheap enough to build a
    million of them during an import.
    """

    source: str
    bucket_start: int
    bucket_end: int
    model: str
    project_id: str = ""
    api_key_id: str = ""
    user_id: str = ""
    batch: bool = False
    service_tier: str = ""


class UsageObservation(NamedTuple):
    """One reading of a usage bucket, as a source reported it."""

    key: UsageKey
    requests: int
    input_tokens: int  # includes cached tokens, as OpenAI counts them
    cached_tokens: int
    output_tokens: int

    def same_counts(self, other: UsageObservation) -> bool:
        return self[1:] == other[1:]


@dataclass(frozen=True, slots=True)
class CostObservation:
    """One reading of OpenAI's billed cost (Costs API) for a day, project and line item."""

    bucket_start: int
    bucket_end: int
    project_id: str
    line_item: str
    amount: Decimal
    currency: str = "usd"


@dataclass(frozen=True, slots=True)
class JobObservation:
    """One reading of a fine-tuning job."""

    id: str
    model: str  # the base model the job trained from
    fine_tuned_model: str | None
    status: str
    method: str  # supervised | dpo | reinforcement
    n_epochs: int | None
    trained_tokens: int | None
    created_at: int
    finished_at: int | None
    training_file: str | None = None
    project: str = ""

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_JOB_STATES
