"""`ftledger estimate --moderate` against the loopback sandbox: batched, flagged lines located."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from ledger.sandbox import SandboxOrg, SandboxServer


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
    with SandboxServer(SandboxOrg(seed=1, now=1_750_000_000, days=1, extra_jobs=0)) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", srv.project_keys["support"])
        yield srv


def _line(user: str, reply: str = "Sure.") -> str:
    return json.dumps(
        {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]}
    )


def test_flagged_lines_are_reported_and_fail_the_command(cli, isolated, sandbox):
    lines = [_line(f"question {i}") for i in range(70)]
    lines[4] = _line("how do I kill a process?")
    lines[40] = _line("fine", reply="you idiot")
    path = isolated / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = cli("estimate", str(path), "--model", "gpt-4o-mini", "--moderate", "--format", "json")
    assert result.exit_code == 1, result.stderr
    moderation = json.loads(result.stdout)["moderation"]
    assert moderation["checked_lines"] == 70
    assert moderation["flagged"] == [
        {"line": 5, "categories": ["violence"]},
        {"line": 41, "categories": ["harassment"]},
    ]
    assert sandbox.requests["moderations"] == 3  # 70 texts, at most 32 per request


def test_clean_file_passes_moderation(cli, isolated, sandbox):
    path = isolated / "train.jsonl"
    path.write_text("\n".join(_line(f"q{i}") for i in range(10)) + "\n")
    result = cli("estimate", str(path), "--model", "gpt-4o-mini", "--moderate")
    assert result.exit_code == 0, result.stderr
    rows = dict(line.split(":", 1) for line in result.stdout.splitlines() if ": " in line)
    assert rows["moderation checked lines"].strip() == "10"
    assert rows["moderation flagged lines"].strip() == "0"
    assert "Flagged" not in result.stdout


def test_moderation_without_a_key_is_a_one_line_error(cli, isolated, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    path = isolated / "train.jsonl"
    path.write_text(_line("hello") + "\n")
    result = cli("estimate", str(path), "--model", "gpt-4o-mini", "--moderate")
    assert result.exit_code == 1
    assert "OPENAI_API_KEY" in result.stderr
