"""Teams (showback/chargeback): which team a piece of spend belongs to.

allocation.toml lists `[[team]]` blocks in order. A team matches spend when every
filter it sets matches: `projects` (OpenAI project ids), `models` (fnmatch globs,
case-sensitive, as budgets use them) and `api_keys` (API key ids); a filter left out
matches anything, so a team without filters takes all remaining spend. The **first**
matching team wins, so order specific teams before broad ones. Spend no team matches
is "(unallocated)", its own row. Training fees have no API key: a team that sets
`api_keys` never matches a fee.

Pure: applied to read-model rows after they are read, so every split of a period adds
up to its total exactly (each row goes to exactly one team).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.errors import AllocationError, Problem
from ledger.tomlfile import read_toml

UNALLOCATED = "(unallocated)"
_TEAM_KEYS = {"name", "projects", "models", "api_keys"}


@dataclass(frozen=True)
class Team:
    name: str
    projects: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    api_keys: tuple[str, ...] = ()

    def matches(self, model: str, project: str, api_key: str | None) -> bool:
        """Every filter set matches; api_key None (a training fee) fails an api_keys filter."""
        return (
            (not self.projects or project in self.projects)
            and (not self.models or any(fnmatch.fnmatchcase(model, p) for p in self.models))
            and (not self.api_keys or (api_key is not None and api_key in self.api_keys))
        )


@dataclass(frozen=True)
class Allocation:
    teams: tuple[Team, ...] = ()
    source: str = "allocation.toml"
    _memo: dict[tuple[str, str, str | None], str] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.teams)

    def team_of(self, model: str, project: str | None, api_key: str | None) -> str:
        """The first matching team's name, else UNALLOCATED."""
        key = (model, project or "", api_key)
        found = self._memo.get(key)
        if found is None:
            found = next(
                (t.name for t in self.teams if t.matches(model, project or "", api_key)),
                UNALLOCATED,
            )
            self._memo[key] = found
        return found


def load_allocation(path: Path) -> Allocation:
    """Read and validate allocation.toml (a missing file: no teams)."""
    if not path.exists():
        return Allocation(source=str(path))
    _raw, data = read_toml(path, AllocationError)
    return parse_allocation(data, source=str(path))


def parse_allocation(data: dict[str, Any], *, source: str) -> Allocation:
    problems: list[Problem] = []

    def problem(key: str, message: str) -> None:
        problems.append(Problem(f"{source}: {key}", message))

    for key in sorted(set(data) - {"team"}):
        problem(key, "unknown key")
    raw_teams = data.get("team", [])
    if not isinstance(raw_teams, list):
        problem("team", "must be an array of tables ([[team]])")
        raw_teams = []
    teams: list[Team] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_teams):
        where = f"team[{i}]"
        if not isinstance(raw, dict):
            problem(where, "must be a table")
            continue
        for extra in sorted(set(raw) - _TEAM_KEYS):
            problem(f"{where}.{extra}", "unknown key")
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            problem(f"{where}.name", "is required (a non-empty string)")
            continue
        if name in seen or name == UNALLOCATED:
            problem(f"{where}.name", f"{name!r} is already taken")
            continue
        seen.add(name)
        lists: dict[str, tuple[str, ...]] = {}
        for key in ("projects", "models", "api_keys"):
            value = raw.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                problem(f"{where}.{key}", "must be a list of non-empty strings")
                value = []
            lists[key] = tuple(value)
        teams.append(Team(name, **lists))
    if problems:
        raise AllocationError(problems)
    return Allocation(tuple(teams), source)
