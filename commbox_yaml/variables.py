"""Template variables: var files, --var-file, COMMBOX_VAR_*, --var, and the env allowlist."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from commbox_yaml.errors import Location, Problem, UserError, ValidationFailed
from commbox_yaml.hints import closest
from commbox_yaml.project import Project
from commbox_yaml.redact import Redactor
from commbox_yaml.source import PathKey, Positions, load_single
from commbox_yaml.written import Written, plain

ENV_PREFIX = "COMMBOX_VAR_"
RESERVED = frozenset({"env", "item", "key", "definition"})


@dataclass(frozen=True)
class Variables:
    """The variables templates see, and the secrets among them."""

    values: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    sensitive_names: frozenset[str] = frozenset()
    # name -> the var file its value came from (names set by the environment or --var: none)
    sources: dict[str, VarFile] = field(default_factory=dict)

    def locate(self, path: tuple[str | int, ...]) -> Location | None:
        """Where the value at `path` (a variable's name, then keys and indexes) was written."""
        source = self.sources.get(str(path[0])) if path else None
        if source is None:
            return None
        positions = source.positions()
        return positions.values.get(path) if positions is not None else None

    def find(self, value: Any, names: Iterable[str]) -> list[Location]:
        """Where var files wrote `value` as a leaf under the variables `names` (for errors about
        values that came from them); a file is read again with every position only then."""
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            return []
        found: list[Location] = []
        for name in names:
            source = self.sources.get(name)
            if source is not None:
                found.extend(source.find(name, value))
        return found

    # Names set by --var or COMMBOX_VAR_ (name, how), checked against what templates use.
    given: tuple[tuple[str, str], ...] = ()
    token: str = field(default="", repr=False)  # the API token, when set: never in templates

    def sensitive_values(self) -> set[str]:
        """The text of every sensitive value (leaves of containers too; `env.NAME` when NAME
        is listed as sensitive), for redaction."""
        found: set[str] = set()
        for name in self.sensitive_names:
            if name in self.values:
                _leaves(self.values[name], found)
            if name in self.env:
                found.add(self.env[name])
        return {v for v in found if v}

    def secrets(self) -> set[str]:
        """Everything no output, plan file or ledger may show or depend on."""
        return self.sensitive_values() | token_forms(self.token)

    def redactor(self) -> Redactor:
        """The placeholder substitution fingerprints and field hashes are computed with."""
        return Redactor(self.secrets(), guard_cuts=False)


def token_forms(raw: str | None) -> set[str]:
    """The token as set in the environment, and as sent (surrounding blanks stripped)."""
    return {form for form in (raw, (raw or "").strip()) if form}


@dataclass(frozen=True)
class VarFile:
    """A var file, read again with every position when an error needs a value's origin."""

    path: Path
    display: str
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def positions(self) -> Positions | None:
        if "positions" not in self._cache:
            try:
                doc = load_single(self.path, self.display)
            except UserError:
                doc = None  # changed since it was loaded: no origin, never a new error
            self._cache["positions"] = doc.positions if doc is not None else None
            self._cache["value"] = doc.value if doc is not None else None
        positions: Positions | None = self._cache["positions"]
        return positions

    def find(self, name: str, value: Any) -> list[Location]:
        positions = self.positions()
        data = self._cache.get("value")
        if positions is None or not isinstance(data, dict) or name not in data:
            return []
        index: dict[tuple[str, Any], list[Location]] = self._cache.setdefault("index", {})
        if name not in self._cache.setdefault("indexed", set()):
            self._cache["indexed"].add(name)
            for path, leaf in _leaf_paths(data[name], (name,)):
                location = positions.values.get(path)
                if location is not None:
                    index.setdefault(_leaf_key(leaf), []).append(location)
        return list(index.get(_leaf_key(value), []))


def _leaf_key(value: Any) -> tuple[str, Any]:
    return ("text" if isinstance(value, str) else "number", value)


def _leaf_paths(value: Any, path: PathKey) -> Iterable[tuple[PathKey, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaf_paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaf_paths(item, (*path, i))
    elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
        yield path, value


def _leaves(value: Any, out: set[str]) -> None:
    if isinstance(value, Mapping):
        for v in value.values():
            _leaves(v, out)
    elif isinstance(value, list):
        for v in value:
            _leaves(v, out)
    elif isinstance(value, Written):  # as written ("0417"), and as YAML read it (271)
        out.update({value.written, repr(plain(value))})
    elif value is not None and not isinstance(value, bool):
        out.add(str(value))


_INT = re.compile(r"^-?(0|[1-9][0-9]*)$")
_FLOAT = re.compile(r"^-?[0-9]+\.[0-9]+$")


def parse_scalar(text: str) -> Any:
    """A --var or COMMBOX_VAR_ value: the text as typed, unless it is a number or true/false
    that a template writes back exactly as typed ('3' is 3, '1.5' is 1.5, 'true' is True).

    So nothing typed is ever changed: '1.10', '1e3', '0417' (a PIN), '12:30', 'yes', 'null'
    and '' stay the text they are.
    """
    if text in ("true", "false"):
        return text == "true"
    if _INT.match(text) and str(int(text)) == text:
        return int(text)
    if _FLOAT.match(text) and repr(float(text)) == text:
        return float(text)
    return text


def load_variables(
    project: Project,
    var_files: Sequence[str] = (),
    cli_vars: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> Variables:
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, VarFile] = {}
    given: list[tuple[str, str]] = []

    def put(name: str, value: Any, where: Location | None, source: VarFile | None = None) -> None:
        if name in RESERVED:
            raise UserError(
                f"variable name '{name}' is reserved for templates ({', '.join(sorted(RESERVED))})",
                where,
            )
        values[name] = value
        sources.pop(name, None)
        if source is not None:
            sources[name] = source

    files: list[tuple[str, Location | None]] = [
        (rel, project.where("vars", i)) for i, rel in enumerate(project.vars)
    ]
    files += [(rel, None) for rel in var_files]
    for rel, where in files:
        source, entries = _var_file(project, rel, where)
        for name, value, loc in entries:
            put(name, value, loc, source)
    for env_name in sorted(environ):
        if env_name.startswith(ENV_PREFIX) and len(env_name) > len(ENV_PREFIX):
            name = env_name[len(ENV_PREFIX) :]
            put(name, parse_scalar(environ[env_name]), None)
            given.append((name, env_name))
    for assignment in cli_vars:
        name, sep, text = assignment.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UserError(
                f"--var {assignment!r} is not NAME=VALUE; write e.g. --var version=1.4.0"
            )
        put(name, parse_scalar(text), None)
        given.append((name, f"--var {name}"))

    env = {name: environ[name] for name in project.env if name in environ}
    _check_sensitive_names(project, values)
    token = environ.get(project.api.token_env, "")
    return Variables(values, env, frozenset(project.sensitive), sources, tuple(given), token)


def _check_sensitive_names(project: Project, values: dict[str, Any]) -> None:
    """A `sensitive:` name that names nothing protects nothing: a typo would show the value."""
    known = [*values, *project.env]
    problems = []
    for index, name in enumerate(project.sensitive):
        if name in values or name in project.env:
            continue
        close = closest(name, known)
        hint = f"did you mean '{close}'? " if close else ""
        problems.append(
            Problem(
                project.where("sensitive", index),
                f"'{name}' is not a variable or an 'env:' name, so nothing would be redacted; "
                f"{hint}Define it in a vars file (a placeholder will do when CI sets the real "
                f"value with COMMBOX_VAR_{name}), or fix the name",
                f"sensitive[{index}]",
            )
        )
    if problems:
        raise ValidationFailed(problems)


def _var_file(
    project: Project, relative: str, where: Location | None
) -> tuple[VarFile, list[tuple[str, Any, Location | None]]]:
    path = project.resolve(relative, where or Location(relative), "var file")
    display = project.display(path)
    if path.is_dir():
        raise UserError(
            f"var file {relative!r} is a folder, not a file", where or Location(relative)
        )
    if not path.is_file():
        raise UserError(f"var file {relative!r} not found", where or Location(relative))
    source = VarFile(path, display)
    # Values are located only for an error; one YAML reads as other text is kept wrapped.
    doc = load_single(path, display, depth=1, written=True)
    if doc is None:
        return source, []
    if not isinstance(doc.value, dict):
        raise UserError("a var file must be a mapping of NAME: value", doc.location)
    out = []
    for name, value in doc.value.items():  # the loader keeps every mapping key as text
        out.append((name, value, doc.positions.locate_key((name,))))
    return source, out


def unused_warnings(variables: Variables, used: set[str] | None) -> list[str]:
    """A warning for each --var / COMMBOX_VAR_ name no template uses: most likely a typo."""
    if used is None:
        return []
    candidates = used - RESERVED
    warnings = []
    for name, how in variables.given:
        if name not in used:
            near = closest(name, candidates)
            hint = f"did you mean '{near}'?" if near else "check the name, or leave it out"
            warnings.append(f"{how} is not used by any template; {hint}")
    return warnings
