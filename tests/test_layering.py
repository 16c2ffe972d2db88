"""The layers keep to their direction: core < sources/store < reports < views/CLI.

Imports are read from the source (function-level imports too), so a lazy import
cannot hide a dependency that points the wrong way.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from paths import ROOT

PACKAGE = ROOT / "ledger"
CORE = (
    "ledger.money",
    "ledger.period",
    "ledger.spend",
    "ledger.pricebook",
    "ledger.pricing",
    "ledger.domain",
    "ledger.errors",
    "ledger.dataset",
    "ledger.tokens",
    "ledger.forecast",
)
# (modules under this prefix, may not import anything under these prefixes)
RULES = [
    *((core, ("ledger.store", "ledger.sources", "ledger.cli", "sqlalchemy")) for core in CORE),
    ("ledger.sources", ("ledger.store", "ledger.cli", "ledger.reports")),
    ("ledger.reports", ("ledger.sources", "ledger.cli", "sqlalchemy", "ledger.views")),
    ("ledger.store", ("ledger.cli", "ledger.reports", "ledger.views")),
    ("ledger.web", ("ledger.cli",)),  # the HTTP face calls what the CLI calls, not the CLI
    ("ledger.documents", ("ledger.cli", "ledger.web")),
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@pytest.mark.parametrize(("layer", "forbidden"), RULES, ids=[r[0] for r in RULES])
def test_no_import_points_the_wrong_way(layer: str, forbidden: tuple[str, ...]) -> None:
    modules = {n: p for n, p in MODULES.items() if _under(n, layer)}
    assert modules, f"no module under {layer}"
    wrong = sorted(
        f"{name} imports {imported}"
        for name, path in modules.items()
        for imported in _imports(path)
        if any(_under(imported, f) for f in forbidden)
    )
    assert wrong == []


def test_only_the_read_model_selects_from_ledger_tables() -> None:
    """Views read through ledger.store.read: nothing outside store/ names the tables."""
    tables = ("UsageEntry", "TrainingFee", "BilledCost", "AlertDecision", "AlertDelivery")
    outside = sorted(
        f"{name} uses {table}"
        for name, path in MODULES.items()
        if not _under(name, "ledger.store")
        for table in tables
        if f"ledger.store.tables.{table}" in _imports(path)
    )
    assert outside == []
