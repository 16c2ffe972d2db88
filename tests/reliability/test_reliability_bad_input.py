"""The bad-input catalogue: malformed price books, budget files, ledger.toml, usage CSVs and
datasets. Each case asserts the exact lines a user sees (file, line or key, reason), a
non-zero exit, and a database exactly as it was before the command ran.
"""

from __future__ import annotations

import pytest
from reliability_helpers import entry_counts, snapshot

from ledger.resources import bundled_config_dir

GOOD_CSV = (
    "start_time,end_time,model,input_tokens,output_tokens,num_model_requests\n"
    "1748736000,1748739600,gpt-4o-mini,100,50,1\n"
)
HUGE = "m" * 300_000


def _run(cli, engine, *args: str) -> list[str]:
    """Run a command that should refuse its input; return its error lines."""
    before = (snapshot(engine), entry_counts(engine))
    result = cli(*args)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert (snapshot(engine), entry_counts(engine)) == before  # nothing written
    return result.stderr.strip().splitlines()


@pytest.fixture
def seeded(engine, cli, tmp_path):
    """A ledger that already holds one import, so 'unchanged' means something."""
    path = tmp_path / "seed.csv"
    path.write_text(GOOD_CSV.replace("1748736000,1748739600", "1748700000,1748703600"))
    assert cli("import", "usage", str(path)).exit_code == 0
    return engine


def _prices(config_dir, replacements: dict[str, str]) -> str:
    text = (bundled_config_dir() / "prices.toml").read_text(encoding="utf-8")
    for old, new in replacements.items():
        assert old in text
        text = text.replace(old, new, 1)
    (config_dir / "prices.toml").write_text(text, encoding="utf-8")
    return str(config_dir / "prices.toml")


PRICE_CASES = {
    "float-nan-negative-unknown": (
        {
            'batch_discount = "0.5"': "batch_discount = 0.5\nsurprise = 1",
            'input = "0.15"': 'input = "NaN"',
            'cached_input = "0.075"': 'cached_input = "-0.075"',
        },
        [
            "ftledger: error: 4 problems found:",
            "  {f}: surprise: unknown key",
            '  {f}: batch_discount: 0.5 is a float; write prices as decimal strings, e.g. "0.15"',
            "  {f}: model[3].price[0].cached_input: -0.075 is negative",
            "  {f}: model[3].price[0].input: 'NaN' is not a decimal",
        ],
    ),
    "infinity-and-wrong-type": (
        {'input = "0.15"': 'input = "Infinity"', 'currency = "USD"': "currency = 840"},
        None,
    ),
}


@pytest.mark.parametrize("case", list(PRICE_CASES))
def test_a_malformed_price_book_is_refused_before_anything_is_written(
    seeded, cli, config_dir, tmp_path, case
):
    replacements, expected = PRICE_CASES[case]
    f = _prices(config_dir, replacements)
    csv = tmp_path / "usage.csv"
    csv.write_text(GOOD_CSV)
    lines = _run(cli, seeded, "import", "usage", str(csv))
    if expected is not None:
        assert lines == [line.format(f=f) for line in expected]
    else:
        assert lines[0].startswith("ftledger: error: ") and lines[0].endswith("problems found:")
        assert f"  {f}: model[3].price[0].input: 'Infinity' is not a decimal" in lines
        assert any(line.startswith(f"  {f}: currency: ") for line in lines)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            b"currency = \"USD\"\n[[model]\nname='x'\n",
            "not valid TOML: Expected ']]' at the end "
            "of an array declaration (at line 2, column 8)",
        ),
        (b'currency = "\xff\xfe"\n', "not UTF-8 (byte 12)"),
    ],
    ids=["not-toml", "not-utf8"],
)
def test_a_price_book_that_cannot_be_read(seeded, cli, config_dir, tmp_path, content, expected):
    (config_dir / "prices.toml").write_bytes(content)
    csv = tmp_path / "usage.csv"
    csv.write_text(GOOD_CSV)
    lines = _run(cli, seeded, "import", "usage", str(csv))
    assert lines == [
        "ftledger: error: 1 problem found:",
        f"  {config_dir / 'prices.toml'}: {expected}",
    ]


