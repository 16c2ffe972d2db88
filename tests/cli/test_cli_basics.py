"""The CLI shell: fast help, lazy imports, one-line errors, settings precedence."""

from __future__ import annotations

import os
import subprocess
import sys

from ledger.settings import load_settings


def test_help_imports_no_heavy_module():
    code = (
        "import sys\n"
        "from ledger.cli.app import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('openai', 'tiktoken', 'apscheduler', 'alembic', 'sqlalchemy.orm')"
        " if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout, out.stdout


def test_python_dash_m_ledger_runs_the_cli():
    out = subprocess.run(
        [sys.executable, "-m", "ledger", "--help"], capture_output=True, text=True, check=True
    )
    assert "Usage" in out.stdout and "prices" in out.stdout


def test_database_url_precedence(monkeypatch):
    monkeypatch.setenv("LEDGER_DATABASE_URL", "sqlite:///from-env.db")
    assert load_settings().database_url == "sqlite:///from-env.db"
    assert load_settings("sqlite:///flag.db").database_url == "sqlite:///flag.db"
    monkeypatch.delenv("LEDGER_DATABASE_URL")
    assert load_settings().database_url == "sqlite:///ledger.db"


def test_config_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("LEDGER_CONFIG_DIR")
    assert load_settings().config_dir is None  # no ./config here: bundled defaults
    os.mkdir("config")
    assert str(load_settings().config_dir) == "config"
    monkeypatch.setenv("LEDGER_CONFIG_DIR", str(tmp_path))
    assert load_settings().config_dir == tmp_path
    assert load_settings().config_file("prices.toml").name == "prices.toml"


def test_usage_errors_exit_nonzero(cli):
    result = cli("prices", "show")
    assert result.exit_code == 2 and "Missing argument" in (result.stderr + result.stdout)
