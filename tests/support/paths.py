"""Where the tests' files are, wherever a test module sits under tests/."""

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent  # the repository
DATA = TESTS / "data"
