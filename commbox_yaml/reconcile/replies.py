"""Unknown replies (`reply_to`), read back through their parent's conversation.

A reply is a child of its parent's object, not an object of the stream's listing, so it is
looked for among the parent's children: `GET /streams/{S}/objects/{PARENT_ID}?includeChilds=
true`. The rules of evidence are the listing's (decide.py): exactly one unclaimed child that
matches the customer, the text and the time is the reply; absent only when the read is whole,
no agent's message of the window is left unaccounted for (a different text is a reason to
hold, never proof of absence), and the send is older than `api.reconcile_after_s`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from commbox_yaml.ledger import LedgerView
from commbox_yaml.plan import parent_sent
from commbox_yaml.readback import Item, commbox_object_id, parse_time, reply_problem
from commbox_yaml.reconcile.cases import Case, Finding
from commbox_yaml.reconcile.decide import decide, held
from commbox_yaml.reconcile.listing import Listing, ObjectReader


@dataclass(frozen=True)
class ReplyCase(Case):
    """A reply's case: every agent's message in the parent's conversation concerns it (the
    identity CommBox shows on an agent's message may be the agent's, not the customer's)."""

    def concerns(self, item: Item) -> bool:
        return True


def reconcile_replies(
    objects: ObjectReader,
    cases: Sequence[Case],
    view: LedgerView,
    found_now: Mapping[str, Any],
    claimed: dict[str, str],
    now: float,
    reconcile_after_s: float,
) -> Iterator[Finding]:
    """A finding per reply case; `found_now`: parents' object ids settled in this run."""
    for case in cases:
        request = case.request
        assert request.parent_key is not None
        parent_id = found_now.get(request.parent_key)
        if parent_id is None:
            state = view.state(request.parent_key)
            parent_id = state.object_id if parent_sent(state) else None
        if parent_id is None:
            yield held(case, f"its parent {request.parent_address} has no object id in the ledger")
            continue
        listing = _children(objects, request.stream, str(parent_id), case)
        mine = ReplyCase(case.key, case.state, request, case.window, case.settled)
        confirmed = lambda object_id, case: None  # noqa: E731 (read whole, by the parent's id)
        yield from decide([mine], listing, claimed, now, confirmed, reconcile_after_s)


def _children(objects: ObjectReader, stream: str, parent_id: str, case: Case) -> Listing:
    """The agent's messages in the parent's conversation within the case's window."""
    path = f"/streams/{quote(stream, safe='')}/objects/{quote(parent_id, safe='')}"
    reply = objects.get(path, {"includeChilds": "true"})
    problem = reply_problem(reply, f"reading the parent object {parent_id}")
    data = reply.payload.get("data") if isinstance(reply.payload, dict) else None
    items = data if isinstance(data, list) else [data] if isinstance(data, dict) else []
    parents = [i for i in items if isinstance(i, dict) and _id(i, "objectid", "id") == parent_id]
    if problem is None and not parents:
        problem = f"reading the parent object {parent_id} gave no such object"
    if problem is not None:
        return Listing(failure=problem, pages=1)
    listing = Listing(pages=1)
    for raw in _childs(parents[0]):
        child_id = _id(raw, "id")
        if child_id == parent_id or _folded(raw).get("objectid") not in (None, *_ids(parent_id)):
            continue  # the object's own first message, or not of this conversation
        user = _folded(_folded(raw).get("user"))
        if user.get("ismanager") is False:
            continue  # the customer's message, not an agent's
        item = _item(raw, child_id)
        if case.window.holds(item.created):
            listing.items.append(item)
    return listing


def _item(raw: dict[str, Any], child_id: str | None) -> Item:
    fields = _folded(raw)
    identity = _folded(_folded(fields.get("user")).get("identity"))
    customer = identity.get("streamproviderid")
    message = fields.get("message")
    return Item(
        child_id,
        None if customer is None else str(customer),
        None,
        message if isinstance(message, str) else None,
        parse_time(fields.get("createdtime")),
    )


def _childs(parent: dict[str, Any]) -> list[dict[str, Any]]:
    """The children, under `childs` (or `user.childs`, where CommBox's OpenAPI puts them)."""
    fields = _folded(parent)
    found = fields.get("childs")
    if not isinstance(found, list):
        found = _folded(fields.get("user")).get("childs")
    return [c for c in found if isinstance(c, dict)] if isinstance(found, list) else []


def _id(raw: dict[str, Any], *names: str) -> str | None:
    fields = _folded(raw)
    for name in names:
        if name in fields:
            number = commbox_object_id(fields[name])
            return None if number is None else str(number)
    return None


def _ids(object_id: str) -> tuple[Any, ...]:
    return (object_id, int(object_id))


def _folded(raw: Any) -> dict[str, Any]:
    """Keys without regard to case or `_` (`object_id`, `objectId`)."""
    if not isinstance(raw, dict):
        return {}
    return {str(k).lower().replace("_", ""): v for k, v in raw.items()}
