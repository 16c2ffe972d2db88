"""`estimate --record`, then the job that trained the file: estimated against actual."""

from __future__ import annotations

import json
import shutil
from decimal import Decimal

from paths import DATA
from sqlalchemy import func, insert, select

from ledger.store.estimate_tables import TrainingEstimate
from ledger.store.estimates import compare_estimates, error_pct
from ledger.store.tables import FineTuningJob, TrainingFee


def _finished_job(engine, job_id: str, file_id: str, trained: int, cost_pico: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(FineTuningJob).values(
                id=job_id,
                project="",
                model="gpt-3.5-turbo-0613",
                fine_tuned_model="ft:gpt-3.5-turbo-0613:acme::X1",
                status="succeeded",
                method="supervised",
                n_epochs=20,
                trained_tokens=trained,
                created_at=1,
                finished_at=2,
                training_file=file_id,
                billing_note=None,
                updated_at=2,
            )
        )
        conn.execute(
            insert(TrainingFee).values(
                job_id=job_id,
                model="ft:gpt-3.5-turbo-0613:acme::X1",
                base_model="gpt-3.5-turbo-0613",
                method="supervised",
                trained_tokens=trained,
                training_price="8.00",
                cost_pico=cost_pico,
                finished_at=2,
                project="",
                price_version="v",
                recorded_at=2,
            )
        )


def test_record_then_compare_with_the_job(cli, engine, isolated):
    toy = isolated / "toy.jsonl"
    toy.write_bytes((DATA / "toy_chat_fine_tuning.jsonl").read_bytes() * 2)  # 10 examples
    args = (
        "estimate",
        str(toy),
        "--model",
        "gpt-3.5-turbo-0613",
        "--at",
        "2024-01-15",
        "--format",
        "json",
        "--record",
    )
    first = cli(*args)
    assert first.exit_code == 0, first.stderr
    recorded = json.loads(first.stdout)["recorded_id"]
    again = cli(*args, "--file-id", "file-abc")  # the same estimate, now with its upload id
    assert json.loads(again.stdout)["recorded_id"] == recorded
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(TrainingEstimate)).scalar_one() == 1

    [pending] = compare_estimates(engine)
    assert pending.job_id is None and pending.estimated_tokens == 86120

    _finished_job(engine, "ftjob-1", "file-abc", trained=90000, cost_pico=720_000_000_000)
    _finished_job(engine, "ftjob-other", "file-zzz", trained=5, cost_pico=1)
    [row] = compare_estimates(engine)
    assert row.job_id == "ftjob-1"
    assert (row.estimated_tokens, row.actual_tokens) == (86120, 90000)
    assert row.tokens_error_pct == Decimal("-4.31")
    assert row.estimated_cost == Decimal("0.68896") and row.actual_cost == Decimal("0.72")
    assert row.cost_error_pct == Decimal("-4.31")
    assert row.as_dict()["estimated_cost"] == "0.68896"


def test_file_id_needs_record(cli, isolated):
    toy = isolated / "toy.jsonl"
    shutil.copy(DATA / "toy_chat_fine_tuning.jsonl", toy)
    result = cli("estimate", str(toy), "--model", "gpt-4o-mini", "--file-id", "file-x")
    assert result.exit_code != 0


def test_error_pct():
    assert error_pct(110, 100) == Decimal("10.00")
    assert error_pct(Decimal("1"), Decimal("3")) == Decimal("-66.67")
    assert error_pct(5, None) is None and error_pct(5, 0) is None


def test_report_estimates_command(cli, engine, isolated):
    empty = cli("report", "estimates")
    assert "No recorded estimate has a finished job yet" in empty.stdout
    toy = isolated / "toy.jsonl"
    toy.write_bytes((DATA / "toy_chat_fine_tuning.jsonl").read_bytes() * 2)  # 10 examples
    cli(
        "estimate",
        str(toy),
        "--model",
        "gpt-3.5-turbo-0613",
        "--at",
        "2024-01-15",
        "--record",
        "--file-id",
        "file-abc",
    )
    _finished_job(engine, "ftjob-1", "file-abc", trained=86120, cost_pico=688_960_000_000)
    result = cli("report", "estimates", "--format", "json")
    assert result.exit_code == 0, result.stderr
    [row] = json.loads(result.stdout)["rows"]
    assert row["job_id"] == "ftjob-1" and row["tokens_error_pct"] == "0.00"
    assert row["actual_cost"] == row["estimated_cost"] == "0.68896"
    table = cli("report", "estimates")
    assert "ftjob-1" in table.stdout
    # the calibration line: how far recorded estimates were from the trained tokens
    assert "1 estimate(s) with a finished job: median error +0.00%" in table.stdout
