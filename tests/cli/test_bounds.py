"""Bounds on what users and files can ask for: each is a located error or a clear message,
never gigabytes of memory, a RecursionError, a traceback or a poll of a century.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from paths import ROOT
from reliability_helpers import entry_counts, snapshot

from ledger.resources import bundled_config_dir
from ledger.scan import scan_file

CHAT = b'{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}\n'
MB = 1 << 20

# --- a line with no end -------------------------------------------------------------

PEAK_RSS = textwrap.dedent(
    """
    import resource, sys
    import ledger.scan
    ledger.scan.MAX_LINE_BYTES = int(sys.argv[2])
    from ledger.cli.app import main
    try:
        main(["estimate", sys.argv[1], "--model", "gpt-4o-mini", "--format", "json"])
    except SystemExit:
        pass
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print("PEAK", max(own, workers), file=sys.stderr)
    """
)


def peak_kib(path: Path, max_line: int) -> tuple[int, str]:
    """(peak RSS in KiB, stdout) of `ftledger estimate path` in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, str(path), str(max_line)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    peak = next(line for line in done.stderr.splitlines() if line.startswith("PEAK"))
    return int(peak.split()[1]), done.stdout


def test_a_file_without_a_newline_is_a_located_error_not_its_size_in_memory(tmp_path):
    small = tmp_path / "small.jsonl"
    small.write_bytes(CHAT)
    one_line = tmp_path / "one-line.jsonl"
    with one_line.open("wb") as out:  # 20 MB, no newline anywhere
        out.write(b'{"messages": "')
        for _ in range(20):
            out.write(b"x" * MB)
    baseline, _ = peak_kib(small, MB)
    peak, output = peak_kib(one_line, MB)
    assert '"kind": "line_too_long"' in output.replace("'", '"') or "line_too_long" in output
    assert '"line": 1' in output
    # Reading the line whole costs 40+ MB here (and a 2 GB line ~4.5 GB); bounded, a few MB.
    assert peak - baseline < 8 * 1024, (baseline, peak)


@pytest.mark.parametrize("workers", [1, 2])
def test_over_long_lines_are_located_and_the_others_still_counted(tmp_path, workers):
    path = tmp_path / "mixed.jsonl"
    long_line = b'{"messages": "' + b"y" * 5000 + b'"}\n'
    path.write_bytes(CHAT + long_line + CHAT + CHAT + long_line.rstrip(b"\n"))
    stats = scan_file(
        path, "o200k_base", None, workers=workers, chunk_bytes=700, max_line_bytes=2000
    )
    assert [(e.line, e.type) for e in stats.errors] == [(2, "line_too_long"), (5, "line_too_long")]
    assert stats.lines == 5 and stats.examples == 3
    assert "longer than 2,000 bytes" in stats.errors[0].message


def test_deeply_nested_json_is_a_located_error_not_a_recursion_error(cli, tmp_path):
    path = tmp_path / "deep.jsonl"
    deep = b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
    path.write_bytes(CHAT + deep + CHAT)
    result = cli("estimate", str(path), "--model", "gpt-4o-mini")
    assert "Traceback" not in result.stderr and "RecursionError" not in result.stderr
    assert re.search(r"^\s*2\s+invalid_json\s+nested too deeply", result.stdout, re.M), (
        result.stdout
    )


# --- deeply nested TOML -------------------------------------------------------------

DEEP_TOML = "\n\nx = " + "[" * 5000 + "]" * 5000 + "\n"
DEEP_INLINE = "x = " + "{a = " * 2000 + "1" + "}" * 2000 + "\n"


