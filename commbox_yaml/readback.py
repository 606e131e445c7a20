"""Reading CommBox back: GETs of JSON through the shared client, and what the replies hold,
keys read without regard to case (CommBox spells them differently from one reply to the next:
`streamid`, `streamId`).

`Reader` is the only place reconcile touches the network. The client owns the connection
policy (deadline, 1 MiB reply cap, proxies, CAs, headers); retrying is the caller's choice: a
read is safe to repeat.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from commbox_yaml.client import Client, NotSent, ReplyLost, retry_after_seconds


@dataclass(frozen=True)
class Reply:
    status: int | None  # None: no whole reply (no connection, the deadline, over the size cap)
    payload: Any = None
    error: str | None = None
    retry_after: float | None = None
    again: bool = True  # with no reply: whether asking again may help


class Reader:
    """GET JSON from the API."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def get_json(self, path: str, query: Mapping[str, Any] | None = None) -> Reply:
        try:
            reply = self.client.get(path, query)
        except NotSent as exc:
            return Reply(None, error=exc.reason, again=not exc.fatal)
        except ReplyLost as exc:
            return Reply(None, error=exc.reason)
        try:
            payload = json.loads(reply.body)
        except ValueError:
            payload = None
        return Reply(
            reply.status, payload, retry_after=retry_after_seconds(reply.headers.get("retry-after"))
        )

    def close(self) -> None:
        self.client.close()


@dataclass(frozen=True)
class Item:
    """One listed object, its keys read without regard to case."""

    object_id: str | None
    customer: str | None
    type: str | None
    message: str | None
    created: float | None  # unix seconds; None when unreadable

    @classmethod
    def of(cls, raw: Any) -> Item:
        """Either documented item shape: `objectId` and `userStreamProviderId`, or `id` and
        the customer only under `user.identity.streamProviderId`."""
        fields = _folded(raw)
        # an id that is not CommBox's is no id: it is never recorded (the item can still hold)
        object_id = commbox_object_id(fields.get("objectid", fields.get("id")))
        customer = fields.get("userstreamproviderid")
        if customer is None:
            identity = _folded(_folded(fields.get("user")).get("identity"))
            customer = identity.get("streamproviderid")
        message = fields.get("message")
        return cls(
            None if object_id is None else str(object_id),
            _text(customer),
            _text(fields.get("type")),
            message if isinstance(message, str) else None,
            parse_time(fields.get("createdtime")),
        )


_DIGITS = re.compile(r"[0-9]{1,18}")


def commbox_object_id(value: Any) -> int | None:
    """A CommBox object id as documented, a positive integer (a JSON integer or a string of
    digits); None for anything else (`""`, `false`, `{}`, `-3`, `"12ab"`, `"obj-..."`)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 1 else None
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        number = int(value)
        return number if number >= 1 else None
    return None


def _folded(raw: Any) -> dict[str, Any]:
    """An object's keys in lower case (CommBox spells them differently from reply to reply)."""
    return {str(k).lower(): v for k, v in raw.items()} if isinstance(raw, dict) else {}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def parse_time(value: Any) -> float | None:
    """Unix seconds (or milliseconds), or ISO 8601 (UTC when no offset is given)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):
        value = float(value)
    if isinstance(value, int | float):
        return float(value) / 1000 if value > 1e11 else float(value)
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def reply_problem(reply: Reply, what: str) -> str | None:
    if reply.status is None:
        return f"{what} failed: {reply.error}"
    if reply.status in (403, 404):
        return f"reading is not allowed (HTTP {reply.status} {what}): {_description(reply)}"
    if reply.status != 200:
        return f"{what} failed (HTTP {reply.status}): {_description(reply)}"
    return None


def _description(reply: Reply) -> str:
    text = reply.payload.get("description") if isinstance(reply.payload, dict) else None
    text = str(text or "no description")
    # The ellipsis marks the cut, where output redaction also masks a secret's beginning.
    return text if len(text) <= 200 else text[:200] + "..."
