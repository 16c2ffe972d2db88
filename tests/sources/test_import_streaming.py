"""A usage file bigger than one batch imports exactly as if it were read whole.

The importer streams (ledger/importer.py): these tests make its batches and its key
window tiny so that a handful of rows crosses every boundary.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ledger.domain import UsageKey, UsageObservation
from ledger.errors import InputError
from ledger.importer import import_usage
from ledger.sources.csv_usage import SeenKeys, Unordered
from ledger.store.tables import UsageEntry

HEADER = "start_time,end_time,model,project_id,input_tokens,output_tokens\n"
JUNE = 1_748_736_000  # 2025-06-01T00:00:00Z
MODEL = "ft:gpt-4o-mini-2024-07-18:acme:support:A1"
SMALL = {"batch_rows": 4, "seen_window": 6}
pytestmark = pytest.mark.usefixtures("either_reader")


def row(hour: int, project: str, inp: int, out: int = 0) -> str:
    start = JUNE + hour * 3600
    return f"{start},{start + 3600},{MODEL},{project},{inp},{out}"


def write(path: Path, rows: list[str]) -> Path:
    path.write_text(HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def many_rows() -> list[str]:
    """30 rows in time order, ten hours of three projects; input = 1000*hour + project."""
    return [row(h, f"p{p}", 1000 * h + p, p) for h in range(10) for p in range(3)]


def ledger(engine) -> dict[tuple[int, str], tuple[int, int, int, int]]:
    """Per key (hour, project): entries, highest revision, summed input and cost."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                UsageEntry.bucket_start,
                UsageEntry.project_id,
                func.count(),
                func.max(UsageEntry.revision),
                func.sum(UsageEntry.input_tokens),
                func.sum(UsageEntry.cost_pico),
            ).group_by(UsageEntry.bucket_start, UsageEntry.project_id)
        )
        return {((s - JUNE) // 3600, p): (int(n), r, int(i), int(c)) for s, p, n, r, i, c in rows}


def test_many_batches_post_like_one_with_repeats_and_a_revised_key(engine, book, tmp_path):
    # The ledger already holds hour 2 of p1, with other counts: the file revises it.
    import_usage(engine, book, write(tmp_path / "seed.csv", [row(2, "p1", 7)]))
    rows = many_rows()
    rows.insert(13, rows[1])  # an identical repeat two batches later: merged
    rows.append(rows[4])  # ... and one after its hour left the key window: merged
    rows.append(row(1, "p2", 5))  # other counts for a key seen batches ago: a bad line
    f = write(tmp_path / "big.csv", rows)

    result = import_usage(engine, book, f, skip_invalid=True, **SMALL)

    assert (result.rows, result.rejected) == (33, 1)
    assert (result.posted.observed, result.posted.posted, result.posted.unchanged) == (30, 30, 0)
    assert result.rejected_file is not None
    assert ",34,the same bucket and dimensions appear earlier" in result.rejected_file.read_text()
    held = ledger(engine)
    assert len(held) == 30
    # Every key sums to its first observation in the file; the revised one has 2 entries.
    for (hour, project), (entries, revision, inp, _cost) in held.items():
        p = int(project[1:])
        assert inp == 1000 * hour + p
        assert (entries, revision) == ((2, 2) if (hour, p) == (2, 1) else (1, 1))
    # 2001 input + 1 output token at $0.30/$1.20 per 1M: the difference from the seed's 7.
    assert held[(2, "p1")][3] == 2001 * 300_000 + 1 * 1_200_000

    again = import_usage(engine, book, f, skip_invalid=True, **SMALL)
    assert (again.posted.posted, again.posted.unchanged) == (0, 30)
    assert ledger(engine) == held


def test_a_key_back_to_its_first_counts_posts_the_difference(engine, book, tmp_path):
    # Its first entry equals the file again, but the key sums to the second reading:
    # only the sums of all its entries decide (on PostgreSQL a first entry equal to
    # the observation is not enough when later revisions exist).
    first = write(tmp_path / "first.csv", [row(1, "p1", 100), row(1, "p2", 50)])
    second = write(tmp_path / "second.csv", [row(1, "p1", 130), row(1, "p2", 50)])
    import_usage(engine, book, first)
    import_usage(engine, book, second)

    back = import_usage(engine, book, first)

    assert (back.posted.posted, back.posted.unchanged) == (1, 1)
    held = ledger(engine)
    assert held[(1, "p1")] == (3, 3, 100, 100 * 300_000)
    assert held[(1, "p2")] == (1, 1, 50, 50 * 300_000)
    again = import_usage(engine, book, first)
    assert (again.posted.posted, again.posted.unchanged) == (0, 2)


def test_a_bad_line_in_the_last_batch_posts_nothing(engine, book, tmp_path):
    import_usage(engine, book, write(tmp_path / "seed.csv", [row(2, "p1", 7)]))
    before = ledger(engine)
    rows = [*many_rows(), row(10, "p0", 5).replace(",5,", ",5.5,")]
    f = write(tmp_path / "bad.csv", rows)

    with pytest.raises(InputError) as caught:
        import_usage(engine, book, f, **SMALL)

    assert [str(p) for p in caught.value.problems] == [
        f"{f}:32: input_tokens '5.5' is not a non-negative integer"
    ]
    assert ledger(engine) == before


def test_conflicting_repeats_across_batches_are_all_reported(engine, book, tmp_path):
    rows = many_rows()
    rows.insert(20, row(0, "p0", 1))  # hour 0 is still in the window
    rows.append(row(1, "p1", 1))  # hour 1 has left it: found again after a spilling pass
    f = write(tmp_path / "dup.csv", rows)

    with pytest.raises(InputError) as caught:
        import_usage(engine, book, f, **SMALL)

    reason = "the same bucket and dimensions appear earlier with other counts"
    assert [str(p) for p in caught.value.problems] == [f"{f}:22: {reason}", f"{f}:33: {reason}"]
    assert ledger(engine) == {}


def test_a_file_out_of_time_order_is_exact(engine, book, tmp_path):
    rows = many_rows()
    shuffled = rows[::-1] + rows[::2]  # every hour twice, far apart: identical repeats
    f = write(tmp_path / "late.csv", shuffled)

    result = import_usage(engine, book, f, **SMALL)

    assert (result.posted.posted, result.rejected) == (30, 0)
    assert all(v[:2] == (1, 1) for v in ledger(engine).values())


def obs(hour: int, inp: int) -> UsageObservation:
    key = UsageKey("import", JUNE + hour * 3600, JUNE + hour * 3600 + 3600, MODEL)
    return UsageObservation(key, 1, inp, 0, 0)


def test_seen_keys_forget_in_time_order_and_spill_otherwise():
    seen = SeenKeys(window=2)
    for hour in range(4):
        assert seen.check(obs(hour, 1)) is None
    assert seen.check(obs(3, 1)) is True
    assert seen.check(obs(3, 2)) is False
    with pytest.raises(Unordered):
        seen.check(obs(0, 1))

    spilling = SeenKeys(window=2, spill=True)
    for hour in range(4):
        assert spilling.check(obs(hour, 1)) is None
    assert spilling.check(obs(0, 1)) is True
    assert spilling.check(obs(0, 2)) is False
    assert spilling.check(obs(9, 1)) is None
    spilling.close()


def readers() -> int:
    """This test's reading processes (sources.csv_process) still alive (Linux's /proc)."""
    count = 0
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            running = b"child_main" in (proc / "cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile
        count += parent == os.getpid() and running
    return count


def test_the_reading_process_reads_as_this_one_does_and_stops_when_closed(book, tmp_path):
    from ledger.sources.csv_process import StagedCsvStream

    rows = many_rows()
    rows[7] = row(2, "p1", -5)  # a bad line (line 9) between good ones
    f = write(tmp_path / "u.csv", rows)
    here = StagedCsvStream(f, book, seen_window=6, child=False)
    expected = list(here.batches(4))
    assert [r[:3] for r in expected[0]] == [
        ("import", JUNE + s, JUNE + s + 3600) for s in (0, 0, 0, 3600)
    ]
    there = StagedCsvStream(f, book, seen_window=6, child=True)
    assert list(there.batches(4)) == expected
    assert there.rows == here.rows == 30 and there.header == HEADER.strip().split(",")
    assert there.problems == here.problems and len(there.problems) == 1
    assert there.problems[0].where.endswith("u.csv:9")
    assert there.rejected == here.rejected

    batches = StagedCsvStream(f, book, child=True).batches(2)
    next(batches)
    assert readers() == 1
    batches.close()  # the reading process is stopped, not left behind
    assert readers() == 0

    (tmp_path / "bad.csv").write_text("start_time,model\n1,x\n", encoding="utf-8")
    with pytest.raises(InputError, match="missing column 'end_time'"):
        list(StagedCsvStream(tmp_path / "bad.csv", book, child=True).batches(2))
