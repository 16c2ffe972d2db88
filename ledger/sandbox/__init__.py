"""A simulated OpenAI organisation served over real HTTP on loopback.

Tests, benchmarks and `ftledger demo` poll it through the real `openai` SDK, so the
whole path (query encoding, auth headers, retries, pagination, parsing) is exercised
without a network. It is written against OpenAI's published shapes, not against our
own client, and it knows the truth the ledger is compared with.

    org = SandboxOrg(seed=7, now=1_750_000_000, days=3)
    with SandboxServer(org) as srv:
        srv.base_url                      # "http://127.0.0.1:PORT/v1"
        srv.requests["usage"]             # requests served per endpoint

Endpoints: GET /v1/organization/usage/completions, GET /v1/organization/costs (admin
key), GET /v1/fine_tuning/jobs, POST /v1/moderations (project keys).

Modules: `cast` (who is in the organisation), `billing` (its true bill), `organisation`
(`SandboxOrg`: traffic, jobs, the truth), `answers` (the API's shapes), `server` (HTTP),
`faults` (test-only misbehaviour, never imported here: import `ledger.sandbox.faults`).
"""

from ledger.sandbox.cast import (
    DAY,
    FT_LEGAL,
    FT_SUPPORT,
    FT_SUPPORT_CKPT,
    HOUR,
    MINUTE,
    ORGANIZATION_ID,
    PROJECTS,
    UNKNOWN_MODEL,
)
from ledger.sandbox.organisation import SandboxOrg
from ledger.sandbox.server import SandboxServer

__all__ = [
    "DAY",
    "FT_LEGAL",
    "FT_SUPPORT",
    "FT_SUPPORT_CKPT",
    "HOUR",
    "MINUTE",
    "ORGANIZATION_ID",
    "PROJECTS",
    "UNKNOWN_MODEL",
    "SandboxOrg",
    "SandboxServer",
]
