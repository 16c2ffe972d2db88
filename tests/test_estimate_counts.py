"""Token counts, epochs and cost equal the cookbook method, exactly, on files nobody wrote."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from datetime import date
from decimal import Decimal

import pytest
from estimate_reference import cookbook_count, random_dataset, reference_encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paths import DATA, ROOT

from ledger.estimate import Distribution, default_epochs, estimate
from ledger.scan import scan_file


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("encodings"))


def test_cookbook_toy_file_reproduces_the_notebook(book, tmp_path):
    result = estimate(
        book, "gpt-3.5-turbo-0613", DATA / "toy_chat_fine_tuning.jsonl", at=date(2024, 1, 15)
    )
    assert result.encoding == "cl100k_base"
    assert result.max_tokens_per_example == 4096
    assert result.examples == 5
    assert result.billing_tokens == 4306
    assert result.n_epochs == 20
    assert result.trained_tokens == 86120
    assert result.examples_truncated == 1
    assert result.training_price == Decimal("8.00")
    assert result.cost == Decimal("0.68896")  # 86,120 × $8 / 1M, exact
    # the figures are the notebook's, and OpenAI would refuse the file: 5 < 10 examples
    assert [(e.line, e.type) for e in result.errors] == [(0, "too_few_examples")]
    assert not result.ok


@pytest.mark.parametrize("encoding", ["cl100k_base", "o200k_base"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_generated_datasets_match_the_reference_exactly(tmp_path, scratch, encoding, seed):
    data = random_dataset(seed, 60)
    path = tmp_path / "train.jsonl"
    path.write_bytes(data)
    ref = cookbook_count(data, reference_encoding(encoding, scratch), cap=700)
    assert max(ref.per_example) > 700  # truncation is exercised
    for workers, chunk in ((1, 1 << 20), (2, 3000)):
        stats = scan_file(path, encoding, 700, workers=workers, chunk_bytes=chunk)
        assert not stats.error_counts, stats.errors[:3]
        assert stats.examples == ref.examples
        assert stats.dataset_tokens == ref.dataset_tokens
        assert stats.billing_tokens == ref.billing_tokens
        assert stats.histogram == Counter(ref.per_example)
        assert stats.truncated == sum(1 for n in ref.per_example if n > 700)


@pytest.mark.parametrize(
    ("model", "encoding", "cap", "price"),
    [
        ("gpt-3.5-turbo-0125", "cl100k_base", 16385, "8.00"),
        ("gpt-4o-mini", "o200k_base", 65536, "3.00"),
        ("ft:gpt-4.1-nano-2025-04-14:acme:x:Y1", "o200k_base", 65536, "1.50"),
    ],
)
def test_estimate_end_to_end_matches_reference(
    book, tmp_path, scratch, model, encoding, cap, price
):
    data = random_dataset(11, 40)
    path = tmp_path / "train.jsonl"
    path.write_bytes(data)
    ref = cookbook_count(data, reference_encoding(encoding, scratch), cap)
    result = estimate(book, model, path, at=date(2025, 6, 1))
    assert (result.encoding, result.max_tokens_per_example) == (encoding, cap)
    assert result.examples == ref.examples == 40
    assert result.billing_tokens == ref.billing_tokens
    assert result.n_epochs == 3  # 100 <= 3 × 40 <= 25,000
    assert result.trained_tokens == ref.billing_tokens * result.n_epochs
    assert result.cost == Decimal(result.trained_tokens) * Decimal(price) / 10**6


def test_truncation_against_the_real_o200k_cap(book, tmp_path, scratch):
    """An example over gpt-4o-mini's 65,536 tokens is billed at the cap."""
    big = " ".join(f"word{i} 🚀" for i in range(40000))
    lines = [
        {"messages": [{"role": "user", "content": big}, {"role": "assistant", "content": "ok"}]},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
    ]
    data = "\n".join(json.dumps(x) for x in lines).encode()
    path = tmp_path / "big.jsonl"
    path.write_bytes(data)
    ref = cookbook_count(data, reference_encoding("o200k_base", scratch), 65536)
    assert ref.per_example[0] > 65536
    result = estimate(book, "gpt-4o-mini", path, epochs=2)
    assert result.billing_tokens == ref.billing_tokens == 65536 + ref.per_example[1]
    assert result.examples_truncated == 1
    assert result.trained_tokens == 2 * ref.billing_tokens
    assert [w.line for w in result.warnings if w.type == "truncated"] == [1]


