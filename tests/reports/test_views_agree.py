"""Every view of the ledger tells the same total for a month, to the last digit.

Hypothesis generates ledgers of priced, unpriced and repriced usage keys (some observed
more than once, so they hold difference entries) and training fees with and without a
price; the monthly report (every --by, JSON and HTML chart), what-if's actual side,
FOCUS, reconcile, an organisation-wide budget and the forecast must all agree with an
independent sum of what the price books say.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reports_seed import FT, MYSTERY, usage
from sqlalchemy import delete

from ledger import views
from ledger.alerts import evaluate
from ledger.allocation import UNALLOCATED, Allocation, Team
from ledger.budgets import Budget
from ledger.domain import JobObservation
from ledger.money import from_pico
from ledger.period import Month
from ledger.pricebook import PriceBook, load_pricebook
from ledger.pricing import UsagePricer
from ledger.reports.documents import focus_csv
from ledger.reports.render import document
from ledger.resources import bundled_config_dir
from ledger.store import read
from ledger.store.ledger import post_training_fee, post_usage
from ledger.store.reprice import reprice
from ledger.store.tables import TrainingFee, UsageEntry

MONTH = Month(2024, 11)
AFTER = int(datetime(2024, 12, 3, tzinfo=UTC).timestamp())  # the month is over
MODELS = (FT, "gpt-4o-2024-08-06", MYSTERY)
# First match wins; spend no team takes is "(unallocated)".
TEAMS = Allocation(
    (
        Team("keyed", api_keys=("key_a",)),
        Team("proj-b", projects=("proj_b",)),
        Team("gpt-4o", models=("gpt-4o-*",)),
    )
)
MYSTERY_PRICE = f"""
[[model]]
name = "{MYSTERY}"
encoding = "o200k_base"
  [[model.price]]
  effective = 2024-01-01
  input = "2.00"
  cached_input = "1.00"
  output = "8.00"
