"""The one exception tree of ftledger.

    LedgerError                      anything the CLI reports as a one-line message
    ├── ConfigError                  problems in user files, collected and reported together
    │   ├── PriceBookError           prices.toml
    │   ├── BudgetConfigError        budgets.toml
    │   ├── AllocationError          allocation.toml (teams)
    │   ├── SettingsError            ledger.toml, environment
    │   └── InputError               a bad file given on the command line (CSV, dataset)
    ├── PricingError                 a model or date the price book cannot price
    ├── EncodingUnavailable          no verified offline copy of a tokenizer's rank file
    ├── StoreError                   the database (unreachable, behind its migrations, ...)
    │   ├── SchemaBehindError        run `ftledger db upgrade`
    │   └── ConflictError            a concurrent writer won; the operation may be retried
    ├── SourceError                  reading OpenAI (or the sandbox) failed
    │   ├── AuthError                401/403: the key is wrong or lacks the scope
    │   ├── RateLimitError           429 after the retry budget
    │   ├── UpstreamError            5xx, timeouts, connection failures, bad bodies
    │   │   └── DeadlineExceeded     a read ran past its wall-clock deadline (ledger.deadline)
    │   └── PaginationError          a cursor that repeats, loops or never ends
    ├── DeliveryError                an alert channel did not accept a message
    └── Interrupted                  `serve` is stopping: work in flight was abandoned

Third-party exceptions are translated where the third-party code is called;
messages never contain API keys or webhook URLs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class LedgerError(Exception):
    """Base of every error ftledger reports to a user."""


@dataclass(frozen=True)
class Problem:
    """One problem in a user file, located by `where` (file:line or file: key.path)."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class ConfigError(LedgerError):
    """Problems found in a user file; all of them, not just the first."""

    def __init__(self, problems: Iterable[Problem] | str):
        if isinstance(problems, str):
            problems = [Problem("config", problems)]
        self.problems: list[Problem] = list(problems)
        super().__init__(self._summary())

    def _summary(self) -> str:
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} found"
        return head + ":\n" + "\n".join(f"  {p}" for p in self.problems)


class PriceBookError(ConfigError):
    pass


class BudgetConfigError(ConfigError):
    pass


class SettingsError(ConfigError):
    pass


class AllocationError(ConfigError):
    pass


class InputError(ConfigError):
    """A bad input file: same shape as ConfigError, every problem located by line."""


class PricingError(LedgerError):
    pass


class EncodingUnavailable(LedgerError):
    """No installed package holds a verified copy of the encoding's rank file."""


class StoreError(LedgerError):
    pass


class SchemaBehindError(StoreError):
    pass


class ConflictError(StoreError):
    pass


class SourceError(LedgerError):
    """Reading a source failed; `request_id` is OpenAI's x-request-id when there was one."""

    def __init__(self, message: str, *, request_id: str | None = None, status: int | None = None):
        self.request_id = request_id
        self.status = status
        suffix = f" (request id {request_id})" if request_id else ""
        super().__init__(message + suffix)


class AuthError(SourceError):
    pass


class RateLimitError(SourceError):
    pass


class UpstreamError(SourceError):
    pass


class DeadlineExceeded(UpstreamError):
    pass


class PaginationError(SourceError):
    pass


class DeliveryError(LedgerError):
    pass


class Interrupted(LedgerError):
    pass
