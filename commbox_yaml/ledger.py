"""The send ledger: append-only JSON Lines of send events, folded into each key's state.

Every send writes `pending` before its request and one outcome after it (`sent`, `failed`,
`unknown`; `retry` when the server said it did not take the request and it will be tried
again). Each append is flushed and fsynced, so a crash loses at most the line being written:
a key whose last event is `pending` is treated as unknown, never as unsent.
The ledger holds keys, fingerprints, per-field hashes, object ids, statuses and times; never
message bodies or recipients' data.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import IO, Any

from commbox_yaml.errors import Location, UserError

FORMAT = 1


class KeyStatus(Enum):
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"  # includes a `pending` left by a crash
    NONE = "none"  # never tried, forgotten, or the server refused a try that will be retried


@dataclass(frozen=True)
class KeyState:
    """What the ledger knows of one key."""

    key: str
    status: KeyStatus
    fingerprint: str | None = None  # of the last try
    fields: dict[str, str] = field(default_factory=dict)  # per-field hashes of the last try
    sent_fingerprint: str | None = None  # of the last successful send
    sent_fields: dict[str, str] = field(default_factory=dict)
    object_id: Any = None
    sent_at: str | None = None
    last_at: str | None = None
    last_status: int | None = None
    description: str | None = None
    digest: str = ""  # hash of this key's events, to tell whether the ledger changed for it
    events: int = 0
    tried_at: str | None = None  # the last `pending` event: when the last try started
    settled_at: str | None = None  # that try's outcome; None while it is dangling (a crash)
    reconciled_at: str | None = None  # when reading CommBox back settled the last try


class _Fold:
    """Folds one key's events, in order, into its KeyState."""

    def __init__(self, key: str) -> None:
        self.state = KeyState(key, KeyStatus.NONE)
        self.before_try = self.state  # the state before the last `pending`, for `absent`
        self.digest = hashlib.sha256()
        self.events = 0

    def apply(self, event: dict[str, Any], line: str) -> None:
        self.digest.update(line.encode())
        self.events += 1
        kind = event.get("event")
        state = replace(self.state, last_at=event.get("at", self.state.last_at))
        if kind == "pending":  # unknown until an outcome says otherwise
            self.before_try = self.state
            state = replace(
                state,
                status=KeyStatus.UNKNOWN,
                fingerprint=event.get("fingerprint"),
                fields=dict(event.get("fields") or {}),
                tried_at=event.get("at"),
                settled_at=None,
            )
        elif kind == "reconciled":
            state = self._reconciled(state, event)
        elif kind == "sent":
            state = replace(
                state,
                status=KeyStatus.SENT,
                sent_fingerprint=state.fingerprint,
                sent_fields=state.fields,
                object_id=event.get("object_id"),
                sent_at=event.get("at"),
                last_status=event.get("status"),
                settled_at=event.get("at"),
                reconciled_at=None,
            )
        elif kind in ("failed", "unknown"):
            state = replace(
                state,
                status=KeyStatus(kind),
                last_status=event.get("status"),
                description=event.get("description"),
                settled_at=event.get("at"),
            )
        elif kind == "retry":
            # The server did not take it; an earlier successful send still stands.
            sent = state.sent_fingerprint is not None
            state = replace(state, status=KeyStatus.SENT if sent else KeyStatus.NONE)
        elif kind == "forget":
            state = KeyState(state.key, KeyStatus.NONE, last_at=state.last_at)
        self.state = state

    def _reconciled(self, state: KeyState, event: dict[str, Any]) -> KeyState:
        """CommBox was read back for the last try: it was stored (`sent`) or never was."""
        at = event.get("at")
        if event.get("result") == "sent":
            return replace(
                state,
                status=KeyStatus.SENT,
                sent_fingerprint=state.fingerprint,
                sent_fields=state.fields,
                object_id=event.get("object_id"),
                sent_at=state.tried_at or at,
                reconciled_at=at,
                description=event.get("description"),
            )
        if event.get("result") == "absent":
            # The last try never reached CommBox: back to what stood before it.
            before = self.before_try
            sent = before.sent_fingerprint is not None
            return replace(
                state,
                status=KeyStatus.SENT if sent else KeyStatus.NONE,
                sent_fingerprint=before.sent_fingerprint,
                sent_fields=before.sent_fields,
                object_id=before.object_id,
                sent_at=before.sent_at,
                reconciled_at=at,
                description=event.get("description"),
            )
        return state

    def result(self) -> KeyState:
        return replace(self.state, digest=self.digest.hexdigest(), events=self.events)


