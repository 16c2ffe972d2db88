"""Legacy models (davinci-002, babbage-002): prompt/completion files, counted and checked."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from ledger.errors import InputError, PricingError
from ledger.estimate import estimate
from ledger.tokens import get_encoding

CHAT = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
PAIRS = [
    {"prompt": "Company: Acme\nProduct: anvils\n\n###\n\n", "completion": " A sturdy anvil. END"},
    {"prompt": "", "completion": " An open-ended story about <|endoftext|> tokens. END"},
    {"prompt": "Translate: chat\n\n###\n\n", "completion": " le chat END"},
]
ON = date(2024, 6, 1)


def write(path: Path, lines: list[object]) -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path


def n(text: str) -> int:
    return len(get_encoding("cl100k_base").encode_ordinary(text))


@pytest.mark.parametrize(("model", "price"), [("davinci-002", "6.00"), ("babbage-002", "0.40")])
def test_prompt_completion_files_count_prompt_plus_completion_tokens(book, tmp_path, model, price):
    path = write(tmp_path / "legacy.jsonl", PAIRS * 4)  # 12: OpenAI wants at least 10
    result = estimate(book, model, path, at=ON, workers=1)
    expected = [n(p["prompt"]) + n(p["completion"]) for p in PAIRS * 4]
    assert result.ok and result.format == "prompt_completion"
    assert result.examples == 12 and result.billing_tokens == sum(expected)
    assert result.n_epochs == 8  # the cookbook rule: min(25, 100 // 12)
    assert result.trained_tokens == sum(expected) * 8
    assert result.cost == Decimal(result.trained_tokens) * Decimal(price) / 1_000_000
    assert result.warnings == []  # no role warnings: there are no messages
    assert result.distribution is not None and result.distribution.max == max(expected)


def test_legacy_format_errors_are_named_and_located(book, tmp_path):
    path = write(
        tmp_path / "bad.jsonl",
        [
            PAIRS[0],
            {"prompt": "x"},
            {"completion": "y"},
            {"prompt": 3, "completion": ""},
            {"prompt": "x", "completion": "y", "label": 1},
            "a string",
        ],
    )
    result = estimate(book, "davinci-002", path, at=ON, workers=1)
    assert not result.ok and result.examples == 1
    assert sorted((e.line, e.type) for e in result.errors) == [
        (0, "too_few_examples"),
        (2, "missing_completion"),
        (3, "missing_prompt"),
        (4, "missing_completion"),
        (4, "missing_prompt"),
        (5, "example_unrecognized_key"),
        (6, "data_type"),
    ]


def test_a_chat_file_is_refused_for_a_legacy_model(book, tmp_path):
    path = write(tmp_path / "chat.jsonl", [CHAT, CHAT])
    with pytest.raises(InputError) as refused:
        estimate(book, "babbage-002", path, at=ON, workers=1)
    (problem,) = refused.value.problems
    assert problem.where == f"{path}:1"
    assert "chat file" in problem.message and "prompt/completion" in problem.message


def test_a_prompt_completion_file_is_refused_for_a_chat_model(book, tmp_path):
    path = write(tmp_path / "legacy.jsonl", PAIRS)
    with pytest.raises(InputError, match="only babbage-002 and davinci-002 are fine-tuned"):
        estimate(book, "gpt-4o-mini", path, at=date(2024, 9, 1), workers=1)


def test_the_cli_refuses_with_one_clear_line(cli, tmp_path):
    path = write(tmp_path / "chat.jsonl", [CHAT])
    result = cli("estimate", str(path), "--model", "davinci-002", "--at", "2024-06-01")
    assert result.exit_code != 0
    assert "davinci-002 is fine-tuned from prompt/completion files" in result.stderr
    assert "Traceback" not in result.stderr
    ok = cli("estimate", str(write(tmp_path / "l.jsonl", PAIRS * 4)), "--model", "davinci-002")
    assert ok.exit_code == 0, ok.stderr
    assert "prompt_completion" in ok.stdout


def test_a_mixed_legacy_and_chat_file_is_a_format_error(book, tmp_path):
    path = write(tmp_path / "mixed.jsonl", [PAIRS[0], CHAT])
    result = estimate(book, "davinci-002", path, at=ON, workers=1)
    assert [(e.line, e.type) for e in result.errors] == [
        (0, "too_few_examples"),
        (2, "mixed_format"),
    ]


def test_the_book_prices_gpt_4_0613_and_gpt_4o_2024_05_13_but_not_their_fine_tunes(book, tmp_path):
    assert book.price_at("gpt-4-0613", date(2024, 1, 1)).as_strings() == {
        "input": "30.00",
        "output": "60.00",
    }
    assert book.price_at("gpt-4o-2024-05-13", date(2024, 6, 1)).as_strings() == {
        "input": "5.00",
        "output": "15.00",
    }
    assert book.price_at("gpt-4o-2024-05-13", date(2024, 5, 12)) is None
    assert book.price_at("ft:gpt-4-0613:acme::x1", date(2024, 1, 1)) is None  # unpriced
    assert book.resolve("gpt-4o").base_model == "gpt-4o-2024-08-06"
    with pytest.raises(PricingError, match="gpt-4-0613 has no fine-tuning price"):
        estimate(book, "gpt-4-0613", write(tmp_path / "c.jsonl", [CHAT]), at=ON)
