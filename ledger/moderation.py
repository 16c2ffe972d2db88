"""Screening a training file with OpenAI's moderation endpoint before a job is launched.

OpenAI screens training data and rejects a file with flagged examples after the upload;
screening first saves a wasted job. Each valid line becomes one moderation input (the
text values of its messages joined by newlines); lines are streamed and sent in batches,
so memory does not grow with the file. Flagged lines are reported with their categories.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.dataset import MAX_LISTED
from ledger.errors import InputError, Problem

if TYPE_CHECKING:
    from ledger.sources.openai import OpenAISource

LINES_PER_CALL = 256  # lines handed to the source at once; it batches its own requests


@dataclass
class ModerationReport:
    checked_lines: int = 0
    flagged_lines: int = 0
    flagged: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)  # listed ones
    category_counts: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked_lines": self.checked_lines,
            "flagged_lines": self.flagged_lines,
            "flagged": [{"line": line, "categories": list(cats)} for line, cats in self.flagged],
            "category_counts": dict(self.category_counts),
        }


def example_text(obj: Any) -> str | None:
    """The text of a chat or DPO line, or None when the line has no messages to screen."""
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("input"), dict):
        lists = [
            obj["input"].get("messages"),
            obj.get("preferred_output"),
            obj.get("non_preferred_output"),
        ]
    else:
        lists = [obj.get("messages")]
    texts = [
        m["content"]
        for messages in lists
        if isinstance(messages, list)
        for m in messages
        if isinstance(m, dict) and isinstance(m.get("content"), str) and m["content"]
    ]
    return "\n".join(texts) if texts else None


def _texts(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of every line that parses; format errors are the estimate's job."""
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise InputError([Problem(str(path), f"cannot read: {exc.strerror}")]) from None
    with stream:
        for number, raw in enumerate(stream, start=1):  # binary lines end at b"\n" only
            if not raw.strip():
                continue
            try:
                text = example_text(json.loads(raw))
            except ValueError:
                continue
            if text is not None:
                yield number, text


def moderate_file(path: Path, source: OpenAISource | None = None) -> ModerationReport:
    """Screen every example of `path`; `source` defaults to OpenAI per the environment."""
    if source is None:
        from ledger.sources.openai import OpenAISource

        with OpenAISource() as own:
            return moderate_file(path, own)
    report = ModerationReport()
    batch: list[tuple[int, str]] = []

    def flush() -> None:
        results = source.moderate([text for _, text in batch])
        for (line, _), result in zip(batch, results, strict=True):
            report.checked_lines += 1
            if result.flagged:
                report.flagged_lines += 1
                report.category_counts.update(result.categories)
                if len(report.flagged) < MAX_LISTED:
                    report.flagged.append((line, result.categories))
        batch.clear()

    for item in _texts(path):
        batch.append(item)
        if len(batch) >= LINES_PER_CALL:
            flush()
    if batch:
        flush()
    return report
