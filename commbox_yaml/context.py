"""What every command gets: global options, the console, and the project on demand."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from commbox_yaml.build import Build, build
from commbox_yaml.ledger import Ledger
from commbox_yaml.output import MIN_SECRET_LENGTH, Console
from commbox_yaml.project import ApiSettings, Project, load_project
from commbox_yaml.variables import Variables, load_variables, token_forms

SANDBOX_LEDGER = ".commbox/sandbox-ledger.jsonl"


@dataclass
class Context:
    directory: Path
    console: Console
    var_files: list[str] = field(default_factory=list)
    var_assignments: list[str] = field(default_factory=list)
    debug: bool = False
    _project: Project | None = None
    _variables: Variables | None = None

    def __post_init__(self) -> None:
        # Every command redacts the token from its first line on, not only apply.
        self.console.redactor.add(token_forms(os.environ.get(ApiSettings.token_env)))

    def project(self) -> Project:
        if self._project is None:
            self._project = load_project(self.directory)
            self.console.redactor.add(token_forms(os.environ.get(self._project.api.token_env)))
        return self._project

    def variables(self) -> Variables:
        if self._variables is None:
            self._variables = load_variables(self.project(), self.var_files, self.var_assignments)
            secrets = self._variables.sensitive_values()
            self.console.redactor.add(self._variables.secrets())
            if any(len(secret) < MIN_SECRET_LENGTH for secret in secrets):
                self.console.err(
                    f"warning: a sensitive variable has a value shorter than {MIN_SECRET_LENGTH} "
                    "characters; it is shown as (sensitive) only where it stands as a whole word, "
                    "so parts of longer words may still show it: use a longer value"
                )
        return self._variables

    def build(self, targets: Sequence[str] = ()) -> Build:
        return build(self.project(), self.variables(), targets)

    def ledger(self, sandbox: bool = False) -> Ledger:
        """The send ledger, or the sandbox's own one (a rehearsal never marks a real send)."""
        project = self.project()
        # Learn the sensitive values first: every command that reads a ledger prints its keys,
        # and a ledger written before secrets were refused in keys may hold one.
        self.variables()
        relative = SANDBOX_LEDGER if sandbox else project.ledger_path
        path = project.resolve(relative, project.where("ledger", "path"), "ledger path")
        return Ledger(path, project.display(path))

    def path(self, user_path: str) -> Path:
        """A path given on the command line: relative to -C DIR, as the other paths are."""
        return self.directory / user_path
