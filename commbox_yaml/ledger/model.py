"""The ledger's model: send events per key, folded into each key's state, and the interface
both backends implement.

Its events: `pending` before a request (a claim), then one outcome (`sent`, `failed`,
`unknown`; `retry` when the server did not take it); a key whose last event is `pending` is
unknown, never unsent. `ledger/__init__.py` re-exports these names.
"""

from __future__ import annotations

import errno
import hashlib
import json
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Protocol

from commbox_yaml.errors import UserError

FORMAT = 1
OUTCOMES = ("sent", "failed", "unknown")  # the events that end a claim


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
    whatsapp_id: str | None = None  # the message id of a v2 WhatsApp template's send


# -- the fold: one place that says what each event kind means ---------------------------------

Step = Callable[[KeyState, dict[str, Any]], KeyState]


def _pending(state: KeyState, event: dict[str, Any]) -> KeyState:
    # Unknown until an outcome says otherwise.
    return replace(
        state,
        status=KeyStatus.UNKNOWN,
        fingerprint=event.get("fingerprint"),
        fields=dict(event.get("fields") or {}),
        tried_at=event.get("at"),
        settled_at=None,
    )


def _sent(state: KeyState, event: dict[str, Any]) -> KeyState:
    return replace(
        state,
        status=KeyStatus.SENT,
        sent_fingerprint=state.fingerprint,
        sent_fields=state.fields,
        object_id=event.get("object_id"),
        whatsapp_id=event.get("whatsapp_id"),
        sent_at=event.get("at"),
        last_status=event.get("status"),
        settled_at=event.get("at"),
        reconciled_at=None,
    )


def _ended(state: KeyState, event: dict[str, Any]) -> KeyState:
    return replace(
        state,
        status=KeyStatus(event["event"]),
        last_status=event.get("status"),
        description=event.get("description"),
        settled_at=event.get("at"),
    )


def _retry(state: KeyState, event: dict[str, Any]) -> KeyState:
    # The server did not take it; an earlier successful send still stands.
    sent = state.sent_fingerprint is not None
    return replace(state, status=KeyStatus.SENT if sent else KeyStatus.NONE)


def _forget(state: KeyState, event: dict[str, Any]) -> KeyState:
    return KeyState(state.key, KeyStatus.NONE, last_at=state.last_at)


def _reconciled(state: KeyState, event: dict[str, Any], before_try: KeyState) -> KeyState:
    """CommBox was read back for the last try: it was stored (`sent`) or never was (`absent`)."""
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
        sent = before_try.sent_fingerprint is not None
        return replace(
            state,
            status=KeyStatus.SENT if sent else KeyStatus.NONE,
            sent_fingerprint=before_try.sent_fingerprint,
            sent_fields=before_try.sent_fields,
            object_id=before_try.object_id,
            sent_at=before_try.sent_at,
            reconciled_at=at,
            description=event.get("description"),
        )
    return state


# A new event kind is one function and one entry here; kinds not listed change nothing.
# (`reconciled` also needs the state before the last try: KeyFold handles it.)
STEPS: dict[str, Step] = {
    "pending": _pending,
    "sent": _sent,
    "failed": _ended,
    "unknown": _ended,
    "retry": _retry,
    "forget": _forget,
}


class KeyFold:
    """Folds one key's events, in order, into its KeyState."""

    def __init__(self, key: str) -> None:
        self.state = KeyState(key, KeyStatus.NONE)
        self.before_try = self.state  # the state before the last `pending`, for `absent`
        self.digest = hashlib.sha256()
        self.events = 0
        self.last_at: str | None = None

    def apply(self, event: dict[str, Any], line: str | bytes) -> None:
        """`line` is the event exactly as stored (text, or its UTF-8 bytes): the digest is
        over those bytes."""
        self.digest.update(line.encode() if isinstance(line, str) else line)
        self.events += 1
        # Every step keeps `last_at` as it finds it: it is set once, in result(), instead of
        # with one more copy of the state per event.
        self.last_at = event.get("at", self.last_at)
        kind = str(event.get("event"))
        if kind == "pending":
            self.before_try = self.state
        if kind == "reconciled":
            self.state = _reconciled(self.state, event, self.before_try)
            return
        step = STEPS.get(kind)
        if step is not None:
            self.state = step(self.state, event)

    def result(self) -> KeyState:
        return replace(
            self.state, last_at=self.last_at, digest=self.digest.hexdigest(), events=self.events
        )


def fold(
    events: Iterable[tuple[dict[str, Any], str | bytes]],
    keys: Collection[str] | None = None,
    object_ids: dict[str, str] | None = None,
) -> dict[str, KeyState]:
    """Each key's state from (event, stored line) pairs in ledger order; only the states of
    `keys` when given (a plan needs its own keys', not those of every release before).
    `object_ids` is filled with every object id any key's events name, and that key."""
    folds: dict[str, KeyFold] = {}
    for event, line in events:
        key = event["key"]
        if object_ids is not None and (named := event.get("object_id")) is not None:
            object_ids[object_id_text(named)] = key
        found = folds.get(key)
        if found is None:
            if keys is not None and key not in keys:
                continue
            found = folds[key] = KeyFold(key)
        found.apply(event, line)
    return {k: f.result() for k, f in folds.items()}


