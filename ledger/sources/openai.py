"""OpenAI as a source: usage, costs, fine-tuning jobs and moderation, through the SDK.

The only module that imports `openai`, and only inside functions, so `import ledger`
stays fast. Everything the SDK can raise is translated here into `ledger.errors`, with
OpenAI's request id kept and secrets masked by `ledger.secrets` (an upstream body may
echo the key). A base URL carrying credentials is refused.

Retries are ours, not the SDK's (its clients run with max_retries=0): one loop retries
408/409/429/5xx, timeouts and connection failures with capped exponential backoff,
honours Retry-After, and fails at once when Retry-After asks for more than
`max_retry_after` seconds, so a poll ends cleanly instead of sleeping for minutes
(the SDK itself would wait up to two minutes). Pages are fetched one request at a
time for the same reason: every page gets the retry policy and the cursor guards
(a repeated cursor, `has_more` without a way forward, too many pages).

Duplicate keys: `usage_pages` and `cost_pages` drop a key seen again with equal
values anywhere in one call and raise `UpstreamError` when the values differ, so
sync receives each key once per window.
"""

from __future__ import annotations

import email.utils
import functools
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ledger.domain import CostObservation, JobObservation, UsageKey, UsageObservation
from ledger.errors import (
    AuthError,
    PaginationError,
    RateLimitError,
    SourceError,
    UpstreamError,
)
from ledger.secrets import mask, refuse_credentials
from ledger.sources.checks import UsagePage

if TYPE_CHECKING:
    import openai

log = logging.getLogger(__name__)
T = TypeVar("T")

USAGE = "GET /organization/usage/completions"
COSTS = "GET /organization/costs"
JOBS = "GET /fine_tuning/jobs"
MODERATIONS = "POST /moderations"

UsageDimension = Literal[
    "project_id", "user_id", "api_key_id", "model", "batch", "service_tier", "api_source"
]
CostDimension = Literal["project_id", "user_id", "line_item", "api_key_id", "api_source"]
USAGE_GROUP_BY: tuple[UsageDimension, ...] = (
    "model",
    "project_id",
    "api_key_id",
    "batch",
    "service_tier",
)
COSTS_GROUP_BY: tuple[CostDimension, ...] = ("line_item", "project_id")
USAGE_MAX_LIMIT = {"1m": 1440, "1h": 168, "1d": 31}  # buckets per page, OpenAI's maxima
COSTS_MAX_LIMIT = 180
JOBS_PAGE_SIZE = 100
MODERATION_MODEL = "omni-moderation-latest"
MODERATION_BATCH = 32
DEFAULT_MAX_PAGES = 1000
RETRYABLE = frozenset({408, 409, 429})


@dataclass(frozen=True)
class ModerationResult:
    """The verdict on one text: flagged or not, and which categories fired."""

    flagged: bool
    categories: tuple[str, ...]


