"""Requests x ledger -> Plan: an inert value that can be shown, saved, compared and applied."""

from __future__ import annotations

import hashlib
import json
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, overload

from commbox_yaml.build import Build
from commbox_yaml.compile import Request
from commbox_yaml.definitions import Definition
from commbox_yaml.keys import expand
from commbox_yaml.ledger import KeyState, KeyStatus, LedgerView
from commbox_yaml.render import OfMessage
from commbox_yaml.store import BuiltMessages, PlanOrder, plan_order

PLAN_FORMAT = "1"
PLAN_KIND = "commbox-yaml plan"
SANDBOX = "sandbox"  # a plan file's destination when made with --sandbox


class Action(Enum):
    SEND = "send"
    UNCHANGED = "unchanged"
    CHANGED = "changed"
    UNKNOWN = "unknown"
    WAIT = "wait"  # a reply waiting for its parent (conversation.py)
    SKIPPED = "skipped"

    @property
    def symbol(self) -> str:
        return _SYMBOLS[self]


_SYMBOLS = {
    Action.SEND: "+",
    Action.UNCHANGED: "=",
    Action.CHANGED: "~",
    Action.UNKNOWN: "?",
    Action.WAIT: ">",
    Action.SKIPPED: " ",
}


@dataclass(frozen=True)
class ParentLink:
    """A reply's parent: its address and key, and its object id once it is sent."""

    address: str
    key: str
    object_id: Any = None  # from the ledger, or in an apply from the parent's reply
    in_this_apply: bool = False  # the parent is `+` in this plan: the reply goes right after


@dataclass(frozen=True)
class PlannedMessage(OfMessage):
    request: Request | None  # None when skipped
    action: Action
    state: KeyState
    changed_fields: tuple[str, ...] = ()
    replace: bool = False  # a held message sent anyway because of --replace
    parent: ParentLink | None = None  # a reply's parent (reply_to)

    @property
    def sends(self) -> bool:
        return self.action is Action.SEND

    @property
    def follows(self) -> bool:
        """A reply waiting for a parent that this apply sends: it goes right after it."""
        return self.action is Action.WAIT and self.parent is not None and self.parent.in_this_apply


_ACTIONS = tuple(Action)
_CODES = {action: code for code, action in enumerate(_ACTIONS)}
# Held for a person's look: a compact plan still shows each of these in full.
HELD = (Action.CHANGED, Action.UNKNOWN, Action.WAIT)


