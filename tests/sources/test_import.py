"""`ftledger import usage`: idempotent, exact, and all-or-nothing."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select

from ledger.store.tables import UsageEntry

HEADER = (
    "start_time,end_time,model,project_id,batch,num_model_requests,"
    "input_tokens,input_cached_tokens,output_tokens,note\n"
)
FT = "ft:gpt-4o-mini-2024-07-18:acme:support:A1"


def write(path: Path, *rows: str) -> Path:
    path.write_text(HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def entries(engine) -> list[tuple]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(
                    UsageEntry.model,
                    UsageEntry.batch,
                    UsageEntry.revision,
                    UsageEntry.input_tokens,
                    UsageEntry.cost_pico,
                    UsageEntry.base_cost_pico,
                ).order_by(UsageEntry.id)
            )
        )


def test_import_prices_exactly_and_twice_changes_nothing(engine, cli, tmp_path):
    f = write(
        tmp_path / "u.csv",
        f"1730419200,1730422800,{FT},proj_a,false,10,1000000,200000,500000,x",
        f"2024-11-01T01:00:00Z,2024-11-01T02:00:00Z,{FT},proj_a,true,3,1000000,0,0,",
        "1730419200,1730422800,mystery-model,proj_a,,1,100,0,5,",
    )
    first = cli("import", "usage", str(f), "--format", "json")
    assert first.exit_code == 0, first.stderr
    assert json.loads(first.stdout)["entries_posted"] == 3
    assert json.loads(first.stdout)["unpriced_models"] == ["mystery-model"]
    # 800k uncached x 0.30 + 200k cached x 0.15 + 500k out x 1.20 = $0.87; base: half that.
    # Batch: 1M x 0.30 x 0.5 = $0.15.
    assert entries(engine) == [
        (FT, False, 1, 1_000_000, 870_000_000_000, 435_000_000_000),
        (FT, True, 1, 1_000_000, 150_000_000_000, 75_000_000_000),
        ("mystery-model", False, 1, 100, None, None),
    ]
    second = cli("import", "usage", str(f), "--format", "json")
    assert json.loads(second.stdout)["entries_posted"] == 0
    assert len(entries(engine)) == 3


def test_revised_file_posts_only_the_difference(engine, cli, tmp_path):
    row = "1730419200,1730422800,{m},proj_a,false,1,{i},0,0,"
    cli("import", "usage", str(write(tmp_path / "a.csv", row.format(m=FT, i=1_000_000))))
    cli("import", "usage", str(write(tmp_path / "b.csv", row.format(m=FT, i=600_000))))
    rows = entries(engine)
    assert [(r.revision, r.input_tokens, r.cost_pico) for r in rows] == [
        (1, 1_000_000, 300_000_000_000),
        (2, -400_000, -120_000_000_000),
    ]
    with engine.connect() as conn:
        total = conn.execute(select(func.sum(UsageEntry.cost_pico))).scalar()
    assert total == 180_000_000_000  # 600k x $0.30/M


def test_bad_rows_reject_the_whole_file_with_every_line(engine, cli, tmp_path):
    f = write(
        tmp_path / "bad.csv",
        f"1730419200,1730422800,{FT},p,false,1,100,0,1,",
        f"1730419200,1730422800,{FT},q,false,1,-5,0,1,",
        f"soon,1730422800,{FT},p,false,1,5,0,1,",
        f"1730419200,1730422800,{FT},r,false,1,5,9,1,",
        f"1730419200,1730422800,{FT},s,maybe,1,5.5,0,1,",
    )
    result = cli("import", "usage", str(f))
    assert result.exit_code == 1
    for line in (3, 4, 5, 6):
        assert f"bad.csv:{line}:" in result.stderr
    assert "input_cached_tokens 9 exceeds input_tokens 5" in result.stderr
    assert "Traceback" not in result.stderr
    assert entries(engine) == []


def test_skip_invalid_imports_good_rows_and_writes_rejected(engine, cli, tmp_path):
    f = write(
        tmp_path / "mixed.csv",
        f"1730419200,1730422800,{FT},p,false,1,100,0,1,",
        f"1730419200,1730422800,{FT},q,false,1,abc,0,1,",
    )
    result = cli("import", "usage", str(f), "--skip-invalid", "--format", "json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["rejected"] == 1 and summary["entries_posted"] == 1
    rejected = Path(summary["rejected_file"]).read_text().splitlines()
    assert rejected[0].endswith("line,error") and ",3," in rejected[1]


def test_conflicting_duplicate_rows_are_rejected(engine, cli, tmp_path):
    f = write(
        tmp_path / "dup.csv",
        f"1730419200,1730422800,{FT},p,false,1,100,0,1,",
        f"1730419200,1730422800,{FT},p,false,1,100,0,1,",
        f"1730419200,1730422800,{FT},p,false,1,101,0,1,",
    )
    result = cli("import", "usage", str(f))
    assert result.exit_code == 1 and "dup.csv:4:" in result.stderr
    assert "dup.csv:3:" not in result.stderr  # an identical repeat is merged


def test_non_utf8_and_missing_columns_are_located(engine, cli, tmp_path):
    f = tmp_path / "latin1.csv"
    f.write_bytes(HEADER.encode() + b"1730419200,1730422800,caf\xe9,p,false,1,1,0,1,\n")
    result = cli("import", "usage", str(f))
    assert result.exit_code == 1 and "latin1.csv:2: not UTF-8" in result.stderr
    g = tmp_path / "cols.csv"
    g.write_text("start_time,model\n1,m\n")
    result = cli("import", "usage", str(g))
    assert "cols.csv:1: missing column 'end_time'" in result.stderr