class _Key:
    """A secret that does not show itself in reprs, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<key redacted>"


class OpenAISource:
    """Reads OpenAI (or the sandbox) through the official SDK.

    admin_key: for usage and costs (default: OPENAI_ADMIN_KEY).
    project_keys: project name -> project key, for jobs and moderation (default:
    OPENAI_API_KEY under the project name ""). base_url: default OPENAI_BASE_URL,
    then the SDK's. timeout: seconds per request. max_retries: retries per request.
    """

    def __init__(
        self,
        admin_key: str | None = None,
        project_keys: dict[str, str] | None = None,
        base_url: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        *,
        max_retry_after: float = 60.0,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        max_pages: int = DEFAULT_MAX_PAGES,
        jobs_page_size: int = JOBS_PAGE_SIZE,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        admin = admin_key if admin_key is not None else os.environ.get("OPENAI_ADMIN_KEY")
        self._admin_key = _Key(admin) if admin else None
        if project_keys is None:
            env_key = os.environ.get("OPENAI_API_KEY")
            project_keys = {"": env_key} if env_key else {}
        self._project_keys = {name: _Key(key) for name, key in project_keys.items() if key}
        if base_url is None:
            refuse_credentials(os.environ.get("OPENAI_BASE_URL"), "OPENAI_BASE_URL")
        refuse_credentials(base_url, "base_url")
        self.base_url = base_url
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_retry_after = max_retry_after
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_pages = max_pages
        self.jobs_page_size = jobs_page_size
        self._sleep = sleep
        self._clients: dict[str | None, openai.OpenAI] = {}
        self._closed = False

    @property
    def projects(self) -> list[str]:
        return list(self._project_keys)

    def close(self) -> None:
        """Close the HTTP connection pools of every client made so far, for good: a read
        abandoned at its deadline (ledger.deadline) must not retry or open new ones."""
        self._closed = True
        for client in list(self._clients.values()):
            client.close()
        self._clients.clear()

    def __enter__(self) -> OpenAISource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- clients ---------------------------------------------------------------------

    def _secrets(self) -> list[str]:
        keys = [k.reveal() for k in self._project_keys.values()]
        return keys + ([self._admin_key.reveal()] if self._admin_key else [])

    def _admin(self) -> openai.OpenAI:
        if self._admin_key is None:
            raise AuthError("no admin key: set OPENAI_ADMIN_KEY to read usage and costs")
        if None not in self._clients:
            self._clients[None] = self._client(admin_api_key=self._admin_key.reveal())
        return self._clients[None]

    def _project(self, name: str) -> openai.OpenAI:
        if name not in self._project_keys:
            known = ", ".join(repr(p) for p in self._project_keys) or "none"
            raise AuthError(f"no key for project {name!r} (configured: {known})")
        if name not in self._clients:
            self._clients[name] = self._client(api_key=self._project_keys[name].reveal())
        return self._clients[name]

    def _client(
        self, api_key: str | None = None, admin_api_key: str | None = None
    ) -> openai.OpenAI:
        import openai

        if self._closed:
            raise SourceError("the OpenAI source was closed")
        try:
            return openai.OpenAI(
                api_key=api_key,
                admin_api_key=admin_api_key,
                base_url=self.base_url,
                timeout=self.timeout,
                max_retries=0,
            )
        except openai.OpenAIError as exc:
            raise SourceError(f"cannot set up the OpenAI client: {self._scrub(str(exc))}") from None
        except Exception as exc:  # e.g. httpx's InvalidURL for a malformed base URL
            detail = self._scrub(str(exc))[:200]
            raise SourceError(f"cannot set up the OpenAI client: {detail}") from None

    # -- usage -------------------------------------------------------------------------

    def usage_pages(
        self, start: int, end: int, bucket_width: str = "1h", *, limit: int | None = None
    ) -> Iterator[list[UsageObservation]]:
        """Completions usage in [start, end), one list per page, grouped by every dimension
        the ledger keys on (not user_id)."""
        if bucket_width not in USAGE_MAX_LIMIT:
            raise ValueError(f"bucket_width must be one of {list(USAGE_MAX_LIMIT)}")
        import openai

        usage = self._admin().admin.organization.usage.with_raw_response
        width: Literal["1m", "1h", "1d"] = bucket_width  # type: ignore[assignment]
        page_size = limit or USAGE_MAX_LIMIT[bucket_width]
        seen: dict[UsageKey, UsageObservation] = {}

        def fetch(cursor: str | None) -> tuple[list[UsageObservation], bool, str | None]:
            raw = self._call(
                USAGE,
                lambda: usage.completions(
                    start_time=start,
                    end_time=end,
                    bucket_width=width,
                    group_by=list(USAGE_GROUP_BY),
                    limit=page_size,
                    page=cursor or openai.omit,
                ),
            )
            body, request_id = _json_body(USAGE, raw)
            rows = _parse_page(USAGE, body, request_id, _usage_observations)
            page = UsagePage(_unique(USAGE, seen, rows, request_id), _buckets(body))
            return page, *_cursor(USAGE, body, request_id)

        yield from self._follow(USAGE, fetch)

    # -- costs -------------------------------------------------------------------------

    def cost_pages(
        self, start: int, end: int, *, limit: int | None = None
    ) -> Iterator[list[CostObservation]]:
        """OpenAI's billed costs in [start, end), daily, by line item and project, as exact
        Decimals read from the raw body (the SDK would turn them into floats)."""
        import openai

        usage = self._admin().admin.organization.usage.with_raw_response
        page_size = limit or COSTS_MAX_LIMIT
        seen: dict[tuple[int, int, str, str], CostObservation] = {}

        def fetch(cursor: str | None) -> tuple[list[CostObservation], bool, str | None]:
            raw = self._call(
                COSTS,
                lambda: usage.costs(
                    start_time=start,
                    end_time=end,
                    bucket_width="1d",
                    group_by=list(COSTS_GROUP_BY),
                    limit=page_size,
                    page=cursor or openai.omit,
                ),
            )
            body, request_id = _json_body(COSTS, raw)
            rows = _parse_page(COSTS, body, request_id, _cost_observations)
            keyed = [((c.bucket_start, c.bucket_end, c.project_id, c.line_item), c) for c in rows]
            return _unique_by(COSTS, seen, keyed, request_id), *_cursor(COSTS, body, request_id)

        yield from self._follow(COSTS, fetch)

    # -- jobs --------------------------------------------------------------------------

    def jobs(self, project_name: str | None = None) -> Iterator[JobObservation]:
        """Every fine-tuning job of one configured project, or of all of them."""
        names = [project_name] if project_name is not None else list(self._project_keys)
        if not names:
            raise AuthError("no project key: set OPENAI_API_KEY to read fine-tuning jobs")
        for name in names:
            for page in self._job_pages(name):
                yield from page

    def _job_pages(self, name: str) -> Iterator[list[JobObservation]]:
        import openai

        client = self._project(name)

        def fetch(cursor: str | None) -> tuple[list[JobObservation], bool, str | None]:
            page = self._call(
                JOBS,
                lambda: client.fine_tuning.jobs.list(
                    limit=self.jobs_page_size, after=cursor or openai.omit
                ),
            )
            try:
                items = list(page.data)
                jobs = [_job_observation(job, name) for job in items]
                has_more = bool(page.has_more)
            except (AttributeError, TypeError, ValueError, KeyError) as exc:
                raise UpstreamError(f"{JOBS}: unexpected response body ({exc})") from None
            if has_more and not jobs:
                raise PaginationError(f"{JOBS}: has_more is true but the page is empty")
            return jobs, has_more, jobs[-1].id if jobs else None

        yield from self._follow(JOBS, fetch)

    # -- moderation --------------------------------------------------------------------

    def moderate(
        self,
        texts: Sequence[str],
        batch_size: int = MODERATION_BATCH,
        project_name: str | None = None,
    ) -> list[ModerationResult]:
        """Screen texts with omni-moderation-latest, `batch_size` texts per request."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if not texts:
            return []
        names = [project_name] if project_name is not None else list(self._project_keys)
        if not names:
            raise AuthError("no project key: set OPENAI_API_KEY to use moderation")
        client = self._project(names[0])
        results: list[ModerationResult] = []
        for i in range(0, len(texts), batch_size):
            batch = list(texts[i : i + batch_size])
            create = functools.partial(
                client.moderations.create, model=MODERATION_MODEL, input=batch
            )
            response = self._call(MODERATIONS, create)
            results += _moderation_results(response, len(batch))
        return results

    # -- the seam: retries, guards, translation ----------------------------------------

    def _follow(
        self, what: str, fetch: Callable[[str | None], tuple[list[T], bool, str | None]]
    ) -> Iterator[list[T]]:
        """Follow cursors until has_more is false; refuse loops and endless paging."""
        cursor: str | None = None
        seen: set[str] = set()
        for pages in range(1, self.max_pages + 1):
            items, has_more, next_cursor = fetch(cursor)
            if has_more and not next_cursor:
                raise PaginationError(f"{what}: has_more is true but no next page (page {pages})")
            if has_more and (next_cursor in seen or next_cursor == cursor):
                raise PaginationError(f"{what}: the cursor repeated at page {pages}")
            yield items
            if not has_more:
                return
            assert next_cursor is not None
            seen.add(next_cursor)
            cursor = next_cursor
        raise PaginationError(f"{what}: more than {self.max_pages} pages; giving up")

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """One request under the retry policy; every failure leaves as a LedgerError."""
        import openai

        attempt = 0
        while True:
            failure: Exception
            try:
                return fn()
            except (openai.APIStatusError, openai.APIConnectionError) as exc:
                failure = exc
            except openai.APIResponseValidationError as exc:
                raise self._translate(what, exc, attempt) from None
            except openai.OpenAIError as exc:
                raise SourceError(f"{what}: {self._scrub(str(exc))}") from None
            except ValueError as exc:  # a body that is not JSON
                raise UpstreamError(
                    f"{what}: unreadable response body ({type(exc).__name__})"
                ) from None
            delay, reason = self._retry_delay(failure, attempt)
            if delay is None or self._closed:
                raise self._translate(what, failure, attempt, reason) from None
            log.warning(
                "%s: %s; retry %d/%d in %.2fs",
                what,
                self._describe(failure),
                attempt + 1,
                self.max_retries,
                delay,
            )
            self._sleep(delay)
            attempt += 1

    def _retry_delay(self, exc: Exception, attempt: int) -> tuple[float | None, str]:
        """Seconds to wait before retrying, or None (with why) when this is final."""
        import openai

        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            if status not in RETRYABLE and status < 500:
                return None, ""
            wait = retry_after(exc.response.headers)
            if wait is not None and wait > self.max_retry_after:
                return None, (
                    f"OpenAI asked to wait {wait:.0f}s, longer than the "
                    f"{self.max_retry_after:.0f}s a poll will wait"
                )
        else:
            wait = None
        if attempt >= self.max_retries:
            return None, f"after {attempt} retries" if attempt else ""
        if wait is not None and wait >= 0:
            return wait, ""
        backoff = min(self.backoff * 2**attempt, self.max_backoff)
        return backoff * (1 - 0.25 * random.random()), ""

    def _translate(self, what: str, exc: Exception, attempt: int, reason: str = "") -> SourceError:
        import openai

        suffix = f" ({reason})" if reason else ""
        if isinstance(exc, openai.APITimeoutError):
            return UpstreamError(f"{what}: timed out after {self.timeout:g}s{suffix}")
        if isinstance(exc, openai.APIConnectionError):
            cause = type(exc.__cause__).__name__ if exc.__cause__ else "connection error"
            return UpstreamError(f"{what}: could not reach OpenAI ({cause}){suffix}")
        status = getattr(exc, "status_code", None)
        request_id = getattr(exc, "request_id", None) or _request_id_of(exc)
        detail = self._scrub(_error_message(exc))
        message = f"{what}: HTTP {status}: {detail}{suffix}"
        kind: type[SourceError] = SourceError
        if isinstance(exc, openai.APIResponseValidationError):
            kind, message = UpstreamError, f"{what}: unexpected response body{suffix}"
        elif status in (401, 403):
            kind = AuthError
            message = f"{what}: OpenAI refused the key (HTTP {status}): {detail}"
        elif status == 429:
            kind = RateLimitError
        elif status is not None and (status >= 500 or status in RETRYABLE):
            kind = UpstreamError
        return kind(message, request_id=request_id, status=status)

    def _describe(self, exc: Exception) -> str:
        status = getattr(exc, "status_code", None)
        return f"HTTP {status}" if status else type(exc).__name__

    def _scrub(self, text: str) -> str:
        return mask(text, self._secrets())


