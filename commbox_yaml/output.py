"""Writing to the terminal: colours, redaction of secrets, GitHub annotations."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from commbox_yaml.errors import Problem

REDACTED = "(sensitive)"
_COLORS = {"red": "31", "green": "32", "yellow": "33", "cyan": "36", "bold": "1", "dim": "2"}


def human_size(n: float) -> str:
    """A byte count for people: 512 B, 182 KiB, 3.4 MiB."""
    if n < 1024:
        return f"{n:.0f} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.0f} KiB"
    return f"{n / 1048576:.1f} MiB"


class Redactor:
    """Replaces every occurrence of a secret value, also inside longer text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        self._secrets.update(s for s in secrets if s)
        ordered = sorted(self._secrets, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def text(self, value: str) -> str:
        return value if self._pattern is None else self._pattern.sub(REDACTED, value)

    def data(self, value: Any) -> Any:
        """A copy of JSON-like data with every secret redacted (keys included)."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.data(k): self.data(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.data(v) for v in value]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return REDACTED if str(value) in self._secrets else value
        return value


class Console:
    """stdout/stderr for one command run; every line goes through the redactor."""

    def __init__(
        self,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
        color: bool | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.redactor = redactor or Redactor()
        if color is None:
            color = is_terminal(self.stdout) and "NO_COLOR" not in os.environ
        self.color = color
        self.github = os.environ.get("GITHUB_ACTIONS") == "true"

    def style(self, text: str, *styles: str) -> str:
        if not self.color or not styles:
            return text
        codes = ";".join(_COLORS[s] for s in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"

    def out(self, text: str = "") -> None:
        self.stdout.write(self.redactor.text(text) + "\n")

    def err(self, text: str) -> None:
        self.stderr.write(self.redactor.text(text) + "\n")
        self.stderr.flush()

    def json(self, value: Any) -> None:
        self.stdout.write(json.dumps(self.redactor.data(value), indent=2, ensure_ascii=False))
        self.stdout.write("\n")

    def problems(self, problems: list[Problem], command: str) -> None:
        """Each problem as one line (identical ones from many items folded), then a summary."""
        for problem, count in fold_problems(problems):
            line = str(problem)
            if count > 1:
                line += f" (and {count - 1} more item{'s' if count > 2 else ''})"
            self.err(f"{self.style('error', 'red', 'bold')}: {line}")
            if self.github:
                self.stdout.write(self.redactor.text(annotation(problem)) + "\n")
        files = {p.location.file for p in problems if p.location is not None}
        noun = "error" if len(problems) == 1 else "errors"
        where = f" in {len(files)} file{'s' if len(files) != 1 else ''}" if files else ""
        self.err(f"{command}: {len(problems)} {noun}{where}")


def fold_problems(problems: list[Problem]) -> list[tuple[Problem, int]]:
    """Problems with the same place and text (one per for_each item) counted once."""
    folded: dict[tuple[Any, ...], list[Any]] = {}
    for problem in problems:
        key = (problem.location, problem.path, problem.message)
        if key in folded:
            folded[key][1] += 1
        else:
            folded[key] = [problem, 1]
    return [(p, n) for p, n in folded.values()]


def _escape(value: str, property_value: bool = False) -> str:
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if property_value:
        value = value.replace(":", "%3A").replace(",", "%2C")
    return value


def annotation(problem: Problem) -> str:
    """A GitHub Actions workflow command that marks the problem on the file."""
    text = ": ".join(part for part in (problem.path, problem.message) if part)
    if problem.item_key is not None:
        text = f"[{problem.item_key}] {text}"
    loc = problem.location
    if loc is None:
        return f"::error::{_escape(text)}"
    props = f"file={_escape(loc.file, True)}"
    if loc.line:
        props += f",line={loc.line},col={loc.col}"
    return f"::error {props}::{_escape(text)}"


def is_terminal(stream: TextIO) -> bool:
    """Whether a stream is a terminal (a closed or replaced stream is not)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
