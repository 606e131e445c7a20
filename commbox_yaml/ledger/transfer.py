"""Moving events between ledgers: `ledger export` and `ledger import FILE`."""

from __future__ import annotations

from pathlib import Path

from commbox_yaml.errors import UserError
from commbox_yaml.files import unreadable
from commbox_yaml.keys import MAX_KEY_LENGTH
from commbox_yaml.ledger.file import FileLedger
from commbox_yaml.ledger.model import keys_of


def read_export(path: Path, display: str) -> tuple[list[str], list[str]]:
    """A file ledger's (or an export's) event lines, and warnings about a torn last line."""
    why = unreadable(path)
    if why is not None:
        raise UserError(f"{display} {why}: 'ledger import' reads a ledger file")
    source = FileLedger(path, display)
    view = source.read()
    lines = list(source.lines())
    _check_key_lengths(lines, display)
    return lines, list(view.warnings)


def _check_key_lengths(lines: list[str], display: str) -> None:
    """Keys longer than any apply could make are refused before anything is imported (the
    database's index would refuse them halfway)."""
    for key in keys_of(lines):
        if len(key) > MAX_KEY_LENGTH:
            raise UserError(
                f"{display} holds a key of {len(key)} characters ({key[:40]!r}...); a key is "
                f"at most {MAX_KEY_LENGTH} characters: nothing was imported"
            )
