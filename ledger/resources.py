"""Where the bundled defaults live: inside the wheel, or beside the package in a checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _bundled(name: str) -> Path:
    installed = _PACKAGE / "_bundled" / name
    return installed if installed.is_dir() else _PACKAGE.parent / name


def bundled_config_dir() -> Path:
    return _bundled("config")


def migrations_dir() -> Path:
    return _bundled("migrations")
