"""Reading CommBox back for sends whose outcome is unknown (SPEC section 8). No printing.

unknown key -> its send's time window (ledger) -> the stream's objects over that window, every
page -> match (customer, type, text) -> one ledger event: `reconciled` with `result: sent` and
the object id, or `result: absent`. Anything short of proof leaves the key held (`?`).

CommBox has no idempotency key and no client reference, so the rules lean one way:
- an object is this send's only when customer, type and text all agree, it was created while
  the send was in flight (widened by a margin: the server's clock is not ours), and no other
  key claims it (an object id is recorded for one key at most);
- "absent" needs a complete listing (pages 0 and 1, since where pages start is not
  documented, then on until an empty page, since a short page proves nothing; no object moving
  between pages), no object at all for the customer and type that another key does not
  account for (CommBox may store a text altered, e.g. as HTML: a different text is a reason to
  hold, never proof of absence), and a send older than `api.reconcile_after_s` (a new object
  may take a moment to be listed).
Keys whose windows overlap share one listing, so a batch of unknowns costs a few pages.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any
from urllib.parse import quote

from commbox_yaml.compile import Request
from commbox_yaml.errors import UserError
from commbox_yaml.ledger import KeyState, KeyStatus, LedgerStore, LedgerView
from commbox_yaml.project import ApiSettings
from commbox_yaml.readback import Item, Reader, Reply, parse_time, reply_problem

CLOCK_SKEW_S = 300.0  # each side of a send's window
PAGE_SIZE = 100  # CommBox's cap
MAX_PAGES = 1000  # past 100,000 objects in one window, a listing is not worth trusting
LIST_TRIES = 3  # a listing that keeps moving while it is read is not worth trusting either
RETRY_BASE_S = 0.5


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


class ReadRefused(Exception):
    """401: the token was refused; nothing more is read."""


# -- choosing keys ---------------------------------------------------------------------------


def needs_reconcile(state: KeyState) -> bool:
    """Held as unknown, or a 2xx that carried no object id."""
    return state.status is KeyStatus.UNKNOWN or (
        state.status is KeyStatus.SENT and state.object_id is None
    )


def key_glob(pattern: str) -> re.Pattern[str]:
    """`*` any run, `?` one character; `[` and `]` are literal (they are part of keys)."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.DOTALL)


def select_keys(view: LedgerView, patterns: Sequence[str]) -> list[str]:
    """The keys to reconcile: every one that needs it, or those the patterns name."""
    if not patterns:
        return sorted(k for k, s in view.states.items() if needs_reconcile(s))
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
class _Case:
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


