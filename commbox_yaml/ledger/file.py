"""The file ledger: append-only JSON Lines, each append fsynced, one writer at a time.

The lock is an flock on the ledger file itself, so no file beside it (which people delete to
"fix" a stale lock) decides who may write. `LEDGER.lock` only tells a refused apply who holds
the lock; only the holder writes or removes it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from commbox_yaml.errors import Location, UserError
from commbox_yaml.ledger.appender import Appender, AppendFailed, deleted
from commbox_yaml.ledger.model import (
    WRITE_FIXES,
    LedgerView,
    LedgerWriteError,
    check_new_keys,
    fold,
    now,
    refused_write,
    stamp,
    write_failure,
)

# json.dumps(event, ensure_ascii=False, separators=(",", ":")), its encoder built once
_LINE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_DSYNC = getattr(os, "O_DSYNC", 0)  # appends opened with it are on disk when written
LOCK_ATTEMPTS = 5  # the ledger replaced between open and lock, again and again: give up


class FileLedger:
    """One ledger file: reading, locking, appending."""

    def __init__(self, path: Path, display: str) -> None:
        self.path = path
        self.display = display
        self.warnings: list[str] = []  # what taking the lock had to repair
        self._appender: Appender | None = None  # while locked: group commit, see appender.py

    @property
    def holder_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def exists(self) -> bool:
        return self.path.exists()

    # -- reading ----------------------------------------------------------------------------

    def read(self, keys: Collection[str] | None = None, object_ids: bool = False) -> LedgerView:
        if not self.path.exists():
            return LedgerView(self.display, False, 0, {})
        warnings: list[str] = []
        counted = _Counted(self._events(warnings))
        ids: dict[str, str] | None = {} if object_ids else None
        states = fold(counted, keys, ids)
        return LedgerView(self.display, True, counted.count, states, tuple(warnings), ids or {})

    def lines(self) -> Iterator[str]:
        if not self.path.exists():
            return iter(())
        return iter([line.decode("utf-8") for _, line in self._events([])])

    def _events(self, warnings: list[str]) -> Iterator[tuple[dict[str, Any], bytes]]:
        """(event, stored line) pairs, read a line at a time: a ledger of millions of events
        is never held whole. A torn last line (no newline: the write never finished) is
        skipped with a warning; any other bad line is refused."""
        if self.path.is_dir():
            raise UserError(f"the ledger {self.display} is a folder; {_NOT_A_FOLDER}")
        try:
            handle = self.path.open("rb")
        except OSError as exc:
            raise UserError(f"cannot read the ledger {self.display}: {exc.strerror}") from None
        with handle:
            for number, raw in enumerate(_read_lines(handle, self.display), start=1):
                chunk = raw[:-1] if raw.endswith(b"\n") else raw
                if not chunk.strip():
                    continue
                event = _event(chunk)
                if event is None:
                    if chunk is raw:
                        warnings.append(
                            f"{self.display}:{number}: ignoring a torn last line (a write "
                            "interrupted by a crash)"
                        )
                        continue
                    raise UserError(
                        f"line {number} is not a valid ledger event; restore the file from its "
                        "backup or remove that line by hand",
                        Location(self.display, number, 1),
                    )
                yield event, chunk

    # -- writing ----------------------------------------------------------------------------

    def create(self) -> bool:
        """Create an empty ledger; False when it already exists."""
        if self.path.is_dir():
            raise UserError(f"the ledger {self.display} is a folder; {_NOT_A_FOLDER}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:
            raise self._unopenable(exc) from None
        os.fsync(fd)
        os.close(fd)
        _fsync_dir(self.path.parent)
        return True

    @contextmanager
    def locked(self) -> Iterator[FileLedger]:
        """Hold the exclusive lock (a second apply fails at once); open the file for appends."""
        fd = self._open_locked()
        nonce = f"{os.getpid()}-{id(self)}"
        try:
            self._write_holder(nonce)
            try:
                repaired = self._repair_tail()
            except OSError as exc:
                raise self._unopenable(exc) from None
            self.warnings = [repaired] if repaired else []
            self._appender = Appender(fd, os.fstat(fd).st_size, synced=_DSYNC != 0)
            yield self
        finally:
            if self._appender is not None:
                self._appender.close()  # what is queued goes to disk before the file closes
                self._appender = None
            self._remove_holder(nonce)
            os.close(fd)  # closing releases the lock, after the holder file is gone

    def _open_locked(self) -> int:
        """The ledger opened for appending and locked; retried when it was replaced meanwhile."""
        import fcntl  # POSIX only: apply runs in CI on Linux and macOS

        if self.path.is_dir():
            raise UserError(f"the ledger {self.display} is a folder; {_NOT_A_FOLDER}")
        for _ in range(LOCK_ATTEMPTS):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                existed = self.path.exists()
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _DSYNC, 0o644)
            except OSError as exc:
                raise self._unopenable(exc) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise UserError(
                    f"the ledger {self.display} is locked by another apply ({self._holder()}); "
                    "wait for it to finish"
                ) from None
            if _same_file(fd, self.path):
                if not existed:
                    _fsync_dir(self.path.parent)
                return fd
            os.close(fd)  # the path names another file now: lock that one
        raise UserError(f"the ledger {self.display} keeps being replaced; cannot lock it")

    def _unopenable(self, exc: OSError) -> UserError:
        if exc.errno in (errno.EISDIR, errno.ENOTDIR):
            return UserError(
                f"cannot open the ledger {self.display}: {exc.strerror}; {_NOT_A_FOLDER}"
            )
        return UserError(
            f"cannot write to the ledger {self.display} ({exc.strerror}): {_open_fix(exc)}; "
            "nothing was sent"
        )

    def _write_holder(self, nonce: str) -> None:
        """Say who holds the lock, for the error a refused apply shows; best effort."""
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": now(), "id": nonce}
        tmp = self.holder_path.with_name(f"{self.holder_path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(info) + "\n")
            tmp.replace(self.holder_path)
        except OSError:  # a folder we may not write to: the lock still holds
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)

    def _remove_holder(self, nonce: str) -> None:
        try:
            if json.loads(self.holder_path.read_text()).get("id") == nonce:
                self.holder_path.unlink()
        except (OSError, ValueError, AttributeError):
            pass  # gone, or not ours: leave it

    def _holder(self) -> str:
        try:
            info = json.loads(self.holder_path.read_text() or "{}")
            return f"pid {info['pid']} on {info['host']} since {info['since']}"
        except FileNotFoundError:
            return f"process unknown: {self.holder_path.name} was removed"
        except (OSError, ValueError, KeyError, TypeError):
            return "process unknown"

    def _repair_tail(self) -> str | None:
        """End the file with a newline before appending; a warning when a torn line was cut.

        A crash mid-append leaves a last line with no newline. If it is a whole event (an
        editor dropped the final newline) it is kept; otherwise it never became an event and
        is cut, or the next event would be glued to it.
        """
        with open(self.path, "rb+") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size == 0:
                return None
            handle.seek(size - 1)
            if handle.read(1) == b"\n":
                return None
            handle.seek(0)
            data = handle.read()
            cut = data.rfind(b"\n") + 1
            if _event(data[cut:]) is not None:
                handle.write(b"\n")
                warning = None
            else:
                handle.truncate(cut)
                line = data.count(b"\n") + 1
                warning = (
                    f"{self.display}:{line}: removed a torn last line ({size - cut} "
                    "bytes) left by an interrupted write"
                )
            handle.flush()
            os.fsync(handle.fileno())
        return warning

    def append(self, event: dict[str, Any]) -> None:
        """Append one event, flushed and fsynced before returning."""
        line = _LINE(stamp(event)) + "\n"
        self._write(line.encode("utf-8"), event)

    def claim(self, event: dict[str, Any], planned_events: int | None) -> bool:
        # The lock is exclusive and was taken before planning: no one else has moved any key.
        self.append(event)
        return True

    def import_lines(self, lines: list[str]) -> int:
        check_new_keys(self.read(), lines, self.display)
        for line in lines:
            self._write((line + "\n").encode("utf-8"), json.loads(line))
        return len(lines)

    def append_later(self, event: dict[str, Any]) -> Callable[[], None]:
        """Queue one event; the function returned blocks until it is on disk (and raises
        what append would have). Nothing may report the event before calling it."""
        line = _LINE(stamp(event)) + "\n"
        appender = self._writer()
        try:
            ticket = appender.put(line.encode("utf-8"))
        except AppendFailed as exc:
            raise self._failure(exc.error, event) from None
        return lambda: self._await(appender, ticket, event)

    def _write(self, data: bytes, event: dict[str, Any]) -> None:
        """Append `data` and return once it is on disk: no call returns before its own line
        was fsynced; when that write fails, every line of it fails."""
        try:
            self._writer().append(data)
        except AppendFailed as exc:
            raise self._failure(exc.error, event) from None

    def _await(self, appender: Appender, ticket: int, event: dict[str, Any]) -> None:
        try:
            appender.wait(ticket)
        except AppendFailed as exc:
            raise self._failure(exc.error, event) from None

    def _writer(self) -> Appender:
        if self._appender is None:
            raise RuntimeError("the ledger is not open for writing")
        return self._appender

    def _failure(self, error: OSError, event: dict[str, Any]) -> LedgerWriteError:
        if deleted(error):
            return refused_write(
                self.display, "it was deleted while apply was running", "restore it", event
            )
        return write_failure(self.display, error, event)


_NOT_A_FOLDER = "ledger.path must name a file (e.g. .commbox/ledger.jsonl), not a folder"


def _open_fix(exc: OSError) -> str:
    return WRITE_FIXES.get(exc.errno or 0, "check the path and its folder")


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


class _Counted:
    """Passes pairs through, counting them."""

    def __init__(self, pairs: Iterator[tuple[dict[str, Any], bytes]]) -> None:
        self.pairs = pairs
        self.count = 0

    def __iter__(self) -> Iterator[tuple[dict[str, Any], bytes]]:
        for pair in self.pairs:
            self.count += 1
            yield pair


def _read_lines(handle: BinaryIO, display: str) -> Iterator[bytes]:
    try:
        yield from handle
    except OSError as exc:
        raise UserError(f"cannot read the ledger {display}: {exc.strerror}") from None


def _event(chunk: bytes) -> dict[str, Any] | None:
    try:
        event = json.loads(chunk.decode("utf-8"))
    except ValueError:
        return None
    if not isinstance(event, dict) or not isinstance(event.get("key"), str):
        return None
    return event


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
