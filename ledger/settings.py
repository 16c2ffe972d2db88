"""Settings from the command line, the environment and ledger.toml.

Database URL: `--db`, else LEDGER_DATABASE_URL, else sqlite:///ledger.db in the working
directory. Config directory: LEDGER_CONFIG_DIR, else ./config when it exists, else the
bundled defaults; each file in it overrides the bundled one file by file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ledger.resources import bundled_config_dir

DEFAULT_DATABASE_URL = "sqlite:///ledger.db"


@dataclass(frozen=True)
class Settings:
    database_url: str
    config_dir: Path | None  # None: only the bundled defaults

    def config_file(self, name: str) -> Path:
        """The user's file when present, else the bundled default of the same name."""
        if self.config_dir is not None:
            candidate = self.config_dir / name
            if candidate.is_file():
                return candidate
        return bundled_config_dir() / name


def load_settings(database_url: str | None = None) -> Settings:
    url = database_url or os.environ.get("LEDGER_DATABASE_URL") or DEFAULT_DATABASE_URL
    env_dir = os.environ.get("LEDGER_CONFIG_DIR")
    if env_dir:
        config_dir: Path | None = Path(env_dir)
    elif Path("config").is_dir():
        config_dir = Path("config")
    else:
        config_dir = None
    return Settings(database_url=url, config_dir=config_dir)
