"""The keys to reconcile, each as a `Case`: its request, its ledger state, its time window."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from commbox_yaml.compile import Request
from commbox_yaml.errors import UserError
from commbox_yaml.keys import key_glob
from commbox_yaml.ledger import KeyState, KeyStatus, LedgerView
from commbox_yaml.readback import Item
from commbox_yaml.testsend import is_test_key

CLOCK_SKEW_S = 300.0  # each side of a send's window


class Result(Enum):
    SENT = "sent"  # found exactly once: recorded with its object id
    ABSENT = "absent"  # provably never stored: recorded, the next apply sends it once
    HELD = "unknown"  # anything else: stays `?`, with the reason
    NOTHING = "nothing"  # a key given by name that is not held: nothing to reconcile


@dataclass(frozen=True)
class Finding:
    key: str
    result: Result
    reason: str
    object_id: Any = None
    address: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "address": self.address,
            "result": self.result.value,
            "object_id": self.object_id,
            "reason": self.reason,
        }


# -- choosing keys ---------------------------------------------------------------------------


def needs_reconcile(state: KeyState) -> bool:
    """Held as unknown, or a 2xx that carried no object id."""
    return state.status is KeyStatus.UNKNOWN or (
        state.status is KeyStatus.SENT and state.object_id is None
    )


def select_keys(view: LedgerView, patterns: Sequence[str]) -> list[str]:
    """The keys to reconcile: every one that needs it, or those the patterns name."""
    if not patterns:  # a test send left unknown blocks nothing: named, it is reported
        return sorted(
            k for k, s in view.states.items() if needs_reconcile(s) and not is_test_key(k)
        )
    chosen: list[str] = []
    for pattern in patterns:
        regex = key_glob(pattern)
        matched = sorted(k for k in view.states if regex.fullmatch(k))
        if not matched:
            raise UserError(
                f"{pattern!r} matches no key of the ledger; 'commbox-yaml ledger list' shows them"
            )
        chosen += [k for k in matched if k not in chosen]
    return chosen


def _customer(value: str) -> str:
    """Loose on purpose: matching more objects only ever makes reconcile hold, not conclude."""
    folded = re.sub(r"[\s()+.-]", "", value).lower()
    return folded[2:] if folded.startswith("00") and folded[2:].isdigit() else folded


def _exact_customer(value: str) -> str:
    """Strict: one customer's id, a phone number written any common way, an address any case."""
    text = value.strip().lower()
    if re.fullmatch(r"[+\d\s().-]+", text):
        digits = re.sub(r"\D", "", text)
        return digits[2:] if text.startswith("00") else digits
    return text


def _words(text: str) -> str:
    return " ".join(text.split())


# -- one send's place in time ----------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    start: float
    end: float

    def holds(self, moment: float | None) -> bool:
        return moment is None or self.start <= moment <= self.end  # unreadable: keep it


@dataclass(frozen=True)
class Case:
    key: str
    state: KeyState
    request: Request
    window: Window
    settled: float  # when the try ended (now, for a try a crash left dangling)

    @property
    def customer(self) -> str:
        return _customer(str(self.request.sent_data.get("UserStreamProviderId", "")))

    def concerns(self, item: Item) -> bool:
        """Could be this customer's, of this type: loosely, since an object wrongly left out
        could make a send look absent. A missing field, a type by its name, a customer id
        holding this one (CommBox's own example reads `972505555555_by`) all count."""
        kind = str(self.request.sent_data.get("Type", ""))
        other_type = item.type is not None and item.type.isdigit() and kind.isdigit()
        if other_type and item.type != kind:
            return False
        theirs = None if item.customer is None else _customer(item.customer)
        return theirs is None or self.customer in theirs or theirs in self.customer

    def matches(self, item: Item) -> bool:
        """This send's object: the customer (give or take a `_suffix`), the text, the time."""
        ours = _exact_customer(str(self.request.sent_data.get("UserStreamProviderId", "")))
        theirs = _exact_customer(item.customer or "")
        same_customer = theirs == ours or theirs.startswith(ours + "_")
        message = self.request.sent_data.get("Message")
        return (
            same_customer
            and self.concerns(item)
            and self.window.holds(item.created)
            and item.message is not None
            and _words(item.message) == _words(str(message))
        )


def case_for(key: str, state: KeyState, request: Request | None, now: float) -> Case | Finding:
    """The key's case, or the finding that says why it has none (not held, or not comparable)."""
    address = request.address if request else None

    def held(reason: str) -> Finding:
        return Finding(key, Result.HELD, reason, address=address)

    if not needs_reconcile(state):
        shown = f"{state.status.value}" + (
            f" as object {state.object_id}" if state.object_id is not None else ""
        )
        return Finding(key, Result.NOTHING, f"not held: {shown}", state.object_id, address)
    if is_test_key(key):
        return held(
            "a test send left unknown: test sends are not read back; look in the test "
            "recipient's inbox. It blocks nothing: the next test send goes out again"
        )
    if request is None:
        return held("no message of the project has this key now, so its text cannot be compared")
    if request.fingerprint != state.fingerprint:
        return held(
            "the message changed since it was sent, so its text cannot be compared; "
            f"check CommBox by hand, then --replace {key} or ledger forget {key}"
        )
    started = _moment(state.tried_at)
    if started is None:
        return held("the ledger has no time for its last try")
    settled = _moment(state.settled_at) or now
    window = Window(started - CLOCK_SKEW_S, max(settled, started) + CLOCK_SKEW_S)
    return Case(key, state, request, window, settled)


def _moment(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def clusters(cases: Sequence[Case]) -> list[tuple[str, Window, list[Case]]]:
    """Cases of one stream whose windows overlap, with the window covering them all."""
    by_stream: dict[str, list[Case]] = {}
    for case in cases:
        by_stream.setdefault(case.request.path, []).append(case)
    found: list[tuple[str, Window, list[Case]]] = []
    for path, members in by_stream.items():
        members.sort(key=lambda c: c.window.start)
        current: list[Case] = []
        window: Window | None = None
        for case in members:
            if window is not None and case.window.start <= window.end:
                window = Window(window.start, max(window.end, case.window.end))
                current.append(case)
                continue
            if window is not None:
                found.append((path, window, current))
            window, current = case.window, [case]
        if window is not None:
            found.append((path, window, current))
    return found
