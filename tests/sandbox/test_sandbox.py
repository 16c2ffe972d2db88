"""The sandbox speaks OpenAI's shapes over real HTTP and knows the truth it serves.

These tests talk to it with the stdlib HTTP client (not our source) and validate
bodies with the SDK's own pydantic types, so the sandbox is checked against OpenAI's
published contract rather than against the code that reads it.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest
from openai.types.admin.organization.usage_completions_response import UsageCompletionsResponse
from openai.types.admin.organization.usage_costs_response import UsageCostsResponse
from openai.types.fine_tuning import FineTuningJob
from openai.types.moderation_create_response import ModerationCreateResponse

from ledger.domain import TERMINAL_JOB_STATES
from ledger.sandbox import (
    DAY,
    FT_LEGAL,
    FT_SUPPORT,
    FT_SUPPORT_CKPT,
    HOUR,
    UNKNOWN_MODEL,
    SandboxOrg,
    SandboxServer,
)
from ledger.sandbox.faults import FaultPlan

NOW = 1_750_000_000  # 2025-06-15 15:06:40 UTC, mid-hour on purpose
ADMIN = "sk-admin-test-canary-0001"
PROJECT_KEYS = {
    "support": "sk-proj-support-canary",
    "legal": "sk-proj-legal-canary",
    "research": "sk-proj-research-canary",
}


@pytest.fixture
def org() -> SandboxOrg:
    return SandboxOrg(seed=7, now=NOW, days=3)


@pytest.fixture
def server(org: SandboxOrg) -> Iterator[SandboxServer]:
    with SandboxServer(org, admin_key=ADMIN, project_keys=PROJECT_KEYS, faults=FaultPlan()) as srv:
        yield srv
    assert srv.errors == []


class Reply:
    def __init__(self, status: int, headers: dict[str, str], raw: bytes):
        self.status, self.headers, self.raw = status, headers, raw

    def json(self) -> Any:
        return json.loads(self.raw, parse_float=Decimal)


def call(
    srv: SandboxServer,
    path: str,
    query: dict[str, Any] | None = None,
    *,
    key: str | None = ADMIN,
    body: Any = None,
) -> Reply:
    """One request on a fresh connection, closed before returning."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    try:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        data = json.dumps(body).encode() if body is not None else None
        if data is not None:
            headers["Content-Type"] = "application/json"
        url = "/v1" + path + ("?" + urlencode(query, doseq=True) if query else "")
        conn.request("POST" if data is not None else "GET", url, body=data, headers=headers)
        response = conn.getresponse()
        return Reply(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
    finally:
        conn.close()


def usage_query(start: int, end: int, width: str, **extra: Any) -> dict[str, Any]:
    group_by = ["model", "project_id", "api_key_id", "batch", "service_tier"]
    return {
        "start_time": start,
        "end_time": end,
        "bucket_width": width,
        "group_by[]": group_by,
        **extra,
    }


def all_usage_pages(srv: SandboxServer, query: dict[str, Any]) -> list[dict[str, Any]]:
    pages, page = [], None
    while True:
        reply = call(
            srv, "/organization/usage/completions", {**query, **({"page": page} if page else {})}
        )
        assert reply.status == 200, reply.raw
        body = reply.json()
        pages.append(body)
        if not body["has_more"]:
            return pages
        page = body["next_page"]


# --- usage ----------------------------------------------------------------------------


def test_usage_page_matches_the_sdk_type_with_ungrouped_dimensions_null(
    server: SandboxServer, org: SandboxOrg
) -> None:
    reply = call(
        server, "/organization/usage/completions", usage_query(org.start, org.now, "1h", limit=5)
    )
    assert reply.status == 200
    assert reply.headers["x-request-id"].startswith("req_")
    page = UsageCompletionsResponse.model_validate(json.loads(reply.raw))
    assert page.object == "page" and page.has_more and page.next_page
    assert len(page.data) == 5
    results = [r for bucket in page.data for r in bucket.results]
    assert results, "the first five hours carry traffic"
    for r in results:
        assert r.user_id is None  # not grouped by user
        assert r.model and r.project_id and r.api_key_id and r.service_tier
        assert r.input_uncached_tokens == r.input_tokens - (r.input_cached_tokens or 0)


@pytest.mark.parametrize(
    ("width", "seconds", "limit"), [("1m", 60, 700), ("1h", HOUR, 7), ("1d", DAY, 1)]
)
def test_usage_pages_cover_the_window_and_sum_to_the_truth(
    server: SandboxServer, org: SandboxOrg, width: str, seconds: int, limit: int
) -> None:
    start, end = org.start + DAY, org.start + 2 * DAY
    pages = all_usage_pages(server, usage_query(start, end, width, limit=limit))
    buckets = [b for p in pages for b in p["data"]]
    assert len(pages) == -(-(DAY // seconds) // limit)
    assert [b["start_time"] for b in buckets] == list(range(start, end, seconds))
    assert all(b["end_time"] - b["start_time"] == seconds for b in buckets)
    served = sum(r["input_tokens"] for b in buckets for r in b["results"])
    assert served == sum(row.input_tokens for row in org.usage_rows(start, end, width))
    assert server.requests["usage"] == len(pages)


def test_usage_limit_defaults_and_maximum_follow_openai(
    server: SandboxServer, org: SandboxOrg
) -> None:
    default = call(
        server, "/organization/usage/completions", usage_query(org.start, org.now, "1h")
    ).json()
    assert len(default["data"]) == 24
    too_many = call(
        server, "/organization/usage/completions", usage_query(org.start, org.now, "1d", limit=32)
    )
    assert too_many.status == 400
    assert too_many.json()["error"]["param"] == "limit"


def test_unaligned_start_gives_a_partial_first_bucket(
    server: SandboxServer, org: SandboxOrg
) -> None:
    start = org.start + 1800
    body = call(
        server, "/organization/usage/completions", usage_query(start, start + 2 * HOUR, "1h")
    ).json()
    assert [(b["start_time"], b["end_time"]) for b in body["data"]] == [
        (start, org.start + HOUR),
        (org.start + HOUR, org.start + 2 * HOUR),
        (org.start + 2 * HOUR, start + 2 * HOUR),
    ]


def test_no_buckets_from_now_on(server: SandboxServer, org: SandboxOrg) -> None:
    body = call(
        server, "/organization/usage/completions", usage_query(org.now - HOUR, org.now + DAY, "1h")
    ).json()
    assert body["data"][-1]["start_time"] < org.now
    assert not body["has_more"]


def test_truth_aggregates_consistently_across_widths(org: SandboxOrg) -> None:
    def total(width: str) -> tuple[int, int, int, int]:
        rows = org.usage_rows(org.start, org.now, width)
        return (
            sum(r.requests for r in rows),
            sum(r.input_tokens for r in rows),
            sum(r.cached_tokens for r in rows),
            sum(r.output_tokens for r in rows),
        )

    assert total("1m") == total("1h") == total("1d")
    assert total("1h")[2] > 0  # cached tokens exist


def test_the_org_has_the_interesting_cases(org: SandboxOrg) -> None:
    rows = org.usage_rows(org.start, org.now, "1d")
    models = {r.key.model for r in rows}
    assert {
        FT_SUPPORT,
        FT_SUPPORT_CKPT,
        FT_LEGAL,
        UNKNOWN_MODEL,
        "gpt-4o-mini-2024-07-18",
    } <= models
    assert any(r.key.batch for r in rows)
    assert {"default", "flex"} <= {r.key.service_tier for r in rows}
    assert len({r.key.project_id for r in rows}) == 3
    assert all(r.key.source == "openai" and r.key.user_id == "" for r in rows)


def test_user_grouping_splits_what_the_default_grouping_merges(org: SandboxOrg) -> None:
    merged = org.usage_rows(org.start, org.now, "1d")
    split = org.usage_rows(org.start, org.now, "1d", group_by=("model", "user_id"))
    support = [r for r in split if r.key.model == FT_SUPPORT]
    assert {r.key.user_id for r in support} == {"user-alice", "user-bob"}
    assert sum(r.input_tokens for r in merged) == sum(r.input_tokens for r in split)


def test_filters_narrow_the_usage(server: SandboxServer, org: SandboxOrg) -> None:
    query = usage_query(
        org.start, org.start + DAY, "1d", **{"project_ids[]": ["proj_legal"], "batch": "true"}
    )
    body = call(server, "/organization/usage/completions", query).json()
    results = body["data"][0]["results"]
    assert results and all(r["project_id"] == "proj_legal" and r["batch"] is True for r in results)


def test_the_org_is_deterministic_from_seed_and_now() -> None:
    a, b = SandboxOrg(seed=3, now=NOW, days=2), SandboxOrg(seed=3, now=NOW, days=2)
    other = SandboxOrg(seed=4, now=NOW, days=2)
    assert a.usage_rows(a.start, NOW, "1h") == b.usage_rows(b.start, NOW, "1h")
    assert a.usage_rows(a.start, NOW, "1h") != other.usage_rows(other.start, NOW, "1h")
    assert a.jobs() == b.jobs()


def test_revise_moves_recent_buckets_up_and_down_only_inside_the_window(org: SandboxOrg) -> None:
    before = {r.key: r for r in org.usage_rows(org.start, org.now, "1h")}
    since = org.now - 6 * HOUR
    assert org.revise(since) > 0
    after = {r.key: r for r in org.usage_rows(org.start, org.now, "1h")}
    changed = [k for k in before if before[k] != after.get(k)]
    assert changed and all(k.bucket_end > since for k in changed)
    assert any(after[k].input_tokens > before[k].input_tokens for k in changed)
    assert any(after[k].input_tokens < before[k].input_tokens for k in changed)
    assert all(r.cached_tokens <= r.input_tokens for r in after.values())


def test_revised_data_is_what_the_server_serves_next(
    server: SandboxServer, org: SandboxOrg
) -> None:
    query = usage_query(org.now - 3 * HOUR, org.now, "1h")
    first = all_usage_pages(server, query)
    org.revise(org.now - 3 * HOUR, salt=2)
    second = all_usage_pages(server, query)
    assert first != second
    served = sum(r["input_tokens"] for p in second for b in p["data"] for r in b["results"])
    assert served == sum(r.input_tokens for r in org.usage_rows(org.now - 3 * HOUR, org.now, "1h"))


def test_advance_adds_new_minutes_without_touching_closed_buckets(org: SandboxOrg) -> None:
    closed_end = org.now - org.now % HOUR
    before = org.usage_rows(org.start, closed_end, "1h")
    org.advance(org.now + 2 * HOUR)
    assert org.usage_rows(org.start, closed_end, "1h") == before
    assert org.usage_rows(closed_end, org.now, "1h")
    with pytest.raises(ValueError, match="forward"):
        org.advance(org.now - 1)


# --- costs ----------------------------------------------------------------------------


def test_costs_page_matches_the_sdk_type_and_the_truth(
    server: SandboxServer, org: SandboxOrg
) -> None:
    query = {
        "start_time": org.start,
        "end_time": org.now,
        "group_by[]": ["project_id", "line_item"],
        "limit": 180,
    }
    reply = call(server, "/organization/costs", query)
    UsageCostsResponse.model_validate(json.loads(reply.raw))
    body = reply.json()
    served = [
        (b["start_time"], r["project_id"], r["line_item"], r["amount"]["value"])
        for b in body["data"]
        for r in b["results"]
    ]
    truth = [
        (c.bucket_start, c.project_id, c.line_item, c.amount) for c in org.costs(org.start, org.now)
    ]
    assert served == truth
    assert all(isinstance(v, Decimal) for *_, v in served)


def test_costs_are_written_as_exact_numbers(server: SandboxServer, org: SandboxOrg) -> None:
    awkward = "0.1000000000000000055511151231257827"
    org.add_cost(org.start, "proj_legal", "credit, goodwill", awkward)
    reply = call(
        server,
        "/organization/costs",
        {"start_time": org.start, "end_time": org.start + DAY, "group_by[]": ["line_item"]},
    )
    assert f'"value": {awkward}' in reply.raw.decode()


def test_training_is_billed_with_the_promotion_and_rft_by_the_hour(org: SandboxOrg) -> None:
    costs = org.costs(org.start, org.now)
    training = {c.line_item: c.amount for c in costs if c.line_item.endswith(", training")}
    support = next(j for j in org.jobs() if j.fine_tuned_model == FT_SUPPORT)
    assert support.trained_tokens is not None
    list_price = Decimal(support.trained_tokens) * Decimal("3.00") / 1_000_000
    billed_4o_mini = training["ft-gpt-4o-mini-2024-07-18, training"]
    assert billed_4o_mini < list_price  # 2M free training tokens a day
    rft = training["ft-o4-mini-2025-04-16, training"]
    assert rft == rft.to_integral_value() and rft >= 200  # $100/h for at least two hours


def test_costs_limit_and_width_are_validated(server: SandboxServer, org: SandboxOrg) -> None:
    assert (
        call(server, "/organization/costs", {"start_time": org.start, "limit": 181}).status == 400
    )
    assert (
        call(server, "/organization/costs", {"start_time": org.start, "bucket_width": "1h"}).status
        == 400
    )
    assert call(server, "/organization/costs", {}).status == 400  # start_time is required


# --- jobs -----------------------------------------------------------------------------


def test_jobs_parse_as_the_sdk_type_in_every_state(server: SandboxServer, org: SandboxOrg) -> None:
    seen: list[FineTuningJob] = []
    for name, key in PROJECT_KEYS.items():
        body = call(server, "/fine_tuning/jobs", {"limit": 100}, key=key).json()
        jobs = [
            FineTuningJob.model_validate(j)
            for j in json.loads(json.dumps(body["data"], default=str))
        ]
        assert {j.id for j in jobs} == {j.id for j in org.jobs(name)}
        seen += jobs
    assert {j.status for j in seen} == {
        "validating_files",
        "queued",
        "running",
        "succeeded",
        "failed",
        "cancelled",
    }
    assert {j.method.type for j in seen if j.method} == {"supervised", "dpo", "reinforcement"}
    for job in seen:
        finished = job.status in TERMINAL_JOB_STATES
        assert (job.finished_at is not None) == finished
        assert (job.trained_tokens is not None) == (job.status == "succeeded")
    assert any(j.model == "gpt-4o-mini" and j.fine_tuned_model == FT_LEGAL for j in seen)


def test_jobs_paginate_newest_first_with_after(server: SandboxServer, org: SandboxOrg) -> None:
    key = PROJECT_KEYS["support"]
    ids, after = [], None
    while True:
        body = call(
            server,
            "/fine_tuning/jobs",
            {"limit": 3, **({"after": after} if after else {})},
            key=key,
        ).json()
        ids += [j["id"] for j in body["data"]]
        if not body["has_more"]:
            break
        after = body["data"][-1]["id"]
    assert ids == [j.id for j in org.jobs("support")]
    created = [j.created_at for j in org.jobs("support")]
    assert created == sorted(created, reverse=True)
    assert server.requests["jobs"] == -(-len(ids) // 3)


def test_completing_a_job_is_visible_in_the_next_listing(
    server: SandboxServer, org: SandboxOrg
) -> None:
    running = next(j for j in org.jobs("support") if j.status == "running")
    org.complete_job(running.id)
    body = call(server, "/fine_tuning/jobs", {"limit": 100}, key=PROJECT_KEYS["support"]).json()
    job = next(j for j in body["data"] if j["id"] == running.id)
    assert job["status"] == "succeeded" and job["trained_tokens"] and job["fine_tuned_model"]
    assert job["finished_at"] == org.now


# --- moderation -----------------------------------------------------------------------


def test_moderation_flags_marker_words(server: SandboxServer) -> None:
    texts = ["hello there", "I will KILL the process"]
    body = {"model": "omni-moderation-latest", "input": texts}
    reply = call(server, "/moderations", key=PROJECT_KEYS["legal"], body=body)
    parsed = ModerationCreateResponse.model_validate(json.loads(reply.raw))
    assert [r.flagged for r in parsed.results] == [False, True]
    assert parsed.results[1].categories.violence
    too_many = call(server, "/moderations", key=PROJECT_KEYS["legal"], body={"input": ["x"] * 33})
    assert too_many.status == 400


# --- auth -----------------------------------------------------------------------------


def test_keys_are_checked_by_kind(server: SandboxServer, org: SandboxOrg) -> None:
    usage = "/organization/usage/completions"
    assert call(server, usage, {"start_time": org.start}, key=None).status == 401
    wrong = call(server, usage, {"start_time": org.start}, key="sk-wrong-canary-key-9999")
    assert wrong.status == 401 and b"sk-wrong-canary-key-9999" not in wrong.raw
    assert wrong.json()["error"]["code"] == "invalid_api_key"
    assert call(server, usage, {"start_time": org.start}, key=PROJECT_KEYS["legal"]).status == 403
    assert call(server, "/fine_tuning/jobs", key=ADMIN).status == 403
    assert call(server, "/nowhere", key=ADMIN).status == 404


# --- faults and counting --------------------------------------------------------------


def test_rate_limit_fault_sends_retry_after_then_recovers(
    server: SandboxServer, org: SandboxOrg
) -> None:
    server.faults.rate_limit("usage", retry_after=0.25, times=2)
    query = usage_query(org.start, org.now, "1d")
    first = call(server, "/organization/usage/completions", query)
    assert first.status == 429 and first.headers["retry-after"] == "0.25"
    assert first.json()["error"]["code"] == "rate_limit_exceeded"
    assert call(server, "/organization/usage/completions", query).status == 429
    assert call(server, "/organization/usage/completions", query).status == 200
    assert server.requests["usage"] == 3


def test_error_storm_skips_then_fails_then_stops(server: SandboxServer, org: SandboxOrg) -> None:
    server.faults.error("costs", 503, times=2, skip=1)
    statuses = [
        call(server, "/organization/costs", {"start_time": org.start}).status for _ in range(4)
    ]
    assert statuses == [200, 503, 503, 200]
    assert server.faults.pending("costs") == 0


def test_slow_fault_delays_the_answer(server: SandboxServer, org: SandboxOrg) -> None:
    server.faults.slow("jobs", 0.3)
    began = time.monotonic()
    assert call(server, "/fine_tuning/jobs", key=PROJECT_KEYS["legal"]).status == 200
    assert time.monotonic() - began >= 0.3


def test_reset_and_truncate_break_the_connection(server: SandboxServer, org: SandboxOrg) -> None:
    server.faults.reset("jobs")
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected)):
        call(server, "/fine_tuning/jobs", key=PROJECT_KEYS["legal"])
    server.faults.truncate("jobs")
    with pytest.raises(http.client.IncompleteRead):
        call(server, "/fine_tuning/jobs", key=PROJECT_KEYS["legal"])
    assert call(server, "/fine_tuning/jobs", key=PROJECT_KEYS["legal"]).status == 200
    assert server.requests["jobs"] == 3


def test_pagination_lies(server: SandboxServer, org: SandboxOrg) -> None:
    query = usage_query(org.start, org.now, "1h", limit=2)
    server.faults.no_next_page("usage")
    body = call(server, "/organization/usage/completions", query).json()
    assert body["has_more"] is True and body["next_page"] is None
    server.faults.repeat_cursor("usage")
    first = call(server, "/organization/usage/completions", query).json()
    again = call(
        server, "/organization/usage/completions", {**query, "page": first["next_page"]}
    ).json()
    assert again["next_page"] == first["next_page"]


def test_echo_key_fault_quotes_the_presented_key(server: SandboxServer, org: SandboxOrg) -> None:
    server.faults.echo_key("usage", times=1)
    reply = call(server, "/organization/usage/completions", {"start_time": org.start})
    assert reply.status == 500 and ADMIN.encode() in reply.raw


def test_duplicate_results_fault(server: SandboxServer, org: SandboxOrg) -> None:
    server.faults.duplicate_results("usage", conflicting=True)
    body = call(
        server, "/organization/usage/completions", usage_query(org.start, org.now, "1d")
    ).json()
    results = body["data"][0]["results"]
    assert results[0]["model"] == results[-1]["model"]
    assert results[-1]["num_model_requests"] == results[0]["num_model_requests"] + 1


def test_unknown_fault_endpoint_is_refused(server: SandboxServer) -> None:
    with pytest.raises(ValueError, match="unknown endpoint"):
        server.faults.error("billing")


def test_close_does_not_wait_for_idle_keep_alive_or_slow_replies(org: SandboxOrg) -> None:
    srv = SandboxServer(org, admin_key=ADMIN).start()
    idle = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    idle.request(
        "GET",
        "/v1/fine_tuning/jobs",
        headers={"Authorization": f"Bearer {srv.project_keys['legal']}"},
    )
    idle.getresponse().read()  # the connection stays open (HTTP/1.1 keep-alive)
    began = time.monotonic()
    srv.close()
    idle.close()
    assert time.monotonic() - began < 2