"""

observation = st.builds(
    lambda model, day, hour, project, batch, inp, cached_share, out, key, tier: usage(
        model,
        f"2024-11-{day:02d}T{hour:02d}:00",
        inp=inp,
        cached=inp * cached_share // 4,
        out=out,
        batch=batch,
        project=project,
        api_key=key,
        tier=tier,
    ),
    st.sampled_from(MODELS),
    st.sampled_from([1, 2, 30]),  # few days, so a day often holds several keys
    st.integers(0, 23),
    st.sampled_from(["proj_a", "proj_b", ""]),
    st.booleans(),
    st.integers(0, 5_000_000),
    st.integers(0, 4),
    st.integers(0, 2_000_000),
    st.sampled_from(["key_a", "key_b", ""]),
    st.sampled_from(["", "default", "flex", "priority"]),  # FT has no flex/priority price
)
fee = st.tuples(
    st.sampled_from([FT, "ft:mystery-base:acme::Z9"]), st.integers(1, 30), st.integers(1, 10**8)
)


def _book_with_mystery(tmp_path_factory) -> PriceBook:
    path = tmp_path_factory.mktemp("book") / "prices.toml"
    bundled = (bundled_config_dir() / "prices.toml").read_text(encoding="utf-8")
    path.write_text(bundled + MYSTERY_PRICE, encoding="utf-8")
    return load_pricebook(path)


def _all_totals(conn, book: PriceBook) -> dict[str, int]:
    """Each view's total for MONTH, in pico-USD."""
    totals: dict[str, int] = {}
    for by in ("model", "base-model", "project", "day", "team"):
        report = views.monthly(conn, book, MONTH, by, now=AFTER, allocation=TEAMS)
        totals[f"monthly --by {by}"] = report.total.known
        doc = document(report)
        totals[f"monthly --by {by} json"] = int(Decimal(doc["totals"]["total_cost"]).scaleb(12))
        # a row per group, each holding only its own spend: the rows add up to the total
        totals[f"monthly --by {by} rows"] = sum(
            int(Decimal(r["total_cost"] or 0).scaleb(12)) for r in doc["rows"]
        )
    chart = views.daily_chart(conn, MONTH)
    totals["html chart"] = sum(sum(day.values()) for day in chart.values())
    export = views.focus(conn, book, MONTH)
    totals["focus"] = export.total.known
    rows = list(csv.DictReader(io.StringIO(focus_csv(export))))
    totals["focus csv"] = sum(int(Decimal(r["EffectiveCost"]).scaleb(12)) for r in rows)
    tagged = views.focus(conn, book, MONTH, allocation=TEAMS)
    totals["focus by team"] = sum(r["EffectiveCost"] for r in tagged.rows)
    rec = views.reconciliation(conn, book, MONTH, Decimal(2), now=AFTER)
    totals["reconcile"] = int(rec.totals["computed_cost"].scaleb(12))
    org = Budget("org", Decimal(1000), "monthly", channels=("log",))
    status = evaluate(conn, org, datetime.fromtimestamp(AFTER, UTC), MONTH.period())
    totals["budget spend"] = status.spend
    at = datetime.fromtimestamp(AFTER, UTC)
    totals["budgets per team"] = sum(
        evaluate(
            conn, Budget(t, Decimal(1), "monthly", teams=(t,)), at, MONTH.period(), TEAMS
        ).spend
        for t in (*TEAMS.names, UNALLOCATED)
    )
    assert status.forecast is not None
    totals["forecast"] = status.forecast.point
    whatif = views.whatif(conn, book, MONTH, "gpt-4.1")
    fees = sum(f.cost.known for f in read.fee_rows(conn, MONTH.start, MONTH.end))
    totals["whatif actual + fees"] = whatif.totals["actual_cost"] + fees
    return totals


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    first=st.lists(observation, min_size=1, max_size=12),
    revised=st.lists(st.tuples(st.integers(0, 11), st.integers(0, 3_000_000)), max_size=4),
    fees=st.lists(fee, max_size=3),
    reprice_hours=st.integers(0, 30 * 24),
)
def test_every_view_tells_the_same_total(
    engine, book, tmp_path_factory, first, revised, fees, reprice_hours
):
    richer = _book_with_mystery(tmp_path_factory)
    with engine.begin() as conn:
        conn.execute(delete(UsageEntry))
        conn.execute(delete(TrainingFee))
    latest = {o.key: o for o in first}
    with engine.begin() as conn:
        post_usage(conn, latest, book)
    for index, extra in revised:  # a re-read with more (or fewer) output tokens
        obs = list(latest.values())[index % len(latest)]
        obs = type(obs)(obs.key, obs.requests, obs.input_tokens, obs.cached_tokens, extra)
        latest[obs.key] = obs
        with engine.begin() as conn:
            post_usage(conn, {obs.key: obs}, book)
    for n, (model, day, tokens) in enumerate(fees):
        finished = int(datetime(2024, 11, day, 12, tzinfo=UTC).timestamp()) + n
        base = model.split(":")[1]
        job = JobObservation(
            f"ftjob-{n}",
            base,
            model,
            "succeeded",
            "supervised",
            3,
            tokens,
            finished - 60,
            finished,
            "proj_a",
        )
        with engine.begin() as conn:
            post_training_fee(conn, job, book)
    cut = MONTH.start + reprice_hours * 3600  # a day may hold priced and unpriced keys
    with engine.begin() as conn:
        reprice(conn, richer, start=MONTH.start, end=cut)

    # What the price books say, summed independently of the ledger.
    plain, rich = UsagePricer(book), UsagePricer(richer)
    expected = 0
    for key, obs in latest.items():
        pricer = rich if key.bucket_start < cut else plain
        cost = pricer.price(obs)[0]
        expected += cost or 0
    # 3.00 per 1M trained tokens is 3,000,000 pico-USD a token; mystery-base has no price.
    expected += sum(tokens * 3_000_000 for model, _day, tokens in fees if model == FT)

    with engine.connect() as conn:
        totals = _all_totals(conn, book)
    assert totals == dict.fromkeys(totals, expected), (from_pico(expected), totals)
