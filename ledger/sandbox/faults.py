"""Planned misbehaviour for the reliability tests: errors, slow replies, cut connections,
pagination lies, secrets echoed back.

Test-only: tests build a `FaultPlan` and pass it to `SandboxServer(..., faults=plan)`;
`ftledger demo` never imports this module. Faults are consumed per endpoint in order
and may be changed while the server runs.

    plan = FaultPlan()
    with SandboxServer(org, faults=plan) as srv:
        plan.rate_limit("usage", retry_after=0.01, times=2)
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from ledger.sandbox.answers import Query, dumps, encode_cursor, error_body
from ledger.sandbox.server import ENDPOINTS, Page, Request


@dataclass
class Fault:
    """One planned misbehaviour of an endpoint; `times` -1 means forever."""

    kind: str  # status reset truncate slow no_next_page repeat_cursor echo_key
    # duplicate_results conflicting_results garbage rewrite
    status: int = 500
    retry_after: float | None = None
    delay: float = 0.0
    times: int = 1
    skip: int = 0  # let this many requests through first
    rewrite: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # kind "rewrite"

    def before(self, request: Request, wait: Callable[[float], None]) -> Page | None:
        """Faults that replace the answer (None: answer, after a wait when slow)."""
        if self.kind == "slow":
            wait(self.delay)
        elif self.kind == "reset":
            return Page(0, b"", cut="reset")
        elif self.kind == "status":
            return _status_page(self)
        elif self.kind == "echo_key":
            message = f"Internal error while serving the request authorised by {request.key}."
            return Page(500, error_body(message, "server_error", None))
        elif self.kind == "repeat_cursor" and request.endpoint == "jobs":
            request.query.pop("after", None)  # the first page again: its last id repeats
        return None

    def after(self, request: Request, page: Page) -> Page:
        """Faults that bend a correct answer (pagination lies) or its delivery."""
        bent = _bend(self, page, request.query)
        return replace(bent, cut="truncate") if self.kind == "truncate" else bent


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

    def rewrite(
        self,
        endpoint: str,
        change: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        times: int = 1,
        skip: int = 0,
    ) -> Fault:
        """A well-formed 200 whose values `change` bends (a copy of the body is passed):
        negative counts, odd strings, buckets outside the window, pages that stop short."""
        return self.add(endpoint, Fault("rewrite", times=times, skip=skip, rewrite=change))

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


def _status_page(fault: Fault) -> Page:
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = f"{fault.retry_after:g}"
    if fault.status == 429:
        body = error_body(
            "Rate limit reached for requests. Please try again later.",
            "requests",
            "rate_limit_exceeded",
        )
    else:
        body = error_body(
            "The server had an error while processing your request.", "server_error", None
        )
    return Page(fault.status, body, headers)


def _bend(fault: Fault, page: Page, query: Query) -> Page:
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
    elif fault.kind == "rewrite" and fault.rewrite is not None:
        body = fault.rewrite(json.loads(dumps(body), parse_float=Decimal))
    elif fault.kind == "garbage":
        return Page(200, b"<html><body>502 Bad Gateway</body></html>", page.headers)
    return Page(page.status, body, page.headers)


def _duplicated(data: list[dict[str, Any]], conflicting: bool) -> list[dict[str, Any]]:
    """`data` with the first bucket's first result repeated (changed when conflicting)."""
    data = [dict(item) for item in data]
    for bucket in data:
        results = bucket.get("results")
        if results:
            twin = json.loads(dumps(results[0]), parse_float=Decimal)
            if conflicting:
                if "amount" in twin:
                    twin["amount"]["value"] += 1
                else:
                    twin["num_model_requests"] += 1
            bucket["results"] = [*results, twin]
            break
    return data
