"""`ftledger import usage` against hostile files: each bad value is a located error (or a
clean one-line failure) and the ledger is left unchanged; a BOM is accepted."""

from __future__ import annotations

import csv
import errno
from pathlib import Path

import pytest
from sqlalchemy import event, func, select

from ledger.store.tables import UsageEntry

HEADER = "start_time,end_time,model,project_id,service_tier,input_tokens,output_tokens,note"
FT = "ft:gpt-4o-2024-08-06:acme:support:A1"
GOOD = f"1730419200,1730422800,{FT},proj_a,,1000,10,ok"


def write(path: Path, *rows: str, prefix: str = "") -> Path:
    path.write_text(prefix + HEADER + "\n" + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def held(engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(UsageEntry)).scalar_one())


def refused(cli, engine, path: Path, *args: str) -> str:
    """Import `path` expecting a one-line refusal that leaves the ledger unchanged."""
    before = held(engine)
    result = cli("import", "usage", str(path), *args)
    assert result.exit_code != 0, result.stdout
    assert "Traceback" not in result.stderr
    assert held(engine) == before
    return result.stderr


def test_a_utf8_bom_from_excel_is_accepted(engine, cli, tmp_path):
    path = write(tmp_path / "excel.csv", GOOD, prefix="\ufeff")
    result = cli("import", "usage", str(path))
    assert result.exit_code == 0, result.stderr
    assert held(engine) == 1


@pytest.mark.parametrize(
    ("row", "column"),
    [
        (f"1730419200,1730422800,{FT}\x00x,proj_a,,1000,10,", "model"),
        (f"1730419200,1730422800,{FT},proj\x00a,,1000,10,", "project_id"),
        (f"1730419200,1730422800,{FT},proj_a,fl\x00ex,1000,10,", "service_tier"),
        (f"1730419200,1730422800,{FT},proj_a,,1000\x00,10,", "input_tokens"),
        (f"1730419200,1730422800,{FT},proj_a,{'f' * 33},1000,10,", "service_tier"),
        (f"1730419200,1730422800,{FT}{'x' * 250},proj_a,,1000,10,", "model"),
        (f"1730419200,1730422800,{FT},{'p' * 129},,1000,10,", "project_id"),
        (f"1730419200,1730422800,{FT},proj_a,,1000²,10,", "input_tokens"),
        (f"1730419200,1730422800,{FT},proj_a,,²,10,", "input_tokens"),
        (f"1730419200,1730422800,{FT},proj_a,,１０００,10,", "input_tokens"),
        (f"1730419200,1730422800,{FT},proj_a,,1_000,10,", "input_tokens"),
        (f"1730419200,1730422800,{FT},proj_a,,1000,1_0,", "output_tokens"),
        (f"1730419200,1730422800,{FT},proj_a,,1000,１0,", "output_tokens"),
        (f"17304192００,1730422800,{FT},proj_a,,1000,10,", "start_time"),
    ],
)
def test_a_bad_value_is_refused_with_its_line_and_column(engine, cli, tmp_path, row, column):
    path = write(tmp_path / "bad.csv", GOOD, row)
    message = refused(cli, engine, path)
    assert f"{path}:3" in message and column in message, message


def test_counts_whose_cost_overflows_an_entry_are_refused(engine, cli, tmp_path):
    # 9e18 input tokens fit in BIGINT, but at $3.75 per 1M they cost $3.4e13.
    big = f"1730419200,1730422800,{FT},proj_a,,9000000000000000000,10,"
    message = refused(cli, engine, write(tmp_path / "big.csv", GOOD, big))
    assert f"{tmp_path / 'big.csv'}:3" in message and "input_tokens" in message, message
    assert "$9.2M" in message, message


@pytest.mark.parametrize("source", ["s" * 33, "imp\x00ort"])
def test_a_bad_source_name_is_refused(engine, cli, tmp_path, source):
    message = refused(cli, engine, write(tmp_path / "u.csv", GOOD), "--source", source)
    assert "--source" in message, message


def test_skip_invalid_keeps_the_inputs_columns(engine, cli, tmp_path):
    bad_count = f"1730419201,1730422800,{FT},proj_a,,lots,10,keep me"
    short = f"1730419202,1730422800,{FT}"
    path = write(tmp_path / "mixed.csv", GOOD, bad_count, short, prefix="\ufeff")
    result = cli("import", "usage", str(path), "--skip-invalid")
    assert result.exit_code == 0, result.stderr
    with (tmp_path / "mixed.rejected.csv").open(encoding="utf-8", newline="") as handle:
        header, *rows = list(csv.reader(handle))
    assert header == [*HEADER.split(","), "line", "error"]
    assert [r[: len(header) - 2] for r in rows] == [
        bad_count.split(","),
        [*short.split(","), *[""] * 5],
    ]
    assert [r[-2] for r in rows] == ["3", "4"]
    assert all(len(r) == len(header) for r in rows)


def test_a_full_database_disk_is_one_line_and_changes_nothing(engine, cli, tmp_path):
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's max_page_count stands in for a full disk")
    rows = [
        f"{1730419200 + 3600 * i},{1730422800 + 3600 * i},{FT},p{i},,1000,10," for i in range(3000)
    ]
    path = write(tmp_path / "many.csv", *rows)
    from ledger.errors import LedgerError
    from ledger.importer import import_usage
    from ledger.pricebook import load_pricebook
    from ledger.resources import bundled_config_dir

    book = load_pricebook(bundled_config_dir() / "prices.toml")
    with engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar()

    @event.listens_for(engine, "connect")
    def small(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        dbapi_conn.execute(f"PRAGMA max_page_count = {int(pages) + 2}")

    engine.dispose()
    with pytest.raises(LedgerError) as caught:
        import_usage(engine, book, path)
    assert "full" in str(caught.value) and "\n" not in str(caught.value)
    event.remove(engine, "connect", small)
    engine.dispose()
    assert held(engine) == 0


def test_a_full_disk_writing_the_rejected_file_changes_nothing(engine, cli, tmp_path, monkeypatch):
    import ledger.sources.csv_usage as csv_usage

    class FullWriter:
        def __init__(self, *_args: object) -> None:
            pass

        def writerow(self, _row: object) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(csv_usage.csv, "writer", FullWriter)
    path = write(tmp_path / "u.csv", GOOD, f"1730419201,1730422800,{FT},proj_a,,x,10,")
    message = refused(cli, engine, path, "--skip-invalid")
    assert "mixed" not in message and "u.rejected.csv: cannot write: No space left" in message
