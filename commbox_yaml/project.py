"""commbox.yaml: the project file, its settings, and paths confined to the project root."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from commbox_yaml.errors import Location, Problem, UserError, ValidationFailed
from commbox_yaml.hints import did_you_mean_path
from commbox_yaml.ledger.url import MalformedUrl, parse
from commbox_yaml.source import Positions, load_single
from commbox_yaml.streams import alias_ids
from commbox_yaml.validate import schema_problems

PROJECT_FILE = "commbox.yaml"
SANDBOX_LEDGER = ".commbox/sandbox-ledger.jsonl"
DEFAULT_BASE_URL = "https://api.commbox.io"
# Environment variables that may hold the shared ledger's database password.
LEDGER_SECRETS = {
    "COMMBOX_LEDGER_URL": "the ledger database's URL and password",
    "PGPASSWORD": "the ledger database's password",
}


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
    ledger_url: str | None = None  # a PostgreSQL ledger, from commbox.yaml or COMMBOX_LEDGER_URL
    ledger_namespace: str = "default"
    positions: Positions = field(default_factory=Positions)
    # The nearest existing path to each missing one named in this run: a message_file
    # misspelt in a fan-out is missing for every item, and the folder is read once.
    _near: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def file(self) -> str:
        return PROJECT_FILE

    def where(self, *path: str | int) -> Location:
        return self.positions.locate(path) or Location(PROJECT_FILE)

    def resolve(self, relative: str, location: Location | None, what: str = "path") -> Path:
        """`relative` under the root (see resolve_inside). A file that is read as soon as it
        is named (FILES_TO_READ) must exist: a missing one is refused with the nearest path
        that does exist, as a misspelt name mostly is."""
        path = resolve_inside(self.root, relative, location, what)
        noun = FILES_TO_READ.get(what)
        if noun is not None and not path.exists():
            hint = self._near.get(relative)
            if hint is None:
                hint = did_you_mean_path(self.root, relative) or _RELATIVE
                self._near[relative] = hint
            raise UserError(f"{noun} {relative!r} not found{hint}", location)
        return path

    def display(self, path: Path) -> str:
        """A path as the user would write it: relative to the project root, with '/'."""
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return str(path)


# The `what` of Project.resolve for a file read as soon as it is named, and the word its
# not-found message uses (render.py resolves message_file through Project.resolve too).
_RELATIVE = " (paths are relative to the project root)"
FILES_TO_READ = {"var file": "var file", "attachment": "attachment", "message_file": "file"}


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


def _check_ledger_path(root: Path, path: str | None, positions: Positions) -> None:
    """The real ledger is never the sandbox's: a rehearsal must not mark a real send."""
    if path is None:
        return
    location = positions.locate(("ledger", "path")) or Location(PROJECT_FILE)
    if resolve_inside(root, path, location, "ledger.path") == (root / SANDBOX_LEDGER).resolve():
        raise ValidationFailed(
            [
                Problem(
                    location,
                    f"{path!r} is the sandbox's ledger; the real ledger must be another file "
                    "(the default is .commbox/ledger.jsonl)",
                    "ledger.path",
                )
            ]
        )


def _check_ledger_url(ledger: dict[str, Any], positions: Positions) -> None:
    """commbox.yaml is committed: a password written into it would be published."""
    url = ledger.get("url")
    problems = []
    where = positions.locate(("ledger", "url")) or Location(PROJECT_FILE)
    if url is not None:
        try:
            password = parse(url).password
        except MalformedUrl as exc:
            problems.append(Problem(where, exc.explain("the URL"), "ledger.url"))
        else:
            if password is not None:
                problems.append(
                    Problem(
                        where,
                        "holds a password, and commbox.yaml is a committed file: remove it and "
                        "give it in COMMBOX_LEDGER_URL, PGPASSWORD or ~/.pgpass",
                        "ledger.url",
                    )
                )
    if url is not None and "path" in ledger:
        problems.append(
            Problem(
                positions.locate(("ledger", "path")) or Location(PROJECT_FILE),
                "ledger.path and ledger.url name two different ledgers: keep one ('commbox-yaml "
                "ledger import FILE' moves a file ledger's events into the database)",
                "ledger.path",
            )
        )
    if problems:
        raise ValidationFailed(problems)


def find_root(start: Path) -> Path:
    """The nearest folder at or above `start` holding commbox.yaml."""
    start = start.resolve()
    for folder in (start, *start.parents):
        candidate = folder / PROJECT_FILE
        if candidate.is_file():
            return folder
        if candidate.is_dir():  # not a project file, and saying "none found" would mislead
            raise UserError(
                f"{candidate} is a folder, not a file: the project file is a YAML file named "
                f"{PROJECT_FILE}; rename that folder, or run 'commbox-yaml init' for a new "
                "project"
            )
    raise UserError(
        f"no {PROJECT_FILE} found in {start} or any folder above it; "
        "run 'commbox-yaml init' or pass -C DIR"
    )


def _check_env_secrets(env: list[str], api: ApiSettings, positions: Positions) -> None:
    """`env:` makes a variable visible to templates, and so printable: never the token."""
    secret = {api.token_env: "the API token (api.token_env)", **LEDGER_SECRETS}
    problems = [
        Problem(
            positions.locate(("env", index)) or Location(PROJECT_FILE),
            f"{name} holds {secret[name]}, which templates must never see; remove it from 'env:'",
            f"env[{index}]",
        )
        for index, name in enumerate(env)
        if name in secret
    ]
    if problems:
        raise ValidationFailed(problems)


def load_project(start: Path) -> Project:
    root = find_root(start)
    doc = load_single(root / PROJECT_FILE, PROJECT_FILE)
    if doc is None:
        raise UserError("is empty; it needs at least 'version: 1'", Location(PROJECT_FILE, 1, 1))
    problems = schema_problems(doc.value, "commbox", doc.positions)
    if problems:
        raise ValidationFailed(problems)
    data: dict[str, Any] = doc.value
    streams, problems = alias_ids(data.get("streams", {}), doc.positions, PROJECT_FILE)
    if problems:
        raise ValidationFailed(problems)
    api = ApiSettings(**data.get("api", {}))
    _check_env_secrets(data.get("env", ()), api, doc.positions)
    base_url = os.environ.get("COMMBOX_BASE_URL") or api.base_url
    api = ApiSettings(**{**api.__dict__, "base_url": base_url.rstrip("/")})
    limits = data.get("limits", {})
    ledger = data.get("ledger", {})
    _check_ledger_path(root, ledger.get("path"), doc.positions)
    _check_ledger_url(ledger, doc.positions)
    return Project(
        root=root,
        api=api,
        streams=streams,
        messages=tuple(data.get("messages", Project.messages)),
        vars=tuple(data.get("vars", ())),
        env=tuple(data.get("env", ())),
        sensitive=tuple(data.get("sensitive", ())),
        max_sends=limits.get("max_sends", 500),
        defaults=data.get("defaults", {}),
        defaults_positions=doc.positions.under(("defaults",)),
        ledger_path=ledger.get("path", ".commbox/ledger.jsonl"),
        ledger_must_exist=ledger.get("must_exist", False),
        ledger_url=os.environ.get("COMMBOX_LEDGER_URL") or ledger.get("url"),
        ledger_namespace=ledger.get("namespace", "default"),
        positions=doc.positions,
    )
