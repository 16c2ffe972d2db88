"""The OpenAI source against the sandbox, through the real SDK over loopback HTTP."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest

from ledger.errors import AuthError, PaginationError, RateLimitError, SourceError, UpstreamError
from ledger.sandbox import DAY, HOUR, SandboxOrg, SandboxServer
from ledger.sandbox.faults import FaultPlan
from ledger.sources.openai import OpenAISource, retry_after

NOW = 1_750_000_000
ADMIN = "sk-admin-CANARY-a1b2c3d4e5"
PROJECT_KEYS = {
    "support": "sk-proj-CANARY-support-0001",
    "legal": "sk-proj-CANARY-legal-0002",
    "research": "sk-proj-CANARY-research-0003",
}
ALL_KEYS = [ADMIN, *PROJECT_KEYS.values()]

SourceFactory = Callable[..., OpenAISource]


@pytest.fixture
def org() -> SandboxOrg:
    return SandboxOrg(seed=11, now=NOW, days=3)


@pytest.fixture
def server(org: SandboxOrg) -> Iterator[SandboxServer]:
    with SandboxServer(org, admin_key=ADMIN, project_keys=PROJECT_KEYS, faults=FaultPlan()) as srv:
        yield srv
    assert srv.errors == []


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_source(server: SandboxServer, sleeps: list[float]) -> Iterator[SourceFactory]:
    """Sources on the sandbox with fast timeouts; sleeps are recorded, not slept."""
    made: list[OpenAISource] = []

    def make(**options: object) -> OpenAISource:
        settings: dict[str, object] = {
            "admin_key": ADMIN,
            "project_keys": PROJECT_KEYS,
            "base_url": server.base_url,
            "timeout": 2.0,
            "max_retries": 3,
            "sleep": sleeps.append,
        }
        settings.update(options)
        source = OpenAISource(**settings)  # type: ignore[arg-type]
        made.append(source)
        return source

    yield make
    for source in made:
        source.close()


@pytest.fixture
def source(make_source: SourceFactory) -> OpenAISource:
    return make_source()


def usage(source: OpenAISource, start: int, end: int, width: str = "1h", **kw: object) -> list:
    return [row for page in source.usage_pages(start, end, width, **kw) for row in page]  # type: ignore[arg-type]


def assert_no_key(text: str) -> None:
    for key in ALL_KEYS:
        assert key not in text
    assert "CANARY" not in text


# --- reading --------------------------------------------------------------------------


@pytest.mark.parametrize(("width", "limit", "pages"), [("1m", 720, 2), ("1h", 5, 10), ("1d", 1, 3)])
def test_usage_equals_the_truth_across_many_pages(
    source: OpenAISource, server: SandboxServer, org: SandboxOrg, width: str, limit: int, pages: int
) -> None:
    start = org.start if width != "1m" else org.start + DAY
    end = start + (DAY if width == "1m" else 2 * DAY if width == "1h" else 3 * DAY)
    expected = org.usage_rows(start, end, width)
    assert usage(source, start, end, width, limit=limit) == expected
    assert server.requests["usage"] == pages
    assert expected and all(r.key.source == "openai" and r.key.user_id == "" for r in expected)


def test_usage_yields_one_list_per_page(source: OpenAISource, org: SandboxOrg) -> None:
    pages = list(source.usage_pages(org.start, org.start + 10 * HOUR, "1h", limit=4))
    assert len(pages) == 3
    assert [{r.key.bucket_start for r in p} for p in pages][2] <= {
        org.start + 8 * HOUR,
        org.start + 9 * HOUR,
    }


def test_usage_dimensions_null_become_empty_and_batch_false(
    source: OpenAISource, org: SandboxOrg
) -> None:
    rows = usage(source, org.start, org.now, "1d")
    assert {r.key.batch for r in rows} == {True, False}
    assert all(isinstance(r.key.batch, bool) for r in rows)
    assert all(r.key.model and r.key.project_id and r.key.api_key_id for r in rows)


def test_costs_are_exact_decimals_from_the_raw_body(source: OpenAISource, org: SandboxOrg) -> None:
    awkward = Decimal("0.1000000000000000055511151231257827")
    org.add_cost(org.start, "proj_legal", "credit, goodwill", awkward)
    org.add_cost(org.start + DAY, "proj_legal", "credit, refund", "-12.345678901234567890123")
    costs = [c for page in source.cost_pages(org.start, org.now, limit=1) for c in page]
    assert costs == org.costs(org.start, org.now)
    by_item = {c.line_item: c.amount for c in costs}
    assert by_item["credit, goodwill"] == awkward
    assert by_item["credit, refund"] == Decimal("-12.345678901234567890123")
    assert all(type(c.amount) is Decimal and c.currency == "usd" for c in costs)


def test_jobs_of_every_project_over_many_pages(
    make_source: SourceFactory, server: SandboxServer, org: SandboxOrg
) -> None:
    source = make_source(jobs_page_size=4)
    jobs = list(source.jobs())
    assert sorted(jobs, key=lambda j: j.id) == sorted(org.jobs(), key=lambda j: j.id)
    expected_pages = sum(-(-len(org.jobs(p)) // 4) for p in PROJECT_KEYS)
    assert server.requests["jobs"] == expected_pages
    rft = [j for j in jobs if j.method == "reinforcement"]
    assert rft and all(j.project == "research" for j in rft)
    assert any(j.n_epochs is None for j in jobs)  # "auto" before the job starts
    dpo = next(j for j in jobs if j.method == "dpo")
    assert dpo.n_epochs == 2  # read from method.dpo.hyperparameters


def test_jobs_of_one_project(source: OpenAISource, org: SandboxOrg) -> None:
    assert list(source.jobs("legal")) == org.jobs("legal")
    with pytest.raises(AuthError, match="no key for project 'billing'"):
        list(source.jobs("billing"))


def test_moderation_in_batches_keeps_order(source: OpenAISource, server: SandboxServer) -> None:
    texts = [f"line {i}" for i in range(70)]
    texts[5] = "you idiot"
    texts[69] = "how to make counterfeit money"
    results = source.moderate(texts, batch_size=32)
    assert len(results) == 70
    assert [i for i, r in enumerate(results) if r.flagged] == [5, 69]
    assert results[5].categories == ("harassment",)
    assert server.requests["moderations"] == 3
    assert source.moderate([]) == []


# --- retries and failures ------------------------------------------------------------


def test_rate_limit_then_success_honours_retry_after(
    source: OpenAISource, server: SandboxServer, org: SandboxOrg, sleeps: list[float]
) -> None:
    server.faults.rate_limit("usage", retry_after=0.05, times=2)
    assert usage(source, org.start, org.now, "1d") == org.usage_rows(org.start, org.now, "1d")
    assert server.requests["usage"] == 3
    assert sleeps == [0.05, 0.05]


def test_rate_limit_beyond_the_retry_budget(
    source: OpenAISource, server: SandboxServer, org: SandboxOrg
) -> None:
    server.faults.rate_limit("usage", retry_after=0.01, times=-1)
    with pytest.raises(RateLimitError, match="after 3 retries") as caught:
        usage(source, org.start, org.now)
    assert caught.value.status == 429
    assert caught.value.request_id and caught.value.request_id.startswith("req_")
    assert caught.value.request_id in str(caught.value)
    assert server.requests["usage"] == 4


def test_a_very_long_retry_after_fails_at_once(
    make_source: SourceFactory, server: SandboxServer, org: SandboxOrg, sleeps: list[float]
) -> None:
    server.faults.rate_limit("costs", retry_after=3600, times=-1)
    source = make_source(max_retry_after=30)
    with pytest.raises(RateLimitError, match="wait 3600s"):
        list(source.cost_pages(org.start, org.now))
    assert server.requests["costs"] == 1 and sleeps == []


def test_server_errors_are_retried_with_backoff(
    make_source: SourceFactory, server: SandboxServer, org: SandboxOrg, sleeps: list[float]
) -> None:
    server.faults.error("jobs", 503, times=3)
    source = make_source(backoff=0.1)
    assert len(list(source.jobs("support"))) == len(org.jobs("support"))
    assert server.requests["jobs"] == 4
    assert len(sleeps) == 3 and sleeps[0] < sleeps[1] < sleeps[2] <= 0.4


def test_a_server_error_storm_ends_in_upstream_error(
    source: OpenAISource, server: SandboxServer, org: SandboxOrg
) -> None:
    server.faults.error("usage", 500, times=-1)
    with pytest.raises(UpstreamError, match=r"HTTP 500") as caught:
        usage(source, org.start, org.now)
    assert "GET /organization/usage/completions" in str(caught.value)
    assert caught.value.request_id


def test_a_timeout_is_retried_then_succeeds(
    make_source: SourceFactory, server: SandboxServer, org: SandboxOrg
) -> None:
    server.faults.slow("usage", 0.5)
    source = make_source(timeout=0.1)
    assert usage(source, org.start, org.now, "1d") == org.usage_rows(org.start, org.now, "1d")
    assert server.requests["usage"] == 2


def test_timeouts_beyond_the_budget(
    make_source: SourceFactory, server: SandboxServer, org: SandboxOrg
) -> None:
    server.faults.slow("jobs", 0.5, times=-1)
    source = make_source(timeout=0.1, max_retries=1)
    with pytest.raises(UpstreamError, match=r"timed out after 0\.1s"):
        list(source.jobs("legal"))
    assert server.requests["jobs"] == 2


def test_resets_and_truncated_bodies_are_retried(
    source: OpenAISource, server: SandboxServer, org: SandboxOrg
) -> None:
    server.faults.reset("costs")
    server.faults.truncate("costs")
    assert [c for p in source.cost_pages(org.start, org.now) for c in p] == org.costs(
        org.start, org.now
    )
    assert server.requests["costs"] == 3


def test_connection_refused_is_an_upstream_error(
    make_source: SourceFactory, org: SandboxOrg
) -> None:
    closed = SandboxServer(org)
    url = closed.base_url
    closed.close()
    source = make_source(base_url=url, max_retries=1)
    with pytest.raises(UpstreamError, match="could not reach OpenAI"):
        list(source.jobs("legal"))


def test_a_body_that_is_not_json(
    source: OpenAISource, server: SandboxServer, org: SandboxOrg
) -> None:
    server.faults.garbage("usage")
    with pytest.raises(UpstreamError, match="not JSON") as caught:
        usage(source, org.start, org.now)
    assert caught.value.request_id
    server.faults.garbage("jobs")
    with pytest.raises(UpstreamError, match="unreadable response body"):
        list(source.jobs("legal"))


# --- keys -----------------------------------------------------------------------------


def test_a_bad_key_is_an_auth_error_without_the_key(
    make_source: SourceFactory, server: SandboxServer, org: SandboxOrg
) -> None:
    bad = "sk-admin-CANARY-wrong-key-777"
    source = make_source(admin_key=bad)
    with pytest.raises(AuthError, match="HTTP 401") as caught:
        usage(source, org.start, org.now)
    assert bad not in str(caught.value) and bad[-4:] not in str(caught.value)
    assert server.requests["usage"] == 1  # no retry on 401


def test_a_project_key_cannot_read_usage(make_source: SourceFactory, org: SandboxOrg) -> None:
    source = make_source(admin_key=PROJECT_KEYS["legal"])
    with pytest.raises(AuthError, match="HTTP 403"):
        list(source.cost_pages(org.start, org.now))


def test_an_echoed_key_never_leaves_the_seam(
    source: OpenAISource, server: SandboxServer, org: SandboxOrg, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.faults.echo_key("usage")
    server.faults.echo_key("jobs")
    with pytest.raises(UpstreamError) as usage_error:
        usage(source, org.start, org.now)
    with pytest.raises(UpstreamError) as jobs_error:
        list(source.jobs("support"))
    for error in (usage_error.value, jobs_error.value):
        assert "sk-admin-***" in str(error) or "sk-proj-***" in str(error)
        assert_no_key(str(error))
        assert_no_key(repr(error.args))
        assert error.__cause__ is None and error.__context__ is None
    assert_no_key(caplog.text)
    assert_no_key(repr(source.__dict__))


def test_missing_keys_fail_before_any_request(server: SandboxServer, org: SandboxOrg) -> None:
    source = OpenAISource(base_url=server.base_url)
    with pytest.raises(AuthError, match="OPENAI_ADMIN_KEY"):
        usage(source, org.start, org.now)
    with pytest.raises(AuthError, match="OPENAI_API_KEY"):
        list(source.jobs())
    assert sum(server.requests.values()) == 0


def test_keys_and_base_url_come_from_the_environment(
    server: SandboxServer, org: SandboxOrg, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_ADMIN_KEY", ADMIN)
    monkeypatch.setenv("OPENAI_API_KEY", PROJECT_KEYS["legal"])
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    with OpenAISource() as source:
        assert usage(source, org.start, org.now, "1d")
        jobs = list(source.jobs())
    assert {j.id for j in jobs} == {j.id for j in org.jobs("legal")}
    assert {j.project for j in jobs} == {""}


# --- pagination guards ----------------------------------------------------------------


def test_a_repeated_cursor_is_a_pagination_error(
    source: OpenAISource, server: SandboxServer, org: SandboxOrg
) -> None:
    server.faults.repeat_cursor("usage", skip=1)
    with pytest.raises(
        PaginationError, match=r"GET /organization/usage/completions: the cursor repeated"
    ):
        usage(source, org.start, org.now, limit=5)
    assert server.requests["usage"] == 2


def test_a_repeated_job_cursor_is_a_pagination_error(
    make_source: SourceFactory, server: SandboxServer
) -> None:
    server.faults.repeat_cursor("jobs", skip=1)
    with pytest.raises(PaginationError, match="GET /fine_tuning/jobs"):
        list(make_source(jobs_page_size=3).jobs("support"))


@pytest.mark.parametrize("endpoint", ["usage", "costs", "jobs"])
def test_has_more_without_a_way_forward(
    make_source: SourceFactory, server: SandboxServer, org: SandboxOrg, endpoint: str
) -> None:
    server.faults.no_next_page(endpoint)
    source = make_source(jobs_page_size=3)
    with pytest.raises(PaginationError, match="has_more is true"):
        if endpoint == "usage":
            usage(source, org.start, org.now)
        elif endpoint == "costs":
            list(source.cost_pages(org.start, org.now))
        else:
            list(source.jobs("support"))


def test_too_many_pages(make_source: SourceFactory, server: SandboxServer, org: SandboxOrg) -> None:
    source = make_source(max_pages=3)
    with pytest.raises(PaginationError, match="more than 3 pages"):
        usage(source, org.start, org.now, limit=1)
    assert server.requests["usage"] == 3


def test_nothing_is_yielded_from_a_page_that_breaks_the_guards(
    source: OpenAISource, server: SandboxServer, org: SandboxOrg
) -> None:
    server.faults.no_next_page("usage", skip=1)
    pages = source.usage_pages(org.start, org.now, "1h", limit=2)
    assert next(pages)
    with pytest.raises(PaginationError):
        next(pages)


def test_an_equal_duplicate_is_merged_and_a_different_one_refused(
    source: OpenAISource, server: SandboxServer, org: SandboxOrg
) -> None:
    server.faults.duplicate_results("usage")
    assert usage(source, org.start, org.now, "1d") == org.usage_rows(org.start, org.now, "1d")
    server.faults.duplicate_results("usage", conflicting=True)
    with pytest.raises(UpstreamError, match="twice with different values"):
        usage(source, org.start, org.now, "1d")
    server.faults.duplicate_results("costs", conflicting=True)
    with pytest.raises(UpstreamError, match="twice with different values"):
        list(source.cost_pages(org.start, org.now))


# --- helpers and hygiene --------------------------------------------------------------


def test_retry_after_reads_seconds_milliseconds_and_dates() -> None:
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after({}) is None
    assert retry_after({"retry-after": "nonsense"}) is None
    in_a_minute = retry_after({"retry-after": "Wed, 01 Jan 2098 00:00:00 GMT"})
    assert in_a_minute is not None and in_a_minute > 3600


def test_bad_arguments_are_programming_errors(source: OpenAISource, org: SandboxOrg) -> None:
    with pytest.raises(ValueError, match="bucket_width"):
        usage(source, org.start, org.now, "5m")
    with pytest.raises(ValueError, match="batch_size"):
        source.moderate(["x"], batch_size=0)


def test_importing_the_source_does_not_import_openai() -> None:
    code = "import sys, ledger.sources.openai, ledger.sandbox; print('openai' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_every_source_error_is_a_source_error(
    source: OpenAISource, server: SandboxServer, org: SandboxOrg
) -> None:
    server.faults.error("costs", 400)
    with pytest.raises(SourceError, match="HTTP 400"):
        list(source.cost_pages(org.start, org.now))
