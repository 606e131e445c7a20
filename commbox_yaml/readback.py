"""Reading CommBox back: one GET of JSON, and what its replies hold, keys read without regard
to case (CommBox spells them differently from one reply to the next: `streamid`, `streamId`).

`Reader` is the only place reconcile touches the network; it keeps the client's habits (no
retries of its own, a timeout per connection and per read, the same headers) and caps a reply
at 1 MiB. Retrying is the caller's choice: a read is safe to repeat.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import urllib3
from urllib3.exceptions import HTTPError

from commbox_yaml import __version__
from commbox_yaml.project import ApiSettings

BODY_LIMIT = 1 << 20  # bytes of one reply


@dataclass(frozen=True)
class Reply:
    status: int | None  # None: no reply (connection failed, timeout, reply too large)
    payload: Any = None
    error: str | None = None
    retry_after: float | None = None
    again: bool = True  # with no reply: whether asking again may help (not for a huge reply)


class Reader:
    """GET JSON from the API: the only place reconcile touches the network."""

    def __init__(self, api: ApiSettings, base_url: str, token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "User-Agent": f"commbox-yaml/{__version__}",
        }
        self.pool = urllib3.PoolManager(
            retries=False,
            timeout=urllib3.Timeout(connect=api.timeout_s, read=api.timeout_s),
        )

    def get_json(self, path: str, query: Mapping[str, Any] | None = None) -> Reply:
        url = self.base_url + path + (f"?{urlencode(query)}" if query else "")
        try:
            response = self.pool.request(
                "GET", url, headers=self.headers, redirect=False, preload_content=False
            )
            body = response.read(BODY_LIMIT + 1)
        except HTTPError as exc:
            return Reply(None, error=f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}")
        if len(body) > BODY_LIMIT:
            response.close()  # the rest is never read: the connection is not reused
            return Reply(None, error="the reply was larger than 1 MiB", again=False)
        response.release_conn()
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        return Reply(response.status, payload, retry_after=_seconds(response.headers))

    def close(self) -> None:
        self.pool.clear()


def _seconds(headers: Any) -> float | None:
    try:
        return float(headers.get("Retry-After", ""))
    except ValueError:
        return None


# -- what a reply holds ----------------------------------------------------------------------


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
        fields = {str(k).lower(): v for k, v in raw.items()} if isinstance(raw, dict) else {}
        object_id = fields.get("objectid", fields.get("id"))
        message = fields.get("message")
        return cls(
            None if object_id is None else str(object_id),
            _text(fields.get("userstreamproviderid")),
            _text(fields.get("type")),
            message if isinstance(message, str) else None,
            parse_time(fields.get("createdtime")),
        )


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
    return str(text or "no description")[:200]
