"""commbox.yaml: the project file, its settings, and paths confined to the project root."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from commbox_yaml.errors import Location, UserError, ValidationFailed
from commbox_yaml.source import Positions, load_single
from commbox_yaml.validate import schema_problems

PROJECT_FILE = "commbox.yaml"
DEFAULT_BASE_URL = "https://api.commbox.io"


@dataclass(frozen=True)
class ApiSettings:
    base_url: str = DEFAULT_BASE_URL
    token_env: str = "COMMBOX_API_TOKEN"
    timeout_s: float = 30
    concurrency: int = 4
    rate_per_s: float = 10
    max_attempts: int = 5
    max_retry_after_s: float = 120
    max_attachment_mb: float = 25
    ca_bundle: str | None = None  # relative to the project root, or absolute
    reconcile_after_s: float = 60


@dataclass(frozen=True)
class Project:
    """A loaded, checked commbox.yaml."""

    root: Path
    api: ApiSettings = field(default_factory=ApiSettings)
    streams: dict[str, str] = field(default_factory=dict)
    messages: tuple[str, ...] = ("messages/**/*.yaml",)
    vars: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    sensitive: tuple[str, ...] = ()
    max_sends: int = 500
    defaults: dict[str, Any] = field(default_factory=dict)
    defaults_positions: Positions = field(default_factory=Positions)
    ledger_path: str = ".commbox/ledger.jsonl"
    ledger_must_exist: bool = False
    positions: Positions = field(default_factory=Positions)

    @property
    def file(self) -> str:
        return PROJECT_FILE

    def where(self, *path: str | int) -> Location:
        return self.positions.locate(path) or Location(PROJECT_FILE)

    def resolve(self, relative: str, location: Location | None, what: str = "path") -> Path:
        return resolve_inside(self.root, relative, location, what)

    def display(self, path: Path) -> str:
        """A path as the user would write it: relative to the project root, with '/'."""
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return str(path)


def resolve_inside(root: Path, relative: str, location: Location | None, what: str) -> Path:
    """`relative` resolved against the root; refused when it escapes it (.., absolute, symlink)."""
    if "\x00" in relative:
        raise UserError(f"{what} {relative!r} contains a NUL byte", location)
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root):
        raise UserError(
            f"{what} {relative!r} resolves outside the project root; "
            "use a path relative to the folder of commbox.yaml",
            location,
        )
    return candidate


def find_root(start: Path) -> Path:
    """The nearest folder at or above `start` holding commbox.yaml."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / PROJECT_FILE).is_file():
            return folder
    raise UserError(
        f"no {PROJECT_FILE} found in {start} or any folder above it; "
        "run 'commbox-yaml init' or pass -C DIR"
    )


def load_project(start: Path) -> Project:
    root = find_root(start)
    doc = load_single(root / PROJECT_FILE, PROJECT_FILE)
    if doc is None:
        raise UserError("is empty; it needs at least 'version: 1'", Location(PROJECT_FILE, 1, 1))
    problems = schema_problems(doc.value, "commbox", doc.positions)
    if problems:
        raise ValidationFailed(problems)
    data: dict[str, Any] = doc.value
    api = ApiSettings(**data.get("api", {}))
    base_url = os.environ.get("COMMBOX_BASE_URL") or api.base_url
    api = ApiSettings(**{**api.__dict__, "base_url": base_url.rstrip("/")})
    limits = data.get("limits", {})
    ledger = data.get("ledger", {})
    return Project(
        root=root,
        api=api,
        streams={str(k): v for k, v in data.get("streams", {}).items()},
        messages=tuple(data.get("messages", Project.messages)),
        vars=tuple(data.get("vars", ())),
        env=tuple(data.get("env", ())),
        sensitive=tuple(data.get("sensitive", ())),
        max_sends=limits.get("max_sends", 500),
        defaults=data.get("defaults", {}),
        defaults_positions=doc.positions.under(("defaults",)),
        ledger_path=ledger.get("path", ".commbox/ledger.jsonl"),
        ledger_must_exist=ledger.get("must_exist", False),
        positions=doc.positions,
    )