# --- parsing ------------------------------------------------------------------------------


def retry_after(headers: Any) -> float | None:
    """Seconds asked for by retry-after-ms or Retry-After (seconds or an HTTP date)."""
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            parsed = email.utils.parsedate_tz(value)
            if parsed is None:
                continue
            seconds = float(email.utils.mktime_tz(parsed) - time.time())
        return seconds if math.isfinite(seconds) else math.inf
    return None


def _request_id_of(exc: Exception) -> str | None:
    response = getattr(exc, "response", None)
    return response.headers.get("x-request-id") if response is not None else None


def _error_message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])[:300]
    return str(getattr(exc, "message", "") or type(exc).__name__)[:300]


def _json_body(what: str, raw: Any) -> tuple[dict[str, Any], str | None]:
    """The body as JSON with every non-integer number an exact Decimal."""
    request_id = raw.headers.get("x-request-id")
    try:
        body = json.loads(raw.text, parse_float=Decimal, parse_constant=_refuse_constant)
    except ValueError:
        raise UpstreamError(
            f"{what}: the response body is not JSON", request_id=request_id
        ) from None
    if not isinstance(body, dict):
        raise UpstreamError(f"{what}: the response body is not an object", request_id=request_id)
    return body, request_id


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _cursor(what: str, body: dict[str, Any], request_id: str | None) -> tuple[bool, str | None]:
    has_more, next_page = body.get("has_more"), body.get("next_page")
    if not isinstance(has_more, bool) or not (next_page is None or isinstance(next_page, str)):
        raise UpstreamError(f"{what}: has_more/next_page malformed", request_id=request_id)
    return has_more, next_page


