"""The sandbox's read endpoints: the objects it stored, in CommBox's documented reply shapes.

`GET /streams/{STREAM_ID}/objects` lists objects and, as CommBox's does, fails (400) without a
filter: a time window (`unixStartTime` + `unixEndTime`), a customer identity
(`identityStreamProviderId` + `identityStreamProviderType`) or `userIdentityId`. It pages with
`pageNumber` and `pageSize` (at most 100), without a total count; where pages start (0 or 1) and
how many objects a page holds at most are settings (`Paging`), as neither is documented; `sort`
is `desc` (the default, newest first) or `asc`.
`GET /streams/{STREAM_ID}/objects/{OBJECT_ID}` answers `data` as an array. The replies are
spelled as CommBox's OpenAPI documents them (sandbox/shapes.py), times as CommBox's .NET server
writes them (`2024-09-17T07:51:52.2581942Z`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from commbox_yaml.sandbox.children import StoredChild, child_item
from commbox_yaml.sandbox.shapes import ReadStyle, StoredObject, full_object, list_item
from commbox_yaml.sandbox.wire import Answer, error_answer, json_bytes, response_time, utc_now

OBJECT_PATH = re.compile(r"/streams/([^/]+)/objects/([^/]+)")
PAGE_SIZE_MAX = 100

Query = Mapping[str, Sequence[str]]


class BadQuery(ValueError):
    """The query cannot be served: answered 400 with this text."""


@dataclass(frozen=True)
class Paging:
    """How the listing pages: where page numbers start, and the most objects a page holds.

    Neither is documented by CommBox, so both are settings: a client must cope with either
    start (`first_page` 0 or 1) and with a server capping `pageSize` below what was asked.
    With `first_page=1`, page 0 is answered as page 1 (`page_zero="first"`) or empty."""

    first_page: int = 1
    page_cap: int = PAGE_SIZE_MAX
    page_zero: str = "first"

    def __post_init__(self) -> None:
        if self.first_page not in (0, 1):
            raise ValueError("first_page must be 0 or 1")
        if not 1 <= self.page_cap <= PAGE_SIZE_MAX:
            raise ValueError(f"page_cap must be from 1 to {PAGE_SIZE_MAX}")
        if self.page_zero not in ("first", "empty"):
            raise ValueError("page_zero must be 'first' or 'empty'")

    def start(self, page: int, size: int) -> int | None:
        """The index of the page's first object, or None for a page that is always empty."""
        if page < self.first_page:  # page 0 of a server counting from 1
            return 0 if self.page_zero == "first" else None
        return (page - self.first_page) * size


def list_answer(
    objects: Sequence[StoredObject],
    stream_id: str,
    query: Query,
    paging: Paging,
    style: ReadStyle,
) -> Answer:
    try:
        keep = _filter(query)
        page = _int(query, "pageNumber", paging.first_page, 0)
        size = _int(query, "pageSize", PAGE_SIZE_MAX, 1)
    except BadQuery as exc:
        return error_answer(400, str(exc))
    size = min(size, paging.page_cap)  # CommBox caps a page at 100 objects, a server maybe less
    chosen = sorted(
        (o for o in objects if o.stream_id == stream_id and keep(o)),
        key=lambda o: (o.created, o.object_id),
        # `sort` is the direction (CommBox's default: newest first); `order` names the time
        # field, and every time of a sandbox object is its creation time.
        reverse=_first(query, "sort", "desc").lower() != "asc",
    )
    start = paging.start(page, size)
    shown = [] if start is None else chosen[start : start + size]
    return _ok([list_item(o, style) for o in shown])


def one_answer(
    objects: Sequence[StoredObject],
    stream_id: str,
    object_id: str,
    query: Query,
    style: ReadStyle,
    children_of: Callable[[int], Sequence[StoredChild]] = lambda object_id: (),
) -> Answer:
    children = _first(query, "includeChilds", "false").lower() == "true"
    for stored in objects:
        if stored.stream_id == stream_id and str(stored.object_id) == object_id:
            # The last communication at the top: the newest child first. Without
            # includeChilds, only the last message (CommBox's note on Get_Object).
            added = [child_item(c) for c in reversed(children_of(stored.object_id))]
            return _ok([full_object(stored, style, children, added)])
    return error_answer(404, f"object {object_id} not found in stream {stream_id}")


def _ok(items: list[dict[str, Any]]) -> Answer:
    payload = {
        "status": "200",
        "description": "OK",
        "response_time": response_time(utc_now()),
        "data": items,
    }
    return Answer(200, json_bytes(payload), description="OK")


def _filter(query: Query) -> Callable[[StoredObject], bool]:
    """The filter the query asks for; BadQuery when it asks for none (CommBox's list fails)."""
    tests: list[Callable[[StoredObject], bool]] = []
    if "unixStartTime" in query or "unixEndTime" in query:
        start, end = _int(query, "unixStartTime", None, 0), _int(query, "unixEndTime", None, 0)
        tests.append(lambda o: start <= int(o.created.timestamp()) <= end)
    if "identityStreamProviderId" in query or "identityStreamProviderType" in query:
        identity = _first(query, "identityStreamProviderId", "")
        kind = _int(query, "identityStreamProviderType", None, 0)
        if not identity:
            raise BadQuery("identityStreamProviderId must not be empty")
        tests.append(
            lambda o: (
                str(o.data.get("UserStreamProviderId")) == identity
                and o.data.get("UserStreamProviderType") == kind
            )
        )
    if "userIdentityId" in query:
        user = _int(query, "userIdentityId", None, 0)
        tests.append(lambda o: o.data.get("UserIdentity") == user)
    if not tests:
        raise BadQuery(
            "a filter is required: unixStartTime and unixEndTime, or identityStreamProviderId "
            "and identityStreamProviderType, or userIdentityId"
        )
    return lambda o: all(test(o) for test in tests)


def _first(query: Query, name: str, default: str) -> str:
    values = query.get(name)
    return values[0] if values else default


def _int(query: Query, name: str, default: int | None, low: int) -> int:
    text = _first(query, name, "")
    if not text:
        if default is None:
            raise BadQuery(f"{name} is required with the filter it belongs to")
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadQuery(f"{name} must be a whole number, not {text!r}") from None
    if value < low:
        raise BadQuery(f"{name} must be at least {low}")
    return value
