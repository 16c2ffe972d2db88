"""The read model: the only code that SELECTs from the ledger's tables.

Every view of the ledger (reports, FOCUS, reconcile, budgets, forecast, the HTTP API,
metrics) reads through the functions here. They return typed rows at a declared grain
with integer money (pico-USD) and the unpriced counts, never text; what a view does
with usage that has no price is decided once, in `ledger.spend`.
"""

from __future__ import annotations

# --- usage and training fees ---------------------------------------------------------


# --- billed costs (OpenAI's Costs API) -----------------------------------------------


# --- alert log -----------------------------------------------------------------------


# --- training estimates --------------------------------------------------------------
