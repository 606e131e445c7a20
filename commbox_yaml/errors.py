"""Errors a user can act on, and where in their files they come from."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Location:
    """A place in a user's file: 1-based line and column, path relative to the project."""

    file: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.col}"
        return self.file


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the user's input, located as precisely as known."""

    location: Location | None
    message: str
    path: str = ""
    item_key: str | None = None

    def sort_key(self) -> tuple[str, int, int, str, str]:
        loc = self.location or Location("")
        return (loc.file, loc.line, loc.col, self.path, self.message)

    def __str__(self) -> str:
        parts = []
        if self.location is not None:
            parts.append(str(self.location))
        if self.item_key is not None:
            parts.append(f"[{self.item_key}]")
        if self.path:
            parts.append(self.path)
        parts.append(self.message)
        return ": ".join(parts)


class CommboxError(Exception):
    """Base of every error this package raises on purpose."""


class UserError(CommboxError):
    """Bad input or a refused operation: shown to the user as one line, exit code 1."""

    def __init__(self, message: str, location: Location | None = None, path: str = "") -> None:
        super().__init__(message)
        self.problem = Problem(location, message, path)

    def __str__(self) -> str:
        return str(self.problem)


class ValidationFailed(CommboxError):
    """Several problems found while checking a project; all of them are reported."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = sorted(problems, key=Problem.sort_key)
        super().__init__(f"{len(self.problems)} problem(s)")
