"""Tables for people: the columns a reader needs, fitted to the terminal.

A table is a list of `Column`s (key, header, kind, shown by default or only with
`--wide`) over rows of values; cells become text through `text.people_cell`, so money
reads `$1,234.57` and counts `12,345,678`. Rich lays the table out (imported lazily:
`ftledger --help` stays fast). Name columns (models, budgets) are shortened in the
middle so a row never wraps; `--wide` shows every column at its natural width.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ledger.reports.text import people_cell, shorten_middle

DEFAULT_WIDTH = 100
MIN_NAME_WIDTH = 12
MIN_NOTE_WIDTH = 20
READABLE_NAME_WIDTH = 26  # `ft:gpt-4o-…:support:A1b2C3`
GAP = 2  # spaces between columns


@dataclass(frozen=True)
class Column:
    key: str
    header: str = ""
    kind: str = "text"  # text | name | note | money | count | pct | bool
    default: bool = True
    drop: int = 0  # > 0: hidden first (highest first) when names would be cut unreadably

    @property
    def label(self) -> str:
        return self.header or self.key.replace("_", " ")

    @property
    def right(self) -> bool:
        return self.kind in ("money", "count", "pct")


class ColumnChoiceError(ValueError):
    """`--columns` named a column the table does not have."""


def terminal_width() -> int:
    """COLUMNS when set, else the terminal's width, else 100 (a pipe or a file)."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns


def choose(columns: Sequence[Column], wanted: str | None, wide: bool) -> list[Column]:
    """The default columns; every column with `wide`; or those named in `wanted`
    (keys or headers, comma-separated, in the order given)."""
    if wanted:
        by_name = {c.key: c for c in columns} | {c.label: c for c in columns}
        names = [w.strip() for w in wanted.split(",") if w.strip()]
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise ColumnChoiceError(
                f"no column {', '.join(map(repr, unknown))}; "
                f"choose from {','.join(c.key for c in columns)}"
            )
        return [replace(by_name[n], drop=0) for n in names]  # asked for: always shown
    return list(columns) if wide else [c for c in columns if c.default]