BUDGET_CASES = {
    "wrong-types-and-unknown-keys": (
        """
[[channel]]
name = "ops"
type = "pager"

[[budget]]
name = "b"
amount = 500.0
period = "yearly"
thresholds = [50, "x", -1]
channels = ["ops", "nope"]
color = "red"
""",
        [
            "ftledger: error: 7 problems found:",
            "  {f}: channel[0].type: 'pager' is not one of webhook, slack, email, log",
            "  {f}: budget[0].color: unknown key",
            "  {f}: budget[0].amount: 500.0 is a float; write amounts as decimal strings, "
            'e.g. "500.00"',
            "  {f}: budget[0].period: 'yearly' is not one of monthly, weekly, daily",
            "  {f}: budget[0].thresholds[1]: 'x' is not a number",
            "  {f}: budget[0].thresholds[2]: -1 must be greater than 0 and at most 10000",
            "  {f}: budget[0].channels[1]: no channel named 'nope'",
        ],
    ),
    "nan-infinity-negative-huge": (
        f"""
[[channel]]
name = "log"
type = "log"
[[budget]]
name = "b"
amount = "NaN"
channels = ["log"]
[[budget]]
name = "c"
amount = "Infinity"
channels = ["log"]
[[budget]]
name = "d"
amount = "-5"
channels = ["log"]
[[budget]]
name = "{HUGE}"
amount = "5"
channels = ["log"]
""",
        [
            "ftledger: error: 4 problems found:",
            "  {f}: budget[0].amount: 'NaN' is not a decimal",
            "  {f}: budget[1].amount: 'Infinity' is not a decimal",
            "  {f}: budget[2].amount: -5 must be greater than 0",
            "  {f}: budget[3].name: is longer than 128 characters",
        ],
    ),
}


@pytest.mark.parametrize("case", list(BUDGET_CASES))
def test_a_malformed_budget_file_records_no_alert(seeded, cli, config_dir, case):
    content, expected = BUDGET_CASES[case]
    f = config_dir / "budgets.toml"
    f.write_text(content, encoding="utf-8")
    lines = _run(cli, seeded, "budgets", "check")
    assert lines == [line.format(f=f) for line in expected]


def test_a_malformed_ledger_toml_polls_nothing(seeded, cli, config_dir):
    f = config_dir / "ledger.toml"
    f.write_text(
        "[openai]\n"
        'max_retries = "3"\n'
        "timeout_seconds = nan\n"
        "retry_backoff_seconds = -1\n"
        "bogus = 1\n"
        "[poll]\n"
        'bucket_width = "2h"\n'
        "lookback_days = -1\n"
        "[extra]\n"
        "[[projects]]\n"
        f'name = "p"\nkey_env = "sk-{HUGE[:40]}"\n',
        encoding="utf-8",
    )
    lines = _run(cli, seeded, "poll", "--no-alerts")
    assert lines == [
        "ftledger: error: 8 problems found:",
        f"  {f}: extra: unknown key",
        f"  {f}: openai.max_retries: must be an integer",
        f"  {f}: openai.bogus: unknown key",
        f"  {f}: poll.bucket_width: must be one of 1m, 1h, 1d",
        f"  {f}: poll.lookback_days: must be between 0 and 366",
        f"  {f}: openai.timeout_seconds: must be more than 0 and at most 600",
        f"  {f}: openai.retry_backoff_seconds: must be between 0 and 600",
        f"  {f}: projects[0].key_env: looks like a key itself: give the NAME of an "
        "environment variable",
    ]


def test_a_ledger_toml_that_is_not_utf8(seeded, cli, config_dir):
    f = config_dir / "ledger.toml"
    f.write_bytes(b"[openai]\nbase_url = '\xc3\x28'\n")
    assert _run(cli, seeded, "status") == [
        "ftledger: error: 1 problem found:",
        f"  {f}: not UTF-8 (byte 21)",
    ]


