"""A malformed training file: every error found, named as the cookbook names it, located by line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.dataset import MAX_LISTED
from ledger.scan import read_owned, scan_file

GOOD = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}

# (line content, expected error types on that line)
CASES: list[tuple[bytes, set[str]]] = [
    (json.dumps(GOOD).encode(), set()),
    (b'{"messages": [', {"invalid_json"}),
    (b"[1, 2]", {"data_type"}),
    (b'{"text": "x"}', {"missing_messages_list"}),
    (b'{"messages": []}', {"missing_messages_list"}),
    (
        b'{"messages": [{"content": "x"}, {"role": "assistant", "content": "y"}]}',
        {"message_missing_key", "unrecognized_role"},
    ),
    (
        b'{"messages": [{"role": "user", "content": "x", "mood": 1},'
        b' {"role": "assistant", "content": "y"}]}',
        {"message_unrecognized_key"},
    ),
    (
        b'{"messages": [{"role": "bot", "content": "x"}, {"role": "assistant", "content": "y"}]}',
        {"unrecognized_role"},
    ),
    (
        b'{"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "y"}]}',
        {"missing_content"},
    ),
    (
        b'{"messages": [{"role": "user", "content": 42}, {"role": "assistant", "content": "y"}]}',
        {"missing_content"},
    ),
    (b'{"messages": [{"role": "user", "content": "x"}]}', {"example_missing_assistant_message"}),
    (b'{"messages": ["text", {"role": "assistant", "content": "y"}]}', {"data_type"}),
    (
        b'{"messages": [{"role": "user", "content": "caf\xe9"},'
        b' {"role": "assistant", "content": "y"}]}',
        {"invalid_json"},
    ),
    (b"", set()),  # blank lines are ignored
    (
        b'{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": null,'
        b' "function_call": {"name": "f", "arguments": "{}"}}]}',
        set(),
    ),
    (
        b'{"messages": [{"role": "user", "content": "x", "weight": 0},'
        b' {"role": "assistant", "content": "y", "weight": 1}]}',
        set(),
    ),
]


def _write(path: Path, eol: bytes = b"\n") -> None:
    path.write_bytes(eol.join(line for line, _ in CASES) + eol)


def _expected() -> dict[int, set[str]]:
    return {i + 1: kinds for i, (_, kinds) in enumerate(CASES) if kinds}


@pytest.mark.parametrize(("workers", "chunk"), [(1, 1 << 20), (2, 64)])
@pytest.mark.parametrize("eol", [b"\n", b"\r\n"])
def test_every_error_is_located_by_line(tmp_path, workers, chunk, eol):
    path = tmp_path / "bad.jsonl"
    _write(path, eol)
    stats = scan_file(path, "cl100k_base", None, workers=workers, chunk_bytes=chunk)
    found: dict[int, set[str]] = {}
    for issue in stats.errors:
        found.setdefault(issue.line, set()).add(issue.type)
    assert found == _expected()
    assert stats.examples == 3  # only the valid examples are counted
    assert stats.lines == len(CASES) - 1
    assert "not UTF-8" in next(i.message for i in stats.errors if i.line == 13)


def test_warnings_name_examples_without_system_or_user(tmp_path):
    lines = [
        {
            "messages": [
                {"role": "system", "content": "s"},
                {"role": "user", "content": "u"},
                {"role": "assistant", "content": "a"},
            ]
        },
        {"messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]},
        {"messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}]},
    ]
    path = tmp_path / "w.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines))
    stats = scan_file(path, "cl100k_base", None, workers=1)
    assert [(w.line, w.type) for w in stats.warnings] == [
        (2, "missing_system_message"),
        (3, "missing_user_message"),
    ]


def test_mixed_chat_and_dpo_is_an_error(book, tmp_path):
    from ledger.estimate import estimate

    dpo = {
        "input": {"messages": [{"role": "user", "content": "q"}]},
        "preferred_output": [{"role": "assistant", "content": "a"}],
        "non_preferred_output": [{"role": "assistant", "content": "b"}],
    }
    path = tmp_path / "mixed.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(dpo) + "\n")
    result = estimate(book, "gpt-4o-mini", path)
    assert [(e.line, e.type) for e in result.errors] == [
        (0, "too_few_examples"),
        (2, "mixed_format"),
    ]
    assert not result.ok


def test_dpo_errors_are_named(tmp_path):
    path = tmp_path / "dpo.jsonl"
    path.write_text(json.dumps({"input": {"messages": []}, "preferred_output": []}) + "\n")
    stats = scan_file(path, "o200k_base", None, workers=1)
    assert {e.type for e in stats.errors} == {
        "missing_messages_list",
        "missing_preferred_output",
        "missing_non_preferred_output",
    }


def test_error_lists_are_capped_but_all_counted(tmp_path):
    path = tmp_path / "many.jsonl"
    path.write_bytes(b"nope\n" * (MAX_LISTED + 50))
    stats = scan_file(path, "cl100k_base", None, workers=2, chunk_bytes=512)
    assert stats.error_counts["invalid_json"] == MAX_LISTED + 50
    assert len(stats.errors) == MAX_LISTED
    assert [e.line for e in stats.errors] == list(range(1, MAX_LISTED + 1))


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"")), max_size=12),
    newline_at_end=st.booleans(),
    chunk=st.integers(min_value=1, max_value=40),
)
def test_byte_ranges_own_every_line_exactly_once(lines, newline_at_end, chunk):
    data = b"\n".join(lines) + (b"\n" if newline_at_end and lines else b"")
    stream = io.BytesIO(data)
    owned = [read_owned(stream, s, min(s + chunk, len(data))) for s in range(0, len(data), chunk)]
    assert b"".join(owned) == data
    parts = [part for part in owned if part]
    assert all(part.endswith(b"\n") for part in parts[:-1])  # whole lines only
