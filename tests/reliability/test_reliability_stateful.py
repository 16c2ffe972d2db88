"""A Hypothesis state machine over the ledger: observations, revisions up and down,
re-polls, CSV imports and price-book changes in random order.

After every step: each key's entries sum to its latest observation (counts, and the
cost of that observation at the prices in force when it was posted), a re-posting adds
nothing, and the monthly report equals a recomputation from the model's own numbers.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import func, select, text

from ledger import views
from ledger.domain import UsageKey, UsageObservation
from ledger.importer import import_usage
from ledger.period import Month
from ledger.pricebook import PriceBook, load_pricebook
from ledger.pricing import UsagePricer
from ledger.resources import bundled_config_dir
from ledger.store.ledger import post_usage
from ledger.store.tables import USAGE_KEY_COLUMNS, UsageEntry

JUNE = 1_748_736_000  # 2025-06-01T00:00:00Z
MODELS = ("ft:gpt-4o-mini-2024-07-18:acme:support:A1b2", "gpt-4o-mini-2024-07-18")
# The import's keys are another project's: the same dimensions and hour from two sources
# would be one usage counted twice, which the import refuses (tests/test_overlap.py).
KEYS = [
    UsageKey(source, JUNE + hour * 3600, JUNE + (hour + 1) * 3600, model, project, "", "", batch)
    for source, project in (("openai", "proj_a"), ("import", "proj_b"))
    for hour in (0, 5)
    for model in MODELS
    for batch in (False, True)
]
counts = st.tuples(
    st.integers(0, 50), st.integers(0, 10**7), st.integers(0, 10**6), st.integers(0, 10**7)
)


def _books() -> list[PriceBook]:
    """The bundled book, and one whose batch discount changed (a price-book edit)."""
    path = bundled_config_dir() / "prices.toml"
    changed = Path(tempfile.mkdtemp()) / "prices.toml"
    source = path.read_text(encoding="utf-8")
    assert 'batch_discount = "0.5"' in source
    changed.write_text(source.replace('batch_discount = "0.5"', 'batch_discount = "0.4"'))
    return [load_pricebook(path), load_pricebook(changed)]


BOOKS = _books()


def _observation(key: UsageKey, c: tuple[int, int, int, int]) -> UsageObservation:
    requests, inp, cached, out = c
    return UsageObservation(key, requests, inp, min(cached, inp), out)


class LedgerMachine(RuleBasedStateMachine):
    engine = None  # set per test run (SQLite or PostgreSQL)

    def __init__(self) -> None:
        super().__init__()
        with self.engine.begin() as conn:
            conn.execute(text("DELETE FROM usage_entries"))
        self.book = BOOKS[0]
        self.latest: dict[UsageKey, UsageObservation] = {}
        self.cost: dict[UsageKey, int | None] = {}
        self.changes: dict[UsageKey, int] = defaultdict(int)
        self.tmp = Path(tempfile.mkdtemp())

    def _expect(self, obs: UsageObservation) -> None:
        held = self.latest.get(obs.key)
        if held is not None and held.same_counts(obs):
            return  # the ledger posts nothing, and keeps the cost it had
        self.latest[obs.key] = obs
        self.cost[obs.key] = UsagePricer(self.book).price(obs)[0]
        self.changes[obs.key] += 1

    def _post(self, observations: list[UsageObservation]) -> None:
        with self.engine.begin() as conn:
            post_usage(conn, {o.key: o for o in observations}, self.book)
        for obs in observations:
            self._expect(obs)

    @rule(key=st.sampled_from([k for k in KEYS if k.source == "openai"]), c=counts)
    def observe(self, key: UsageKey, c: tuple[int, int, int, int]) -> None:
        self._post([_observation(key, c)])

    @rule(
        key=st.sampled_from([k for k in KEYS if k.source == "openai"]),
        delta=st.integers(-(10**6), 10**6),
    )
    def revise(self, key: UsageKey, delta: int) -> None:
        """OpenAI revises a bucket it reported, up or down."""
        held = self.latest.get(key)
        if held is None:
            return
        inp = max(held.input_tokens + delta, 0)
        out = max(held.output_tokens - delta, 0)
        self._post([UsageObservation(key, held.requests, inp, min(held.cached_tokens, inp), out)])

    @rule()
    def repoll(self) -> None:
        """Re-reading the lookback window posts the same observations again: nothing new."""
        before = self._entries()
        self._post([o for k, o in self.latest.items() if k.source == "openai"])
        assert self._entries() == before

    @rule(
        rows=st.lists(
            st.tuples(st.sampled_from([k for k in KEYS if k.source == "import"]), counts),
            min_size=1,
            max_size=4,
            unique_by=lambda r: r[0],
        )
    )
    def import_csv(self, rows: list[tuple[UsageKey, tuple[int, int, int, int]]]) -> None:
        path = self.tmp / "usage.csv"
        lines = [
            "start_time,end_time,model,project_id,batch,num_model_requests,"
            "input_tokens,input_cached_tokens,output_tokens"
        ]
        observations = [_observation(k, c) for k, c in rows]
        for o in observations:
            k = o.key
            lines.append(
                f"{k.bucket_start},{k.bucket_end},{k.model},{k.project_id},{str(k.batch).lower()},"
                f"{o.requests},{o.input_tokens},{o.cached_tokens},{o.output_tokens}"
            )
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        import_usage(self.engine, self.book, path)
        for obs in observations:
            self._expect(obs)

    @rule(which=st.sampled_from([0, 1]))
    def change_price_book(self, which: int) -> None:
        self.book = BOOKS[which]

    def _entries(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(UsageEntry)).scalar_one())

    @invariant()
    def every_key_sums_to_its_latest_observation(self) -> None:
        cols = [getattr(UsageEntry, c) for c in USAGE_KEY_COLUMNS]
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    *cols,
                    func.sum(UsageEntry.requests),
                    func.sum(UsageEntry.input_tokens),
                    func.sum(UsageEntry.cached_tokens),
                    func.sum(UsageEntry.output_tokens),
                    func.sum(UsageEntry.cost_pico),
                    func.count(),
                ).group_by(*cols)
            ).all()
        n = len(cols)
        held = {UsageKey(*r[:n]): tuple(int(v) for v in r[n:]) for r in rows}
        expected = {
            k: (o.requests, o.input_tokens, o.cached_tokens, o.output_tokens, self.cost[k])
            for k, o in self.latest.items()
        }
        assert {k: v[:5] for k, v in held.items()} == expected
        assert {k: v[5] for k, v in held.items()} == dict(self.changes)

    @invariant()
    def the_report_equals_a_recomputation(self) -> None:
        with self.engine.connect() as conn:
            report = views.monthly(conn, self.book, Month.parse("2025-06"))
        want: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
        for key, obs in self.latest.items():
            acc = want[key.model]
            for i, v in enumerate(
                (obs.requests, obs.input_tokens, obs.cached_tokens, obs.output_tokens)
            ):
                acc[i] += v
            acc[4] += self.cost[key] or 0
        got = {
            r["model"]: [
                r["requests"],
                r["input_tokens"],
                r["cached_input_tokens"],
                r["output_tokens"],
                r["usage_cost"],
            ]
            for r in report.rows
        }
        assert got == {m: [*v[:4], v[4]] for m, v in want.items()}
        assert report.total.known == sum(v[4] for v in want.values())


def test_the_ledger_always_equals_the_latest_observations(engine):
    LedgerMachine.engine = engine
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=12,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            database=None,
        ),
    )
