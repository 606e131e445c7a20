"""Message files -> Definitions: one per YAML document, defaults merged under, names unique."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from commbox_yaml.errors import Location, Problem, UserError
from commbox_yaml.project import Project
from commbox_yaml.resources import CHANNEL_NAMES
from commbox_yaml.source import Positions, load_documents

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass(frozen=True)
class Definition:
    """One message definition as written (defaults merged under), before templating."""

    name: str
    channel: str
    file: str
    data: dict[str, Any]
    positions: Positions
    location: Location

    def where(self, *path: str | int) -> Location:
        return self.positions.locate(path) or self.location

    def where_key(self, *path: str | int) -> Location:
        return self.positions.locate_key(path) or self.location


@dataclass(frozen=True)
class LoadedDefinitions:
    definitions: list[Definition]
    files: list[str]
    problems: list[Problem]


def message_files(project: Project) -> list[Path]:
    """The files the `messages:` globs match, sorted, each confined to the project root."""
    found: dict[Path, None] = {}
    for index, pattern in enumerate(project.messages):
        where = project.where("messages", index)
        if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
            raise UserError(f"message glob {pattern!r} must stay inside the project root", where)
        for path in sorted(project.root.glob(pattern)):
            if path.is_file():
                found[project.resolve(project.display(path), where, "message file")] = None
    return sorted(found, key=lambda p: project.display(p))


def load_definitions(project: Project) -> LoadedDefinitions:
    files = message_files(project)
    if not files:
        globs = ", ".join(project.messages)
        raise UserError(
            f"no message files match {globs}; add one or fix 'messages:' in commbox.yaml",
            project.where("messages"),
        )
    definitions: list[Definition] = []
    problems: list[Problem] = []
    first_seen: dict[str, Location] = {}
    displays = []
    for path in files:
        display = project.display(path)
        displays.append(display)
        try:
            documents = load_documents(path, display)
        except UserError as exc:
            problems.append(exc.problem)
            continue
        for doc in documents:
            if not isinstance(doc.value, dict):
                problems.append(Problem(doc.location, "a message definition must be a mapping"))
                continue
            positions = _merge_positions(project, doc.value, doc.positions)
            data = {**project.defaults, **doc.value}
            checked = _check_identity(data, positions, doc.location, first_seen, problems)
            if checked is not None:
                name, channel = checked
                definitions.append(
                    Definition(name, channel, display, data, positions, doc.location)
                )
    return LoadedDefinitions(definitions, displays, problems)


def _merge_positions(project: Project, written: dict[str, Any], positions: Positions) -> Positions:
    if not project.defaults:
        return positions
    merged = Positions(dict(positions.values), dict(positions.keys), dict(positions.texts))
    defaults = project.defaults_positions
    for key in project.defaults:
        if key in written:
            continue
        merged.values.update({p: v for p, v in defaults.values.items() if p[:1] == (key,)})
        merged.keys.update({p: v for p, v in defaults.keys.items() if p[:1] == (key,)})
        merged.texts.update({p: v for p, v in defaults.texts.items() if p[:1] == (key,)})
    return merged


def _check_identity(
    data: dict[str, Any],
    positions: Positions,
    where: Location,
    first_seen: dict[str, Location],
    problems: list[Problem],
) -> tuple[str, str] | None:
    """The definition's name and channel, or None (with problems noted) when unusable."""
    name, channel = data.get("name"), data.get("channel")
    found = [
        _name_problem(name, positions, where, first_seen),
        _channel_problem(channel, positions, where),
    ]
    problems.extend(p for p in found if p is not None)
    if found[0] is None and isinstance(name, str):  # a good name is taken, whatever the channel
        first_seen[name] = positions.locate(("name",)) or where
    if any(found):
        return None
    assert isinstance(name, str)
    assert isinstance(channel, str)
    return name, channel


def _name_problem(
    name: Any, positions: Positions, where: Location, first_seen: dict[str, Location]
) -> Problem | None:
    if name is None:
        return Problem(where, "missing required key 'name'")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        return Problem(
            positions.locate(("name",)),
            f"{name!r} must be lower case letters, digits, '-' and '_', "
            "not starting with '-' or '_'",
            "name",
        )
    if name in first_seen:
        return Problem(
            positions.locate(("name",)),
            f"name '{name}' is already used by the definition at {first_seen[name]}; names "
            "must be unique",
            "name",
        )
    return None


def _channel_problem(channel: Any, positions: Positions, where: Location) -> Problem | None:
    if channel is None:
        return Problem(where, "missing required key 'channel'")
    if channel not in CHANNEL_NAMES:
        return Problem(
            positions.locate(("channel",)),
            f"unknown channel {channel!r}; use one of: {', '.join(CHANNEL_NAMES)}",
            "channel",
        )
    return None
