"""What every command gets: global options, the console, and the project on demand."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from commbox_yaml.build import Build, build
from commbox_yaml.errors import UserError
from commbox_yaml.ledger import FileLedger, LedgerStore
from commbox_yaml.ledger.url import SCHEMES, LedgerUrl, MalformedUrl, parse, password_in
from commbox_yaml.output import Console
from commbox_yaml.project import SANDBOX_LEDGER, ApiSettings, Project, load_project
from commbox_yaml.redact import MIN_SECRET_LENGTH
from commbox_yaml.variables import Variables, load_variables, token_forms


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

    def check_directory(self) -> None:
        """-C names a folder that exists: a missing one must not fall back to a project
        found above it (the enclosing project would be planned or applied instead)."""
        if not self.directory.exists():
            raise UserError(f"no such folder: {self.directory} (-C takes an existing folder)")
        if not self.directory.is_dir():
            raise UserError(f"-C {self.directory} is a file, not a folder; give its folder")

    def reset(self) -> None:
        """Forget the project and variables read so far: the next use reads them again."""
        self._project = None
        self._variables = None

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

    def build(self, targets: Sequence[str] = (), show_warnings: bool = True) -> Build:
        result = build(self.project(), self.variables(), targets)
        if show_warnings:  # validate shows them itself (as errors with --strict, or in JSON)
            for warning in result.warnings:
                self.console.err(f"warning: {warning}")
        return result

    def ledger(self, sandbox: bool = False) -> LedgerStore:
        """The send ledger, or the sandbox's own one (a rehearsal never marks a real send)."""
        project = self.project()
        # Learn the sensitive values first: every command that reads a ledger prints its keys,
        # and a ledger written before secrets were refused in keys may hold one.
        self.variables()
        if project.ledger_url and not sandbox:
            return self._database_ledger(project.ledger_url, project.ledger_namespace)
        path = self._ledger_file(project, sandbox)
        return FileLedger(path, project.display(path))

    def ledger_location(self, sandbox: bool = False) -> str:
        """Where the ledger lives, for `ledger path`: the file's absolute path, or the
        database as `postgresql://USER@HOST:PORT/DB (namespace N)`, never with its password.
        Nothing is opened, and no variable is needed."""
        project = self.project()
        if project.ledger_url and not sandbox:
            return self._check_database_url(project.ledger_url).display(project.ledger_namespace)
        return str(self._ledger_file(project, sandbox))

    @staticmethod
    def _ledger_file(project: Project, sandbox: bool) -> Path:
        where = project.where("ledger", "path")
        path = project.resolve(project.ledger_path, where, "ledger path")
        if sandbox:
            real, path = path, project.resolve(SANDBOX_LEDGER, None, "sandbox ledger")
            if path == real:  # a symlink made them one file
                raise UserError(
                    f"{SANDBOX_LEDGER} is the real ledger {project.display(real)}: a rehearsal "
                    "would mark real sends; remove that link"
                )
        return path

    def _check_database_url(self, url: str) -> LedgerUrl:
        # The password may come from COMMBOX_LEDGER_URL or PGPASSWORD: never show it, also
        # when the URL cannot be read (password_in then gives what it could be part of).
        secret = password_in(url) or ""
        self.console.redactor.add(
            [secret, quote(secret, safe=""), os.environ.get("PGPASSWORD", "")]
        )
        if not url.startswith(tuple(f"{scheme}://" for scheme in SCHEMES)):
            raise UserError(
                "COMMBOX_LEDGER_URL must be a postgresql:// URL "
                "(postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE)"
            )
        try:
            return parse(url)
        except MalformedUrl as exc:
            source = "COMMBOX_LEDGER_URL" if os.environ.get("COMMBOX_LEDGER_URL") else "ledger.url"
            raise UserError(exc.explain(source)) from None

    def _database_ledger(self, url: str, namespace: str) -> LedgerStore:
        parsed = self._check_database_url(url)
        try:
            from commbox_yaml.ledger.postgres import PostgresLedger
        except ImportError:
            raise UserError(
                "ledger.url puts the ledger in PostgreSQL, which needs the postgres extra: "
                "pip install 'commbox-yaml[postgres]'"
            ) from None
        return PostgresLedger(url, namespace, parsed.display(namespace))

    def path(self, user_path: str) -> Path:
        """A path given on the command line: relative to -C DIR, as the other paths are."""
        return self.directory / user_path