@dataclass(frozen=True)
class LedgerView:
    """The ledger as read at one moment."""

    path: Path
    exists: bool
    entries: int
    states: dict[str, KeyState]
    warnings: tuple[str, ...] = ()

    def state(self, key: str) -> KeyState:
        return self.states.get(key) or KeyState(key, KeyStatus.NONE, digest=_EMPTY_DIGEST)


_EMPTY_DIGEST = hashlib.sha256().hexdigest()


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Ledger:
    """One ledger file: reading, locking, appending."""

    def __init__(self, path: Path, display: str) -> None:
        self.path = path
        self.display = display
        self._handle: IO[str] | None = None
        self.warnings: list[str] = []  # what taking the lock had to repair
        self._write_lock = threading.Lock()

    # -- reading ----------------------------------------------------------------------------

    def read(self) -> LedgerView:
        if not self.path.exists():
            return LedgerView(self.path, False, 0, {})
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read the ledger {self.display}: {exc.strerror}") from None
        folds: dict[str, _Fold] = {}
        warnings: list[str] = []
        lines = raw.split(b"\n")
        entries = 0
        for number, chunk in enumerate(lines, start=1):
            if not chunk.strip():
                continue
            last = number == len(lines)  # no newline after it: the write never finished
            try:
                text = chunk.decode("utf-8")
                event = json.loads(text)
                if not isinstance(event, dict) or not isinstance(event.get("key"), str):
                    raise ValueError("not a ledger event")
            except ValueError:
                if last:
                    warnings.append(
                        f"{self.display}:{number}: ignoring a torn last line (a write "
                        "interrupted by a crash)"
                    )
                    continue
                raise UserError(
                    f"line {number} is not a valid ledger event; restore the file from its "
                    "backup or remove that line by hand",
                    Location(self.display, number, 1),
                ) from None
            entries += 1
            key = event["key"]
            folds.setdefault(key, _Fold(key)).apply(event, text)
        states = {k: f.result() for k, f in folds.items()}
        return LedgerView(self.path, True, entries, states, tuple(warnings))

    # -- writing ----------------------------------------------------------------------------

    def create(self) -> bool:
        """Create an empty ledger; False when it already exists."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        os.fsync(fd)
        os.close(fd)
        _fsync_dir(self.path.parent)
        return True

    @contextmanager
    def locked(self) -> Iterator[Ledger]:
        """Hold the exclusive lock (a second apply fails at once); open the file for appends."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        lock = open(lock_path, "a+")  # noqa: SIM115 - held for the whole block
        try:
            _try_lock(lock, self.display, lock_path)
            lock.seek(0)
            lock.truncate()
            lock.write(
                json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": now()})
                + "\n"
            )
            lock.flush()
            repaired = self._repair_tail()
            self.warnings = [repaired] if repaired else []
            existed = self.path.exists()
            self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
            if not existed:
                _fsync_dir(self.path.parent)
            yield self
        finally:
            if self._handle is not None:
                self._handle.close()
                self._handle = None
            lock.seek(0)
            lock.truncate()
            lock.close()  # closing releases the lock

    def _repair_tail(self) -> str | None:
        """End the file with a newline before appending; a warning when a torn line was cut.

        A crash mid-append leaves a last line with no newline. If it is a whole event (an
        editor dropped the final newline) it is kept; otherwise it never became an event and
        is cut, or the next event would be glued to it.
        """
        if not self.path.exists():
            return None
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
            if _is_event(data[cut:]):
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
        if self._handle is None:
            raise RuntimeError("the ledger is not open for writing")
        record = {"v": FORMAT, "at": now(), **event}
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._write_lock:
            self._handle.write(line)
            self._handle.flush()
            os.fsync(self._handle.fileno())
            if os.fstat(self._handle.fileno()).st_nlink == 0:
                # Deleted under us: what follows would be recorded nowhere. Stop.
                raise UserError(f"the ledger {self.display} was deleted while apply was running")


def _is_event(chunk: bytes) -> bool:
    try:
        event = json.loads(chunk)
    except ValueError:
        return False
    return isinstance(event, dict) and isinstance(event.get("key"), str)


def _try_lock(lock: IO[str], display: str, lock_path: Path) -> None:
    try:
        import fcntl  # POSIX: apply runs in CI on Linux and macOS
    except ImportError:  # pragma: no cover - Windows
        raise UserError(
            "apply and ledger edits need a POSIX system (Linux, macOS) to lock the ledger; "
            "validate, render and plan work everywhere"
        ) from None

    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(lock_path)
        raise UserError(
            f"the ledger {display} is locked by another apply ({holder}); wait for it to finish"
        ) from None


def _holder(lock_path: Path) -> str:
    try:
        info = json.loads(lock_path.read_text() or "{}")
    except (OSError, ValueError):
        return "process unknown"
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')} since {info.get('since', '?')}"


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