CSV_HEADER = "start_time,end_time,model,input_tokens,output_tokens,num_model_requests\n"
CSV_CASES = {
    "numbers": (
        CSV_HEADER + "1748736000,1748739600,gpt-4o-mini,NaN,5,1\n"
        "1748736000,1748739600,gpt-4o-mini,1.5,-5,x\n"
        "1748736000,abc,gpt-4o-mini,Infinity,5,1\n"
        "1748736000,1748739600,gpt-4o-mini,99999999999999999999999,5,1\n"
        "1748736000,1748739600,gpt-4o-mini,-1,5,1\n"
        "1748736000,1748739600,gpt-4o-mini,1,1,1,extra\n",
        [
            "ftledger: error: 6 problems found:",
            "  {f}:2: input_tokens 'NaN' is not a non-negative integer",
            "  {f}:3: input_tokens '1.5' is not a non-negative integer",
            "  {f}:4: end_time 'abc' is neither unix seconds nor an ISO-8601 time",
            "  {f}:5: input_tokens '99999999999999999999999' is too large",
            "  {f}:6: input_tokens '-1' is not a non-negative integer",
            "  {f}:7: has 7 fields, the header has 6",
        ],
    ),
    "huge-strings": (
        CSV_HEADER + f"1748736000,1748739600,{HUGE[:1000]},1,1,1\n"
        "1748736000,99999999999999999999,gpt-4o-mini,1,1,1\n",
        [
            "ftledger: error: 2 problems found:",
            "  {f}:2: model is longer than 255 characters",
            "  {f}:3: end_time '99999999999999999999' is too large",
        ],
    ),
    "a-300k-field": (
        CSV_HEADER + f"1748736000,1748739600,{HUGE},1,1,1\n",
        [
            "ftledger: error: 1 problem found:",
            "  {f}:2: malformed CSV: field larger than field limit (131072)",
        ],
    ),
    "not-utf8": (
        (CSV_HEADER + "1748736000,1748739600,gpt-4o-mini,1,1,1\n").encode()
        + b"1748736000,1748739600,gpt-\xff\xfe,1,1,1\n",
        ["ftledger: error: 1 problem found:", "  {f}:3: not UTF-8 text (byte 0xff at byte 27)"],
    ),
}


@pytest.mark.parametrize("case", list(CSV_CASES))
def test_a_malformed_usage_csv_imports_nothing(seeded, cli, tmp_path, case):
    content, expected = CSV_CASES[case]
    f = tmp_path / "usage.csv"
    if isinstance(content, bytes):
        f.write_bytes(content)
    else:
        f.write_text(content, encoding="utf-8")
    lines = _run(cli, seeded, "import", "usage", str(f))
    assert lines == [line.format(f=f) for line in expected]


def test_a_malformed_dataset_lists_every_bad_line_and_records_nothing(seeded, cli, tmp_path):
    f = tmp_path / "train.jsonl"
    good = (
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}'
    )
    f.write_bytes(
        (good + "\nnot json\n").encode()
        + b"\xff\xfe\n"
        + b'{"messages": "x"}\n[1,2]\n{"messages": [{"role": "wizard", "content": 5}]}\n'
        + (good[:-1] + ', "weight": NaN}\n').encode()
        + (good[:-1] + ', "weight": -Infinity}\n').encode()
    )
    before = (snapshot(seeded), entry_counts(seeded))
    result = cli("estimate", str(f), "--model", "gpt-4o-mini", "--record", "--format", "json")
    assert result.exit_code == 1
    assert (snapshot(seeded), entry_counts(seeded)) == before
    import json

    errors = [(e["line"], e["type"], e["message"]) for e in json.loads(result.stdout)["errors"]]
    assert errors == [
        (0, "too_few_examples", "the file holds 1 valid example(s); OpenAI requires at least 10"),
        (2, "invalid_json", "Expecting value: line 1 column 1 (char 0)"),
        (3, "invalid_json", "not UTF-8 (byte 1 of the line)"),
        (4, "missing_messages_list", "messages must be a non-empty list"),
        (5, "data_type", "line is a JSON list, not an object"),
        (6, "unrecognized_role", "messages[0] has role 'wizard'"),
        (6, "missing_content", "messages[0] content must be a non-empty string"),
        (6, "example_missing_assistant_message", "no assistant message"),
        (7, "invalid_json", "NaN is not valid JSON"),
        (8, "invalid_json", "-Infinity is not valid JSON"),
    ]
