"""Template variables: var files, --var-file, COMMBOX_VAR_*, --var, and the env allowlist."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from commbox_yaml.errors import Location, UserError
from commbox_yaml.hints import closest
from commbox_yaml.project import Project
from commbox_yaml.source import load_single

ENV_PREFIX = "COMMBOX_VAR_"
RESERVED = frozenset({"env", "item", "key", "definition"})


@dataclass(frozen=True)
class Variables:
    """The variables templates see, and where each came from."""

    values: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    sensitive_names: frozenset[str] = frozenset()
    # Names set by --var or COMMBOX_VAR_ (name, how), checked against what templates use.
    given: tuple[tuple[str, str], ...] = ()

    def sensitive_values(self) -> set[str]:
        """The text of every sensitive value, for redaction (leaves of containers too)."""
        found: set[str] = set()
        for name in self.sensitive_names:
            if name in self.values:
                _leaves(self.values[name], found)
        return {v for v in found if v}


def _leaves(value: Any, out: set[str]) -> None:
    if isinstance(value, Mapping):
        for v in value.values():
            _leaves(v, out)
    elif isinstance(value, list):
        for v in value:
            _leaves(v, out)
    elif value is not None and not isinstance(value, bool):
        out.add(str(value))


_INT = re.compile(r"^[-+]?(0|[1-9][0-9]*)$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+\.[0-9]*|[0-9]+)([eE][-+]?[0-9]+)?$")


def parse_scalar(text: str) -> Any:
    """A --var or COMMBOX_VAR_ value as a YAML 1.2 core scalar: '3' is 3, 'true' is True.

    Unlike YAML 1.1, a number with a leading zero ('0417', a PIN), a time ('12:30') and
    'yes'/'no' stay text, so a value from CI is never silently turned into another one.
    """
    stripped = text.strip()
    lowered = stripped.lower()
    if lowered in ("", "~", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    if _INT.match(stripped):
        return int(stripped)
    if _FLOAT.match(stripped) and not re.match(r"^[-+]?0[0-9]", stripped):
        return float(stripped)
    return text


def load_variables(
    project: Project,
    var_files: Sequence[str] = (),
    cli_vars: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> Variables:
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    given: list[tuple[str, str]] = []

    def put(name: str, value: Any, where: Location | None) -> None:
        if name in RESERVED:
            raise UserError(
                f"variable name '{name}' is reserved for templates ({', '.join(sorted(RESERVED))})",
                where,
            )
        values[name] = value

    files: list[tuple[str, Location | None]] = [
        (rel, project.where("vars", i)) for i, rel in enumerate(project.vars)
    ]
    files += [(rel, None) for rel in var_files]
    for rel, where in files:
        for name, value, loc in _var_file(project, rel, where):
            put(name, value, loc)
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
    return Variables(values, env, frozenset(project.sensitive), tuple(given))


def _var_file(
    project: Project, relative: str, where: Location | None
) -> Iterable[tuple[str, Any, Location | None]]:
    path = project.resolve(relative, where, "var file")
    display = project.display(path)
    if not path.is_file():
        raise UserError(f"var file {relative!r} not found", where or Location(relative))
    doc = load_single(path, display, depth=1)  # only the names are ever located
    if doc is None:
        return []
    if not isinstance(doc.value, dict):
        raise UserError("a var file must be a mapping of NAME: value", doc.location)
    out = []
    for name, value in doc.value.items():  # the loader keeps every mapping key as text
        out.append((name, value, doc.positions.locate_key((name,))))
    return out


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