def _parse_page(
    what: str,
    body: dict[str, Any],
    request_id: str | None,
    convert: Callable[[int, int, list[Any]], list[T]],
) -> list[T]:
    """The results of every bucket in a page, converted; a malformed page is an error."""
    data = body.get("data")
    try:
        if not isinstance(data, list):
            raise TypeError("data is not a list")
        rows: list[T] = []
        for bucket in data:
            start, end = _int(bucket["start_time"]), _int(bucket["end_time"])
            results = bucket.get("results", bucket.get("result"))
            if not isinstance(results, list):
                raise TypeError("results is not a list")
            rows += convert(start, end, results)
        return rows
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UpstreamError(
            f"{what}: unexpected response body ({exc})", request_id=request_id
        ) from None


def _buckets(body: dict[str, Any]) -> list[tuple[int, int]]:
    """The (start, end) of every bucket of a page already parsed, empty ones too."""
    return [(bucket["start_time"], bucket["end_time"]) for bucket in body["data"]]


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{value!r} is not an integer")
    return value


def _opt_int(value: Any) -> int:
    return 0 if value is None else _int(value)


def _dim(value: Any) -> str:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{value!r} is not a string")
    return value or ""


def _usage_observations(start: int, end: int, results: list[Any]) -> list[UsageObservation]:
    out = []
    for r in results:
        batch = r.get("batch")
        if batch is not None and not isinstance(batch, bool):
            raise TypeError(f"batch {batch!r} is not a boolean")
        key = UsageKey(
            source="openai",
            bucket_start=start,
            bucket_end=end,
            model=_dim(r.get("model")),
            project_id=_dim(r.get("project_id")),
            api_key_id=_dim(r.get("api_key_id")),
            user_id=_dim(r.get("user_id")),
            batch=bool(batch),
            service_tier=_dim(r.get("service_tier")),
        )
        out.append(
            UsageObservation(
                key=key,
                requests=_int(r["num_model_requests"]),
                input_tokens=_int(r["input_tokens"]),
                cached_tokens=_opt_int(r.get("input_cached_tokens")),
                output_tokens=_int(r["output_tokens"]),
            )
        )
    return out