def render(
    columns: Sequence[Column],
    rows: Iterable[dict[str, Any]],
    *,
    title: str | None = None,
    totals: Sequence[dict[str, Any]] = (),
    footer: Sequence[str] = (),
    width: int | None = None,
    currency: str = "USD",
) -> str:
    """The table as text. `width` None: natural width (for --wide); else fitted to it."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    body = [[people_cell(c.kind, r.get(c.key), currency) for c in columns] for r in rows]
    foot = [
        [people_cell(c.kind, t.get(c.key), currency) if c.key in t else "" for c in columns]
        for t in totals
    ]
    if width is not None:
        columns, body, foot, hidden = _make_room(columns, body, foot, width)
        if hidden:
            footer = [
                *footer,
                f"Hidden to fit {width} columns: {', '.join(hidden)} "
                "(--wide or --columns shows them).",
            ]
        body, foot = _fit(columns, body, foot, width)
    table = Table(
        box=box.SIMPLE_HEAD if not foot else box.SIMPLE,
        show_edge=False,
        pad_edge=False,
        padding=(0, 0, 0, GAP - 1),  # one space, plus the box's blank divider
        show_footer=bool(foot),
        header_style="",
        footer_style="",
        title=None,
    )
    for i, col in enumerate(columns):
        table.add_column(
            col.label,
            footer="\n".join(row[i] for row in foot),
            justify="right" if col.right else "left",
            no_wrap=True,
            overflow="ellipsis",
        )
    for row in body:
        table.add_row(*row)
    console = Console(
        width=width or 10_000,
        file=io.StringIO(),
        force_terminal=False,
        color_system=None,
        highlight=False,
        emoji=False,
        markup=False,
        soft_wrap=False,
    )
    with console.capture() as capture:
        console.print(table)
    lines = [line.rstrip() for line in capture.get().splitlines()]
    lines = [line for line in lines if line.strip() or not lines]
    out = ([*_wrap(title, width), ""] if title else []) + lines
    if footer:
        out += ["", *(part for line in footer for part in _wrap(line, width))]
    return "\n".join(out) + "\n"


def _wrap(line: str, width: int | None) -> list[str]:
    """A title or footer line, wrapped at spaces to `width` (tables never wrap)."""
    import textwrap

    if width is None or len(line) <= width:
        return [line]
    return textwrap.wrap(line, width, subsequent_indent="  ", break_on_hyphens=False)


def _make_room(
    columns: Sequence[Column], body: list[list[str]], foot: list[list[str]], width: int
) -> tuple[list[Column], list[list[str]], list[list[str]], list[str]]:
    """Hide droppable columns (highest `drop` first) while the name columns would get
    less than a readable width: a model name that reads beats a column few need."""
    cols = list(columns)
    hidden: list[str] = []

    def natural(i: int) -> int:
        return max([len(cols[i].label), *(len(r[i]) for r in [*body, *foot])])

    while True:
        names = [i for i, c in enumerate(cols) if c.kind == "name"]
        droppable = [i for i, c in enumerate(cols) if c.drop > 0]
        if not names or not droppable:
            break
        others = sum(natural(i) for i in range(len(cols)) if i not in names)
        room = width - others - GAP * (len(cols) - 1)
        wanted = sum(min(natural(i), READABLE_NAME_WIDTH) for i in names)
        if room >= wanted:
            break
        gone = max(droppable, key=lambda i: (cols[i].drop, i))
        hidden.append(cols[gone].label)
        del cols[gone]
        body = [r[:gone] + r[gone + 1 :] for r in body]
        foot = [r[:gone] + r[gone + 1 :] for r in foot]
    return cols, body, foot, hidden


def _fit(
    columns: Sequence[Column], body: list[list[str]], foot: list[list[str]], width: int
) -> tuple[list[list[str]], list[list[str]]]:
    """Shorten name columns in the middle so the table fits `width`."""
    widths = [
        max([len(c.label), *(len(r[i]) for r in [*body, *foot])]) for i, c in enumerate(columns)
    ]
    total = sum(widths) + GAP * (len(columns) - 1)
    notes = [i for i, c in enumerate(columns) if c.kind == "note"]
    names = [i for i, c in enumerate(columns) if c.kind == "name"]
    if total <= width or not (names or notes):
        return body, foot
    excess = total - width
    for floor_name, floor_note in ((MIN_NAME_WIDTH, MIN_NOTE_WIDTH), (6, 8)):
        for i in [*notes, *sorted(names, key=lambda i: -widths[i])]:
            floor = floor_note if columns[i].kind == "note" else floor_name
            cut = min(excess, widths[i] - max(floor, min(len(columns[i].label), floor)))
            if cut <= 0:
                continue
            widths[i] -= cut
            excess -= cut
            for row in [*body, *foot]:
                if columns[i].kind == "note":
                    row[i] = row[i] if len(row[i]) <= widths[i] else row[i][: widths[i] - 1] + "…"
                else:
                    row[i] = shorten_middle(row[i], widths[i])
            if excess <= 0:
                return body, foot
    return body, foot


def infer(keys: Sequence[str]) -> list[Column]:
    """Columns for a plain list of keys, their kinds read from the names."""
    return [Column(k, kind=kind_of(k)) for k in keys]


_MONEY = {
    "amount",
    "spend",
    "forecast",
    "forecast_low",
    "forecast_high",
    "budget_amount",
    "computed_cost",
    "billed_cost",
    "variance",
    "actual_cost",
    "whatif_cost",
    "difference",
    "usage_cost",
    "base_model_cost",
    "premium",
    "training_cost",
    "total_cost",
    "estimated_cost",
    "cost",
    "training_fee",
}
_COUNT = {
    "requests",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "training_tokens",
    "estimated_trained_tokens",
    "actual_trained_tokens",
    "read",
    "rows",
    "buckets",
    "entries_posted",
    "posted",
    "unchanged",
    "rejected",
    "fees_posted",
    "windows",
    "failures",
    "attempts",
}
_NAMES = {"model", "name", "budget", "file", "target"}


def kind_of(key: str) -> str:
    if key in _MONEY:
        return "money"
    if key in _COUNT:
        return "count"
    if key.endswith("_pct") or key.endswith("_percent"):
        return "pct"
    if key in _NAMES:
        return "name"
    return "text"