@dataclass(frozen=True)
class DefinitionCounts:
    """One definition's messages in a plan, counted by action."""

    definition: Definition
    counts: dict[Action, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class _Decisions:
    """What a plan decided for each entry of a build's store: an action byte each, and the
    changed fields and --replace of the few that have them."""

    store: BuiltMessages
    actions: bytearray
    extra: dict[int, tuple[tuple[str, ...], bool]]
    ledger: LedgerView
    following: frozenset[int] = frozenset()  # replies whose parent this plan sends

    def planned(self, index: int) -> PlannedMessage:
        entry = self.store[index]
        action = _ACTIONS[self.actions[index]]
        if isinstance(entry, Request):
            changed, replace = self.extra.get(index, ((), False))
            state = self.ledger.state(entry.key)
            parent = None
            if entry.parent_key is not None and entry.parent_address is not None:
                parent_state = self.ledger.state(entry.parent_key)
                object_id = parent_state.object_id if parent_sent(parent_state) else None
                parent = ParentLink(
                    entry.parent_address, entry.parent_key, object_id, index in self.following
                )
            return PlannedMessage(entry.message, entry, action, state, changed, replace, parent)
        return PlannedMessage(entry, None, action, self.ledger.state(entry.key))


class PlannedMessages(Sequence[PlannedMessage]):
    """A plan's messages in plan order, or some of them (`only`). Each is made when it is
    read, from the build's store (which may be on disk) and the plan's decisions: a plan or
    an apply of a large fan-out never holds all of them."""

    def __init__(self, decisions: _Decisions, indexes: Sequence[int]) -> None:
        self._decisions, self._indexes = decisions, indexes

    def __len__(self) -> int:
        return len(self._indexes)

    @overload
    def __getitem__(self, index: int) -> PlannedMessage: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[PlannedMessage]: ...
    def __getitem__(self, index: int | slice) -> PlannedMessage | Sequence[PlannedMessage]:
        if isinstance(index, slice):
            return [self._decisions.planned(i) for i in self._indexes[index]]
        return self._decisions.planned(self._indexes[index])

    def __iter__(self) -> Iterator[PlannedMessage]:
        for index in self._indexes:
            yield self._decisions.planned(index)

    def only(self, action: Action) -> PlannedMessages:
        """Those with this action, in plan order; the others are not read."""
        code, actions = _CODES[action], self._decisions.actions
        return PlannedMessages(
            self._decisions, array("q", (i for i in self._indexes if actions[i] == code))
        )

    def following(self) -> PlannedMessages:
        """The replies that go right after their parent in this apply, in plan order."""
        after = self._decisions.following
        chosen = (i for i in self._indexes if i in after) if after else ()
        return PlannedMessages(self._decisions, array("q", chosen))

    def count(self, action: Action) -> int:
        code, actions = _CODES[action], self._decisions.actions
        if len(self._indexes) == len(actions):  # the whole plan
            return actions.count(code)
        return sum(1 for i in self._indexes if actions[i] == code)

    def of_channel(self, channel: str) -> PlannedMessages:
        """Those of one channel, in plan order; the others are not read."""
        store = self._decisions.store
        return PlannedMessages(
            self._decisions,
            array("q", (i for i in self._indexes if store.definition(i).channel == channel)),
        )

    def by_definition(self) -> list[DefinitionCounts]:
        """Each definition, in plan order, with its messages counted by action; no message is
        read back, so this costs the same for a fan-out on disk."""
        store, actions = self._decisions.store, self._decisions.actions
        counts: dict[int, list[int]] = {}
        definitions: dict[int, Definition] = {}
        for index in self._indexes:
            definition = store.definition(index)
            mine = counts.get(id(definition))
            if mine is None:
                mine = counts[id(definition)] = [0] * len(_ACTIONS)
                definitions[id(definition)] = definition
            mine[actions[index]] += 1
        return [
            DefinitionCounts(
                definitions[ident], {a: n for a, n in zip(_ACTIONS, mine, strict=True) if n}
            )
            for ident, mine in counts.items()
        ]

    def for_a_look(self) -> PlannedMessages:
        """Those a person should look at, in plan order: the held ones (changed, unknown) and
        those --replace sends again."""
        held = {_CODES[action] for action in HELD}
        actions, extra = self._decisions.actions, self._decisions.extra
        return PlannedMessages(
            self._decisions,
            array("q", (i for i in self._indexes if actions[i] in held or _replacing(extra, i))),
        )


def _replacing(extra: dict[int, tuple[tuple[str, ...], bool]], index: int) -> bool:
    found = extra.get(index)
    return found is not None and found[1]


@dataclass(frozen=True)
class Previous:
    """What one message's request was as of the ref: enough to compare and to show."""

    fingerprint: str
    stream: str
    body: dict[str, Any]  # as outputs show it: what a secret made is (sensitive)


@dataclass
class Against:
    """The requests of the project as of `ref`, by ledger key."""

    ref: str
    commit: str
    requests: dict[str, Previous] = field(default_factory=dict)
    existed: bool = True  # False: the project was not there at that ref


@dataclass(frozen=True)
class Plan:
    messages: PlannedMessages
    ledger: LedgerView
    ledger_display: str
    files: int
    replace: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    against: Against | None = None  # the project as of a git ref (plan --against)
    destination: str = ""  # where it would send (`sandbox` or the base URL), for its digest

    @property
    def sends(self) -> PlannedMessages:
        return self.messages.only(Action.SEND)

    @property
    def send_count(self) -> int:
        return self.messages.count(Action.SEND)

    @property
    def following(self) -> PlannedMessages:
        """Replies (`>`) that go right after their parent, which this plan sends."""
        return self.messages.following()

    def summary(self) -> dict[str, int]:
        return {action.value: self.messages.count(action) for action in Action}

    @property
    def digest(self) -> str:
        """What a reviewer approves (SPEC section 11): see `plan_digest`."""
        return plan_digest(
            self.destination,
            self.replace,
            (
                (m.key, m.action.value, m.request.fingerprint if m.request else None)
                for m in self.messages
            ),
        )


def plan_digest(
    destination: str,
    replace: Sequence[str],
    messages: Iterable[tuple[str, str, str | None]],
) -> str:
    """`sha256:...` of where a plan sends, its --replace list, and each message's key, action
    and fingerprint, in order: a plan file edited by hand (an action turned to send, the
    replace list widened) cannot keep it. A line of canonical JSON per part, hashed as it
    comes: a plan of 100,000 messages is never held whole for it."""
    hashed = hashlib.sha256()
    hashed.update(_canonical({"destination": destination, "replace": list(replace)}))
    for key, action, fingerprint in messages:
        hashed.update(_canonical([key, action, fingerprint]))
    return "sha256:" + hashed.hexdigest()


def _canonical(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def make_plan(
    result: Build,
    ledger: LedgerView,
    ledger_display: str,
    replace: Sequence[str] = (),
    targets: Sequence[str] = (),
) -> Plan:
    """Decide, for every message, what apply would do with it.

    A message whose key the ledger has never seen is sent: it is decided from the hash of its
    key alone, so a plan of a new fan-out never reads its messages back from the store."""
    store = result.messages
    wanted = expand(replace, (r.key for r in result.requests)) if replace else set()
    known = {hash(key) for key in ledger.states}
    actions = bytearray(len(store))
    extra: dict[int, tuple[tuple[str, ...], bool]] = {}
    replies: list[int] = []  # decided once their parents are
    for index in range(len(store)):
        if store.is_skipped(index):
            actions[index] = _CODES[Action.SKIPPED]
            continue
        if store.is_reply(index):
            replies.append(index)
            continue
        if store.key_hash(index) not in known:
            actions[index] = _CODES[Action.SEND]  # never sent: sent, --replace or not
            continue
        request = store[index]
        assert isinstance(request, Request)
        action, changed = decide(request, ledger.state(request.key))
        replacing = False
        if action is not Action.SEND and request.key in wanted:
            action, replacing = Action.SEND, True
        actions[index] = _CODES[action]
        if changed or replacing:
            extra[index] = (changed, replacing)
    following = _decide_replies(store, ledger, replies, actions, extra, wanted)
    order = range(len(store)) if store.in_order else _plan_order(store)
    messages = PlannedMessages(_Decisions(store, actions, extra, ledger, following), order)
    return Plan(messages, ledger, ledger_display, len(result.files), tuple(replace), tuple(targets))


def _decide_replies(
    store: BuiltMessages,
    ledger: LedgerView,
    replies: list[int],
    actions: bytearray,
    extra: dict[int, tuple[tuple[str, ...], bool]],
    wanted: set[str],
) -> frozenset[int]:
    """A reply is decided as any message, except that one to send waits (`>`) while its
    parent is not sent: right after the parent when this plan sends it, else until then.
    Returns the replies that go after their parent in this apply."""
    if not replies:
        return frozenset()
    send = _CODES[Action.SEND]
    sending = {
        store.key_hash(i)
        for i in range(len(store))
        if actions[i] == send and not store.is_reply(i) and not store.is_skipped(i)
    }
    following = set()
    for index in replies:
        request = store[index]
        assert isinstance(request, Request)
        assert request.parent_key is not None
        action, changed = decide(request, ledger.state(request.key))
        replacing = False
        if action is not Action.SEND and request.key in wanted:
            action, replacing = Action.SEND, True
        if action is Action.SEND:
            if hash(request.parent_key) in sending:
                action = Action.WAIT
                following.add(index)
            elif not parent_sent(ledger.state(request.parent_key)):
                action = Action.WAIT
        actions[index] = _CODES[action]
        if changed or replacing:
            extra[index] = (changed, replacing)
    return frozenset(following)


def parent_sent(state: KeyState) -> bool:
    """Whether a reply can go to its parent's conversation: the parent's last try was sent."""
    return state.status is KeyStatus.SENT and state.object_id is not None


def _plan_order(store: BuiltMessages) -> list[int]:
    """Indexes of the store's entries sorted by file, line and address (in natural order:
    `c2` before `c10`); requests before skipped messages, then build order, on a tie."""

    def order(index: int) -> tuple[PlanOrder, bool, int]:
        entry = store[index]
        message = entry.message if isinstance(entry, Request) else entry
        return plan_order(message), store.is_skipped(index), index

    return [key[-1] for key in sorted(order(i) for i in range(len(store)))]


def decide(request: Request, state: KeyState) -> tuple[Action, tuple[str, ...]]:
    if request.send_always:
        return Action.SEND, ()
    if state.status is KeyStatus.UNKNOWN:
        return Action.UNKNOWN, ()
    # Compared with the last *successful* send, so that a refused --replace (failed) never
    # turns an earlier delivery into a fresh `+`.
    if state.sent_fingerprint is not None:
        if state.sent_fingerprint == request.fingerprint:
            return Action.UNCHANGED, ()
        return Action.CHANGED, changed_fields(state.sent_fields, request.field_hashes)
    return Action.SEND, ()  # never sent, forgotten, or every try failed definitively


def changed_fields(before: Mapping[str, str], after: Mapping[str, str]) -> tuple[str, ...]:
    names = sorted(set(before) | set(after))
    return tuple(n for n in names if before.get(n) != after.get(n))