def _moment(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


# -- the run ---------------------------------------------------------------------------------


@dataclass
class _Listing:
    items: list[Item] = field(default_factory=list)
    failure: str | None = None
    pages: int = 0  # how many pages were read
    ids: set[str] = field(default_factory=set)
    moved: bool = False  # an object was seen on two pages other than 0 and 1


class Reconciler:
    def __init__(
        self,
        api: ApiSettings,
        reader: Reader,
        ledger: LedgerStore,
        run_id: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api = api
        self.reader = reader
        self.ledger = ledger
        self.run_id = run_id
        self.clock = clock

    def run(
        self,
        keys: Sequence[str],
        view: LedgerView,
        requests: Mapping[str, Request],
        on_finding: Callable[[Finding], None] = lambda f: None,
    ) -> list[Finding]:
        """Reconcile `keys` (under the ledger's lock), recording each result as it is known."""
        findings: list[Finding] = []

        def report(finding: Finding) -> None:
            findings.append(finding)
            on_finding(finding)

        now = self.clock()
        cases: list[_Case] = []
        for key in keys:
            case_or_finding = self._case(key, view.state(key), requests.get(key), now)
            if isinstance(case_or_finding, Finding):
                report(case_or_finding)
            else:
                cases.append(case_or_finding)
        # Objects the ledger already accounts for: every key's last successful send, also of a
        # key held now (its object is from an earlier try, not from the one in question).
        claimed = dict(view.object_ids)
        for path, window, members in _clusters(cases):
            listing = self._list(path, window)
            for finding in self._decide(path, members, listing, claimed, now):
                self._record(finding, members)
                report(finding)
        return findings

    def _case(
        self, key: str, state: KeyState, request: Request | None, now: float
    ) -> _Case | Finding:
        address = request.address if request else None

        def held(reason: str) -> Finding:
            return Finding(key, Result.HELD, reason, address=address)

        if not needs_reconcile(state):
            shown = f"{state.status.value}" + (
                f" as object {state.object_id}" if state.object_id is not None else ""
            )
            return Finding(key, Result.NOTHING, f"not held: {shown}", state.object_id, address)
        if request is None:
            return held(
                "no message of the project has this key now, so its text cannot be compared"
            )
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
        return _Case(key, state, request, window, settled)

    # listing ---------------------------------------------------------------------------------

    def _list(self, path: str, window: Window) -> _Listing:
        """Every object in the window; a listing that moved while it was read is read again."""
        listing = _Listing()
        for _ in range(LIST_TRIES):
            listing = self._list_once(path, window)
            if not listing.moved:
                return listing
        return _Listing(
            failure=f"objects moved between pages while listing ({LIST_TRIES} tries); run it again",
            pages=listing.pages,
        )

    def _list_once(self, path: str, window: Window) -> _Listing:
        """Pages 0 and 1 (where pages start is not documented), then on until an empty page.

        A short page proves nothing (a server may cap `pageSize` below what was asked), so
        only an empty page after page 1 ends the read. Pages 0 and 1 may hold the same objects
        (a server counting from 1 may answer page 0 as page 1): their union is taken by object
        id. An object on any other two pages means the listing moved while it was read."""
        listing = _Listing()
        first_page: dict[str, int] = {}  # object id -> the page it was first seen on
        query: dict[str, Any] = {
            "unixStartTime": int(window.start),
            "unixEndTime": int(window.end) + 1,
            "pageSize": PAGE_SIZE,
            "order": "createdtime",  # CommBox: `order` names the field, `sort` the direction
            "sort": "asc",  # oldest first: new objects land on the last page, earlier ones stay
        }
        for page in range(MAX_PAGES + 1):
            reply = self._get(path, {**query, "pageNumber": page})
            listing.pages = page + 1
            problem = reply_problem(reply, f"listing page {page}")
            data = reply.payload.get("data") if isinstance(reply.payload, dict) else None
            if problem is None and not isinstance(data, list):
                problem = f"listing page {page} gave no list of objects"
            if problem is None and page == 0:
                problem = self._clock_problem(reply.payload.get("response_time"))
            if problem is not None:
                return _Listing(failure=problem, pages=page + 1)
            assert isinstance(data, list)
            if not _take_page(listing, data, page, first_page) or (not data and page >= 2):
                return listing
        return _Listing(failure=f"more than {MAX_PAGES} pages in the window", pages=MAX_PAGES)

    def _clock_problem(self, server_time: Any) -> str | None:
        """This machine's clock against CommBox's (each reply carries its time): the windows
        are in this clock, so one far off would look in the wrong place."""
        theirs = parse_time(server_time)
        if theirs is None:
            return None
        skew = self.clock() - theirs
        if abs(skew) <= CLOCK_SKEW_S / 2:
            return None
        return (
            f"this machine's clock is {abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} "
            "CommBox's; set it right (NTP) and run reconcile again"
        )

    def _get(self, path: str, query: Mapping[str, Any] | None = None) -> Reply:
        """One read; reads are idempotent, so throttling and lost connections are retried."""
        attempt = 0
        while True:
            attempt += 1
            reply = self.reader.get_json(path, query)
            if reply.status == 401:
                raise ReadRefused(
                    "the API token was refused reading CommBox (HTTP 401: a wrong key, or one "
                    "without the right to read objects)"
                )
            lost = reply.status is None and reply.again
            if (
                not (lost or reply.status in (429, 502, 503, 504))
                or attempt >= self.api.max_attempts
            ):
                return reply
            ceiling = RETRY_BASE_S * 2.0 ** (attempt - 1)
            wait = reply.retry_after if reply.retry_after is not None else ceiling
            time.sleep(min(max(wait, 0.0), self.api.max_retry_after_s) * random.uniform(0.5, 1))

    def _confirm(self, path: str, object_id: str, case: _Case) -> str | None:
        """Read the matched object by id; why it does not confirm the match, or None."""
        reply = self._get(f"{path}/{quote(object_id, safe='')}")
        problem = reply_problem(reply, f"reading object {object_id}")
        if problem is not None:
            return problem
        data = reply.payload.get("data") if isinstance(reply.payload, dict) else None
        items = [Item.of(raw) for raw in (data if isinstance(data, list) else [data])]
        if not any(i.object_id == object_id and case.concerns(i) for i in items):
            return f"object {object_id} was listed but reading it back does not confirm it"
        return None

    # deciding --------------------------------------------------------------------------------

    def _decide(
        self,
        path: str,
        cases: Sequence[_Case],
        listing: _Listing,
        claimed: dict[str, str],
        now: float,
    ) -> Iterable[Finding]:
        if listing.failure is not None:
            for case in cases:
                yield self._held(case, listing.failure)
            return
        found: dict[str, str] = {}  # key -> its one match, not yet confirmed
        for case in cases:
            exact = [i for i in listing.items if case.matches(i) and i.object_id not in claimed]
            if len(exact) == 1 and exact[0].object_id is not None:
                found[case.key] = exact[0].object_id
        matched = list(found.values())
        failures: dict[str, str] = {}
        for case in cases:  # each match is yielded (and recorded) as soon as it is confirmed
            object_id = found.get(case.key)
            if object_id is None:
                continue
            if matched.count(object_id) > 1:
                others = sorted(k for k, oid in found.items() if oid == object_id)
                failures[case.key] = f"object {object_id} matches several keys: {', '.join(others)}"
                continue
            problem = self._confirm(path, object_id, case)
            if problem is not None:
                failures[case.key] = problem
                continue
            claimed[object_id] = case.key
            yield Finding(
                case.key,
                Result.SENT,
                f"found in CommBox as object {object_id}",
                _object_id(object_id),
                case.request.address,
            )
        for case in cases:
            if case.key in failures:
                yield self._held(case, failures[case.key])
            elif case.key not in found:
                yield self._absent_or_held(case, listing, claimed, now)

    def _absent_or_held(
        self, case: _Case, listing: _Listing, claimed: dict[str, str], now: float
    ) -> Finding:
        mine = [i for i in listing.items if case.concerns(i) and i.object_id not in claimed]
        exact = [i for i in mine if case.matches(i)]
        if len(exact) > 1:
            return self._held(case, f"{len(exact)} objects match: {_ids(exact)}")
        if exact and exact[0].object_id is None:
            return self._held(
                case, "the matching object has no CommBox object id (a positive integer)"
            )
        if exact:
            return self._held(
                case,
                f"object {exact[0].object_id} matches, and so did one another key claimed in "
                "this run; run reconcile again to settle it",
            )
        if mine:
            return self._held(
                case,
                f"{len(mine)} object(s) for this customer and type that do not match it exactly "
                f"({_ids(mine)}): CommBox may have stored the message altered; check by hand",
            )
        age = now - case.settled
        if age < self.api.reconcile_after_s:
            return self._held(
                case,
                f"too recent to conclude it is absent ({age:.0f} s old; api.reconcile_after_s "
                f"is {self.api.reconcile_after_s:g})",
            )
        return Finding(
            case.key,
            Result.ABSENT,
            f"not in CommBox: no object for this customer and type among the "
            f"{len(listing.items)} listed ({listing.pages} page(s)) around the send",
            address=case.request.address,
        )

    def _held(self, case: _Case, reason: str) -> Finding:
        return Finding(case.key, Result.HELD, reason, address=case.request.address)

    def _record(self, finding: Finding, cases: Sequence[_Case]) -> None:
        if finding.result not in (Result.SENT, Result.ABSENT):
            return
        case = next(c for c in cases if c.key == finding.key)
        event: dict[str, Any] = {
            "event": "reconciled",
            "key": finding.key,
            "fingerprint": case.state.fingerprint,
            "run": self.run_id,
            "result": finding.result.value,
        }
        if finding.result is Result.SENT:
            event["object_id"] = finding.object_id
        event["description"] = finding.reason  # counts and ids only: no message content
        self.ledger.append(event)


def _take_page(listing: _Listing, data: list[Any], page: int, first_page: dict[str, int]) -> bool:
    """Add a page's objects to the listing, once each; False when the listing moved."""
    for raw in data:
        item = Item.of(raw)
        if item.object_id is None:
            listing.items.append(item)
            continue
        seen_on = first_page.setdefault(item.object_id, page)
        if item.object_id in listing.ids and {seen_on, page} != {0, 1}:
            listing.moved = True  # on two pages other than 0 and 1, or twice on one
            return False
        if item.object_id not in listing.ids:
            listing.ids.add(item.object_id)
            listing.items.append(item)
    return True


def _clusters(cases: Sequence[_Case]) -> list[tuple[str, Window, list[_Case]]]:
    """Cases of one stream whose windows overlap, with the window covering them all."""
    by_stream: dict[str, list[_Case]] = {}
    for case in cases:
        by_stream.setdefault(case.request.path, []).append(case)
    clusters: list[tuple[str, Window, list[_Case]]] = []
    for path, members in by_stream.items():
        members.sort(key=lambda c: c.window.start)
        current: list[_Case] = []
        window: Window | None = None
        for case in members:
            if window is not None and case.window.start <= window.end:
                window = Window(window.start, max(window.end, case.window.end))
                current.append(case)
                continue
            if window is not None:
                clusters.append((path, window, current))
            window, current = case.window, [case]
        if window is not None:
            clusters.append((path, window, current))
    return clusters


def _ids(items: Sequence[Item]) -> str:
    shown = [i.object_id or "(no id)" for i in items[:5]]
    return ", ".join(shown) + (f" and {len(items) - 5} more" if len(items) > 5 else "")


def _object_id(text: str) -> int:
    return int(text)  # Item.of keeps only ids that are CommBox's: digits
