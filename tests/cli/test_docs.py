"""The README documents every command the CLI has, so users can find them."""

from __future__ import annotations

import typer.main
from paths import ROOT

from ledger.cli.app import app

README = ROOT / "README.md"


def command_paths(command: object, path: tuple[str, ...] = ()) -> list[str]:
    subcommands = getattr(command, "commands", None)
    if not subcommands:
        return [] if getattr(command, "hidden", False) else [" ".join(path)]
    return [p for name, sub in subcommands.items() for p in command_paths(sub, (*path, name))]


def test_every_command_is_in_the_readme():
    text = README.read_text(encoding="utf-8")
    paths = command_paths(typer.main.get_command(app))
    assert len(paths) > 15
    missing = [p for p in paths if f"`ftledger {p}`" not in text]
    assert missing == []


def test_every_command_help_has_an_example():
    root = typer.main.get_command(app)
    lacking = []
    for path in command_paths(root):
        command = root
        for name in path.split():
            command = command.commands[name]  # type: ignore[attr-defined]
        if "Example" not in (command.help or ""):
            lacking.append(path)
    assert lacking == []
