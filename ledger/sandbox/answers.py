"""The sandbox's API answers: OpenAI's shapes for usage, costs, jobs and moderations.

Query parsing and validation (400s as `BadRequest`), cursor pagination, bucket and
result shapes, and JSON with exact decimals. Pure functions of the organisation and
the request; `server.py` carries them over HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from ledger.sandbox.cast import DAY, ORGANIZATION_ID, Job
from ledger.sandbox.organisation import (
    COST_DIMENSIONS,
    USAGE_DIMENSIONS,
    WIDTHS,
    Group,
    SandboxOrg,
    UsageSums,
)

USAGE_LIMITS = {"1m": (60, 1440), "1h": (24, 168), "1d": (7, 31)}  # (default, max) buckets
COSTS_LIMITS = (7, 180)
JOBS_LIMITS = (20, 100)
MODERATION_MAX_INPUTS = 32  # a sandbox limit, so batching is exercised
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

Query = dict[str, list[str]]


class BadRequest(Exception):
    """A request OpenAI would refuse with 400."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


def dumps(payload: Any) -> bytes:
    """JSON with Decimal written as exact numbers (the real API sends numbers, not strings)."""

    def default(obj: Any) -> Any:
        if isinstance(obj, Decimal):
            return f"\x00DEC{format(obj, 'f')}\x00"
        raise TypeError(type(obj).__name__)

    text = json.dumps(payload, default=default)
    return re.sub(r'"\\u0000DEC([-0-9.]+)\\u0000"', r"\1", text).encode()


def error_body(message: str, kind: str, code: str | None, param: str | None = None) -> bytes:
    return dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


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


def _one(query: Query, name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _many(query: Query, name: str) -> list[str]:
    return [v for v in query.get(name, []) + query.get(name + "[]", []) if v]


def _int(query: Query, name: str, default: int | None = None) -> int:
    raw = _one(query, name)
    if raw is None:
        if default is None:
            raise BadRequest(f"Missing required parameter: '{name}'.", name)
        return default
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"Invalid integer for '{name}': {raw!r}.", name) from None


def _limit(query: Query, limits: tuple[int, int]) -> int:
    limit = _int(query, "limit", limits[0])
    if not 1 <= limit <= limits[1]:
        raise BadRequest(f"Invalid 'limit': must be between 1 and {limits[1]}.", "limit")
    return limit


def _group_by(query: Query, allowed: Sequence[str]) -> list[str]:
    group_by = _many(query, "group_by")
    for name in group_by:
        if name not in allowed:
            raise BadRequest(f"Invalid value for 'group_by': {name!r}.", "group_by")
    return group_by


def _paged_buckets(
    org: SandboxOrg, query: Query, width: int, limits: tuple[int, int]
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
    org: SandboxOrg, query: Query, body: bytes, project: str | None
) -> dict[str, Any]:
    width_name = _one(query, "bucket_width") or "1d"
    if width_name not in WIDTHS:
        raise BadRequest(f"Invalid 'bucket_width': {width_name!r}.", "bucket_width")
    group_by = _group_by(query, USAGE_DIMENSIONS)
    filters = _usage_filters(query)
    with org.lock:
        buckets, next_page = _paged_buckets(
            org, query, WIDTHS[width_name], USAGE_LIMITS[width_name]
        )
        data = [
            {
                "object": "bucket",
                "start_time": s,
                "end_time": e,
                "results": _usage_results(org, s, e, group_by, filters),
            }
            for s, e in buckets
        ]
    return _page(data, next_page)


def _usage_filters(query: Query) -> dict[str, Any]:
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
    org: SandboxOrg, query: Query, body: bytes, project: str | None
) -> dict[str, Any]:
    if (_one(query, "bucket_width") or "1d") != "1d":
        raise BadRequest("Invalid 'bucket_width': only '1d' is supported.", "bucket_width")
    group_by = _group_by(query, COST_DIMENSIONS)
    project_ids = _many(query, "project_ids")
    with org.lock:
        buckets, next_page = _paged_buckets(org, query, DAY, COSTS_LIMITS)
        data = [
            {
                "object": "bucket",
                "start_time": s,
                "end_time": e,
                "results": _cost_results(org, s, e, group_by, project_ids),
            }
            for s, e in buckets
        ]
    return _page(data, next_page)


def _answer_jobs(org: SandboxOrg, query: Query, body: bytes, project: str | None) -> dict[str, Any]:
    limit = _limit(query, JOBS_LIMITS)
    after = _one(query, "after")
    with org.lock:
        jobs = org.listed(project)
        ids = [j.id for j in jobs]
        if after is not None and after not in ids:
            raise BadRequest(f"No fine-tuning job found with id {after!r}.", "after")
        first = ids.index(after) + 1 if after is not None else 0
        chosen = jobs[first : first + limit]
        data = [_job_payload(j, org.now) for j in chosen]
    return {"object": "list", "data": data, "has_more": first + limit < len(jobs)}


def _answer_moderations(
    org: SandboxOrg, query: Query, body: bytes, project: str | None
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


Answer = Callable[[SandboxOrg, Query, bytes, str | None], dict[str, Any]]
ANSWERS: dict[str, Answer] = {
    "usage": _answer_usage,
    "costs": _answer_costs,
    "jobs": _answer_jobs,
    "moderations": _answer_moderations,
}


def _usage_results(
    org: SandboxOrg, start: int, end: int, group_by: Sequence[str], filters: dict[str, Any]
) -> list[dict[str, Any]]:
    """One usage bucket's results (ungrouped dimensions null)."""
    return [
        _usage_result(group, sums) for group, sums in org.usage_sums(start, end, group_by, filters)
    ]


def _usage_result(key: Group, acc: UsageSums) -> dict[str, Any]:
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


def _cost_results(
    org: SandboxOrg, start: int, end: int, group_by: Sequence[str], project_ids: Sequence[str]
) -> list[dict[str, Any]]:
    """One cost bucket's results (amounts as Decimal, written as exact JSON numbers)."""
    return [
        _cost_result(group, amount)
        for group, amount in org.cost_sums(start, end, group_by, project_ids)
    ]


def _cost_result(key: Group, amount: Decimal) -> dict[str, Any]:
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
