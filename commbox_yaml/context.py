"""What every command gets: global options, the console, and the project on demand."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from commbox_yaml.build import Build, build
from commbox_yaml.ledger import Ledger
from commbox_yaml.output import Console
from commbox_yaml.project import Project, load_project
from commbox_yaml.variables import Variables, load_variables

SANDBOX_LEDGER = ".commbox/sandbox-ledger.jsonl"
MIN_SECRET_LENGTH = 4


@dataclass
class Context:
    directory: Path
    console: Console
    var_files: list[str] = field(default_factory=list)
    var_assignments: list[str] = field(default_factory=list)
    debug: bool = False
    _project: Project | None = None
    _variables: Variables | None = None

    def project(self) -> Project:
        if self._project is None:
            self._project = load_project(self.directory)
        return self._project

    def variables(self) -> Variables:
        if self._variables is None:
            self._variables = load_variables(self.project(), self.var_files, self.var_assignments)
            secrets = self._variables.sensitive_values()
            self.console.redactor.add(secrets)
            if any(len(secret) < MIN_SECRET_LENGTH for secret in secrets):
                self.console.err(
                    f"warning: a sensitive variable has a value shorter than {MIN_SECRET_LENGTH} "
                    "characters; every occurrence of it in the output is shown as (sensitive)"
                )
        return self._variables

    def build(self, targets: Sequence[str] = (), show_warnings: bool = True) -> Build:
        result = build(self.project(), self.variables(), targets)
        if show_warnings:  # validate shows them itself (as errors with --strict, or in JSON)
            for warning in result.warnings:
                self.console.err(f"warning: {warning}")
        return result

    def ledger(self, sandbox: bool = False) -> Ledger:
        """The send ledger, or the sandbox's own one (a rehearsal never marks a real send)."""
        project = self.project()
        relative = SANDBOX_LEDGER if sandbox else project.ledger_path
        path = project.resolve(relative, project.where("ledger", "path"), "ledger path")
        return Ledger(path, project.display(path))

    def path(self, user_path: str) -> Path:
        """A path given on the command line: relative to -C DIR, as the other paths are."""
        return self.directory / user_path
