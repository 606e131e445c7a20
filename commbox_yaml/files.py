"""Files a user names on the command line: written whole or not at all, read with a clear
error when the name is a folder or is missing."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from commbox_yaml.errors import UserError


def unreadable(path: Path) -> str | None:
    """Why `path` cannot be read as a file ("is a folder", "does not exist"), or None."""
    if path.is_dir():
        return "is a folder, not a file"
    if not path.exists():
        return "does not exist"
    return None


def write_whole(path: Path, display: str, what: str, write: Callable[[TextIO], None]) -> None:
    """Write `path` through a temporary file beside it, moved into place when complete.

    A name that cannot be written (a folder, a missing or non-folder parent, no permission)
    is one clear error, and nothing is left behind: not the file, not the temporary one.
    The temporary name is unique, so a file of the user's that happens to be called
    `NAME.tmp` is never overwritten.
    """
    _check_writable(path, display, what)
    try:
        handle, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
        )
    except OSError as exc:
        raise UserError(f"{what} {display}: cannot write there ({exc.strerror})") from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            write(out)
        os.chmod(temporary, 0o666 & ~_umask())  # as an ordinary new file, not mkstemp's 0600
        os.replace(temporary, path)
    except BaseException as exc:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise UserError(f"{what} {display}: cannot write it ({exc.strerror})") from None
        raise


def _check_writable(path: Path, display: str, what: str) -> None:
    if path.is_dir():
        raise UserError(f"{what} {display} is a folder; name a file (in it, or elsewhere)")
    parent = path.parent
    if not parent.exists():
        raise UserError(
            f"{what} {display}: the folder {parent} does not exist; create it first "
            "(mkdir -p), or name a file in an existing folder"
        )
    if not parent.is_dir():
        raise UserError(f"{what} {display}: {parent} is a file, not a folder")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def human_size(n: float) -> str:
    """A byte count for people: 512 B, 182 KiB, 3.4 MiB."""
    if n < 1024:
        return f"{n:.0f} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.0f} KiB"
    return f"{n / 1048576:.1f} MiB"
