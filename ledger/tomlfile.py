"""Reading a user's TOML file: the one place its I/O, encoding and syntax errors are named."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from ledger.errors import ConfigError, Problem

MAX_NESTING = 100  # reported as the limit; tomllib itself fails near the recursion limit


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
    except RecursionError:  # tomllib recurses into nested arrays and inline tables
        raise error([Problem(str(path), f"not valid TOML: {_deepest(raw)}")]) from None


def _deepest(raw: bytes) -> str:
    """Where nesting first gets too deep (brackets and braces outside strings, roughly)."""
    depth, line, quote = 0, 1, 0
    for byte in raw:
        if byte == 10:
            line += 1
        elif quote:
            quote = 0 if byte == quote else quote
        elif byte in (34, 39):  # " '
            quote = byte
        elif byte in (91, 123):  # [ {
            depth += 1
            if depth > MAX_NESTING:
                return f"nested more than {MAX_NESTING} levels deep (at line {line})"
        elif byte in (93, 125):
            depth = max(depth - 1, 0)
    return "nested too deeply"