EMPTY_DIGEST = hashlib.sha256().hexdigest()


def object_id_text(value: Any) -> str:
    """One spelling of an object id, to compare ids (`"00294159"` and `294159` are one)."""
    text = str(value)
    return str(int(text)) if text.isascii() and text.isdigit() else text


@dataclass(frozen=True)
class LedgerView:
    """The ledger as read at one moment."""

    display: str
    exists: bool
    entries: int
    states: dict[str, KeyState]
    warnings: tuple[str, ...] = ()
    # every object id the ledger names, whichever keys were folded, and the key naming it
    object_ids: dict[str, str] = field(default_factory=dict)

    def state(self, key: str) -> KeyState:
        return self.states.get(key) or KeyState(key, KeyStatus.NONE, digest=EMPTY_DIGEST)


def now() -> str:
    # 2026-11-26T12:00:00.000000Z (isoformat is the C path; strftime took twice as long)
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


# -- the interface both backends implement ----------------------------------------------------


class LedgerStore(Protocol):
    """A send ledger. `locked()` opens it for writing (apply, forget, import)."""

    display: str  # how to name it to a user: a path, or a database URL without its password
    warnings: list[str]  # what opening it for writing had to repair

    def exists(self) -> bool: ...

    def read(self, keys: Collection[str] | None = None, object_ids: bool = False) -> LedgerView:
        """The ledger now; with `keys`, only those keys' states (the event count is whole);
        with `object_ids`, every object id it names (for apply's stray-reply rule and for
        reconcile: a plan does not hold them)."""
        ...

    def lines(self) -> Iterator[str]:
        """Every stored event as its JSON line, in ledger order (for export)."""
        ...

    def create(self) -> bool:
        """Create an empty ledger; False when it already exists."""
        ...

    def locked(self) -> AbstractContextManager[LedgerStore]: ...

    def append(self, event: dict[str, Any]) -> None:
        """Record one event (durably) before returning."""
        ...

    def claim(self, event: dict[str, Any], planned_events: int | None) -> bool:
        """Record `pending` for a key unless another apply took it since this one planned.

        `planned_events` is the key's event count when this apply planned (None: this apply
        already holds the key, e.g. a retry). False: not recorded, the request must not go out.
        """
        ...

    def import_lines(self, lines: list[str]) -> int:
        """Add another ledger's events; refused whole when any of their keys is here."""
        ...


def stamp(event: dict[str, Any]) -> dict[str, Any]:
    return {"v": FORMAT, "at": now(), **event}


class LedgerWriteError(UserError):
    """The ledger could not record an event: apply must stop.

    `before_send` says the event was a claim, so its request never went out.
    """

    def __init__(self, message: str, before_send: bool) -> None:
        super().__init__(message)
        self.before_send = before_send


WRITE_FIXES = {
    errno.ENOSPC: "free some disk space",
    errno.EDQUOT: "free some space under your disk quota",
    errno.EFBIG: "raise the file size limit (ulimit -f) or move the ledger where it may grow",
    errno.EACCES: "make the ledger and its folder writable for this user",
    errno.EPERM: "make the ledger and its folder writable for this user",
    errno.EROFS: "set ledger.path to a writable place (this file system is read-only)",
}


def write_failure(display: str, exc: OSError, event: dict[str, Any]) -> LedgerWriteError:
    """One clear line for an event the ledger could not take, saying what it means."""
    why = exc.strerror or str(exc)
    fix = WRITE_FIXES.get(exc.errno or 0, "fix the cause")
    return refused_write(display, why, fix, event)


def refused_write(display: str, why: str, fix: str, event: dict[str, Any]) -> LedgerWriteError:
    key, kind = event.get("key"), event.get("event")
    if kind == "pending":
        return LedgerWriteError(
            f"cannot write to the ledger {display} ({why}): the request for {key} was not "
            f"sent; {fix}, then run apply again",
            before_send=True,
        )
    if kind in (*OUTCOMES, "retry"):
        return LedgerWriteError(
            f"cannot record the outcome of {key} in the ledger {display} ({why}): its request "
            f"went out, so {key} stays unknown ('?') until checked; {fix}",
            before_send=False,
        )
    return LedgerWriteError(
        f"cannot write to the ledger {display} ({why}): {kind} {key} was not recorded; {fix}",
        before_send=True,
    )


# -- importing another ledger's events ---------------------------------------------------------


def keys_of(lines: list[str]) -> list[str]:
    return sorted({str(json.loads(line)["key"]) for line in lines})


def check_new_keys(target: LedgerView, lines: list[str], display: str) -> None:
    """Refuse an import whole when the target already holds any of its keys."""
    clashes = [key for key in keys_of(lines) if key in target.states]
    if clashes:
        more = f" and {len(clashes) - 1} more" if len(clashes) > 1 else ""
        raise UserError(
            f"{display} already holds key {clashes[0]!r}{more}: nothing was imported. An "
            "import only adds keys the ledger does not have (importing twice is harmless)"
        )