def _cost_observations(start: int, end: int, results: list[Any]) -> list[CostObservation]:
    out = []
    for r in results:
        amount = r.get("amount")
        value = amount.get("value") if isinstance(amount, dict) else None
        if isinstance(value, bool) or not isinstance(value, Decimal | int):
            raise TypeError(f"amount {value!r} is not a number")
        out.append(
            CostObservation(
                bucket_start=start,
                bucket_end=end,
                project_id=_dim(r.get("project_id")),
                line_item=_dim(r.get("line_item")),
                amount=Decimal(value),
                currency=(_dim(amount.get("currency")) or "usd").lower(),
            )
        )
    return out


def _unique(
    what: str,
    seen: dict[UsageKey, UsageObservation],
    rows: list[UsageObservation],
    request_id: str | None,
) -> list[UsageObservation]:
    return _unique_by(what, seen, [(row.key, row) for row in rows], request_id)


K = TypeVar("K")


def _unique_by(
    what: str, seen: dict[K, T], keyed: list[tuple[K, T]], request_id: str | None
) -> list[T]:
    """Rows not seen before: an equal repeat is dropped, a different one is an error."""
    fresh: list[T] = []
    for key, row in keyed:
        previous = seen.get(key)
        if previous is None:
            seen[key] = row
            fresh.append(row)
        elif previous != row:
            raise UpstreamError(
                f"{what}: the same key was reported twice with different values: {key}",
                request_id=request_id,
            )
    return fresh


def _job_observation(job: Any, project: str) -> JobObservation:
    method = job.method.type if getattr(job, "method", None) is not None else "supervised"
    for field in ("id", "model", "status"):
        if not isinstance(getattr(job, field), str):
            raise TypeError(f"job {field} is not a string")
    return JobObservation(
        id=job.id,
        model=job.model,
        fine_tuned_model=job.fine_tuned_model,
        status=job.status,
        method=method,
        n_epochs=_epochs(job),
        trained_tokens=_maybe_int(job.trained_tokens),
        created_at=_int(job.created_at),
        finished_at=_maybe_int(job.finished_at),
        training_file=job.training_file,
        project=project,
    )


def _maybe_int(value: Any) -> int | None:
    return None if value is None else _int(value)


def _epochs(job: Any) -> int | None:
    """n_epochs from the top-level hyperparameters or the method's; "auto" is unknown."""
    candidates = [getattr(getattr(job, "hyperparameters", None), "n_epochs", None)]
    method = getattr(job, "method", None)
    if method is not None:
        detail = getattr(method, method.type, None)
        candidates.append(getattr(getattr(detail, "hyperparameters", None), "n_epochs", None))
    for value in candidates:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _moderation_results(response: Any, expected: int) -> list[ModerationResult]:
    try:
        results = list(response.results)
        if len(results) != expected:
            raise ValueError(f"{len(results)} results for {expected} inputs")
        return [
            ModerationResult(
                flagged=bool(r.flagged),
                categories=tuple(
                    name for name, hit in r.categories.model_dump(by_alias=True).items() if hit
                ),
            )
            for r in results
        ]
    except (AttributeError, TypeError, ValueError) as exc:
        raise UpstreamError(f"{MODERATIONS}: unexpected response body ({exc})") from None
