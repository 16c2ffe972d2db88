"""Reading a user's TOML file: the one place its I/O, encoding and syntax errors are named."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from ledger.errors import ConfigError, Problem


def read_toml(path: Path, error: type[ConfigError]) -> tuple[bytes, dict[str, Any]]:
    """The file's bytes and its parsed table; a failure is one located `error`."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise error([Problem(str(path), f"cannot read: {exc.strerror}")]) from None
    try:
        return raw, tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise error([Problem(str(path), f"not UTF-8 (byte {exc.start})")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise error([Problem(str(path), f"not valid TOML: {exc}")]) from None