_text = st.text(st.characters(codec="utf-8"), max_size=60)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    contents=st.lists(st.tuples(_text, _text), min_size=1, max_size=4),
    ascii_escapes=st.booleans(),
)
def test_any_unicode_text_counts_like_the_reference(tmp_path, scratch, contents, ascii_escapes):
    examples = [
        {
            "messages": [
                {"role": "user", "content": u or "x"},
                {"role": "assistant", "content": a or "y"},
            ]
        }
        for u, a in contents
    ]
    data = "\n".join(json.dumps(e, ensure_ascii=ascii_escapes) for e in examples).encode()
    path = tmp_path / "h.jsonl"
    path.write_bytes(data)
    for encoding in ("cl100k_base", "o200k_base"):
        ref = cookbook_count(data, reference_encoding(encoding, scratch), None)
        stats = scan_file(path, encoding, None, workers=1)
        assert stats.dataset_tokens == ref.dataset_tokens
        assert stats.examples == ref.examples


def test_lone_surrogate_escapes_are_counted_like_tiktoken(tmp_path, scratch):
    data = (
        b'{"messages":[{"role":"user","content":"a\\ud83d b"},{"role":"assistant","content":"c"}]}'
    )
    path = tmp_path / "s.jsonl"
    path.write_bytes(data)
    stats = scan_file(path, "cl100k_base", None, workers=1)
    assert (
        stats.dataset_tokens
        == cookbook_count(data, reference_encoding("cl100k_base", scratch), None).dataset_tokens
    )


def test_line_separators_inside_strings_do_not_split_lines(tmp_path):
    text = "a\u2028b\u2029c\u0085d"
    line = json.dumps(
        {"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}]},
        ensure_ascii=False,
    )
    path = tmp_path / "sep.jsonl"
    path.write_bytes(((line + "\r\n") * 3 + "\n\n").encode())
    stats = scan_file(path, "o200k_base", None, workers=1)
    assert (stats.examples, stats.lines, dict(stats.error_counts)) == (3, 3, {})


def test_dpo_file_uses_the_documented_formula(book, tmp_path, scratch):
    enc = reference_encoding("o200k_base", scratch)

    def n(text: str) -> int:
        return len(enc.encode(text, disallowed_special=()))

    line = {
        "input": {"messages": [{"role": "user", "content": "Capital of France?"}]},
        "preferred_output": [{"role": "assistant", "content": "Paris."}],
        "non_preferred_output": [{"role": "assistant", "content": "Lyon, I think."}],
    }
    path = tmp_path / "dpo.jsonl"
    path.write_text((json.dumps(line) + "\n") * 10)  # 10 lines: the fewest OpenAI accepts
    prompt = 3 + n("user") + n("Capital of France?") + 3
    expected = (prompt + 3 + n("assistant") + n("Paris.")) + (
        prompt + 3 + n("assistant") + n("Lyon, I think.")
    )
    result = estimate(book, "gpt-4o-mini", path)
    assert result.format == "dpo"
    assert result.ok
    assert result.dataset_tokens == result.billing_tokens == 10 * expected


@pytest.mark.parametrize(
    ("n", "epochs"),
    [(1, 25), (4, 25), (5, 20), (33, 3), (34, 3), (8333, 3), (8334, 2), (12501, 1), (10**6, 1)],
)
def test_default_epochs_rule(n, epochs):
    assert default_epochs(n) == epochs


def test_distribution_is_nearest_rank_with_a_true_median():
    values = [10, 20, 30, 40] + [100] * 16  # 20 examples
    dist = Distribution.of(Counter(values))
    assert dist is not None
    assert (dist.min, dist.max, dist.p5, dist.p95) == (10, 100, 10, 100)
    assert dist.median == 100
    assert dist.mean == Decimal("85.00")
    even = Distribution.of(Counter([1, 2, 3, 4]))
    assert even is not None and even.median == Decimal("2.5") and even.p95 == 4
    assert Distribution.of(Counter()) is None


def test_copy_of_toy_file_is_the_cookbooks(tmp_path):
    shared = ROOT.parent / "shared/data/openai-cookbook"
    if not shared.is_dir():
        pytest.skip("shared/ not beside the checkout")
    shutil.copy(shared / "toy_chat_fine_tuning.jsonl", tmp_path / "t.jsonl")
    assert (tmp_path / "t.jsonl").read_bytes() == (DATA / "toy_chat_fine_tuning.jsonl").read_bytes()


def test_progress_reports_every_byte_once(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(random_dataset(5, 30))
    seen: list[int] = []
    for workers in (1, 2):
        seen.clear()
        scan_file(
            path, "cl100k_base", None, workers=workers, chunk_bytes=2048, progress=seen.append
        )
        assert sum(seen) == path.stat().st_size and len(seen) > 3