@pytest.mark.parametrize(
    ("name", "command", "text"),
    [
        ("prices.toml", ("prices", "check"), DEEP_TOML),
        ("budgets.toml", ("budgets", "check"), DEEP_TOML),
        ("ledger.toml", ("status",), DEEP_TOML),
        ("ledger.toml", ("status",), DEEP_INLINE),
    ],
    ids=["prices", "budgets", "ledger", "ledger-inline-tables"],
)
def test_deeply_nested_toml_is_a_located_error(cli, config_dir, name, command, text):
    path = config_dir / name
    path.write_text(text, encoding="utf-8")
    result = cli(*command)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    line = 3 if text is DEEP_TOML else 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"  {path}: not valid TOML: nested more than 100 levels deep (at line {line})"
    )


# --- values that ask for too much ---------------------------------------------------


def _ledger_toml(config_dir: Path, text: str) -> Path:
    path = config_dir / "ledger.toml"
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("[poll]\nlookback_days = 100000000", "poll.lookback_days: must be between 0 and 366"),
        ("[poll]\nwindow_days = 9999999", "poll.window_days: must be between 1 and 366"),
        ('[openai]\nbase_url = "http://[::1"', "is not a valid URL (Invalid IPv6 URL)"),
        ('[openai]\nbase_url = "https://api.openai.com:99999/v1"', "Port out of range 0-65535"),
        ('[openai]\nbase_url = "http://"', "openai.base_url: has no host name"),
        ('[openai]\nbase_url = "http://exa mple.com/v1"', "must not contain spaces or control"),
        ('[openai]\nbase_url = "api.openai.com/v1"', "must start with http:// or https://"),
    ],
    ids=["lookback", "window", "ipv6", "port", "no-host", "space", "no-scheme"],
)
def test_ledger_toml_values_beyond_reason_get_a_clear_message(
    cli, engine, config_dir, setting, message
):
    path = _ledger_toml(config_dir, setting + "\n")
    before = snapshot(engine)
    result = cli("poll")
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "ftledger: error: 1 problem found:"
    assert lines[1].startswith(f"  {path}: ") and message in lines[1], lines
    assert snapshot(engine) == before


def test_a_malformed_openai_base_url_variable_gets_a_clear_message(cli, engine, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://[::1")
    monkeypatch.setenv("OPENAI_ADMIN_KEY", "sk-admin-test")
    result = cli("poll")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "  OPENAI_BASE_URL: is not a valid URL (Invalid IPv6 URL)"
    )


@pytest.mark.parametrize(
    ("since", "message"),
    [
        ("1900-01-01", "1900-01-01 is before 2020-01-01: OpenAI has no usage to read that early"),
        ("2999-01-01", "2999-01-01 is in the future"),
    ],
)
def test_poll_since_before_2020_or_in_the_future_is_refused(cli, engine, since, message):
    before = (snapshot(engine), entry_counts(engine))
    result = cli("poll", "--since", since)
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split()), result.stderr
    assert (snapshot(engine), entry_counts(engine)) == before


def test_a_price_of_1e400_is_refused_with_its_key(cli, config_dir):
    text = (bundled_config_dir() / "prices.toml").read_text(encoding="utf-8")
    path = config_dir / "prices.toml"
    path.write_text(text.replace('input = "0.15"', 'input = "1e400"', 1), encoding="utf-8")
    result = cli("prices", "check")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "ftledger: error: 1 problem found:",
        f"  {path}: model[3].price[0].input: '1e400' is too large (at most 1,000,000 USD)",
    ]


def test_a_budget_name_with_nul_is_refused_at_load(cli, engine, config_dir):
    path = config_dir / "budgets.toml"
    path.write_text(
        '[[channel]]\nname = "ops"\ntype = "log"\n\n'
        '[[budget]]\nname = "support\\u0000bot"\namount = "10"\nperiod = "monthly"\n'
        'channels = ["ops"]\n',
        encoding="utf-8",
    )
    before = snapshot(engine)
    result = cli("budgets", "check")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "ftledger: error: 1 problem found:",
        f"  {path}: budget[0].name: contains the control character '\\x00'",
    ]
    assert snapshot(engine) == before
