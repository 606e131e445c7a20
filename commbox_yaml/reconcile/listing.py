"""Reading a stream's objects back: every page of a time window, and one object by id.

Reads are idempotent, so throttling and lost connections are retried; a 401 stops everything
(`ReadRefused`). A listing is trusted only when it is complete and did not move while it was
read (see `ObjectReader.list_once`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from commbox_yaml.project import ApiSettings
from commbox_yaml.readback import Item, Reader, Reply, parse_time, reply_problem
from commbox_yaml.reconcile.cases import CLOCK_SKEW_S, Case, Window

PAGE_SIZE = 100  # CommBox's cap
MAX_PAGES = 1000  # past 100,000 objects in one window, a listing is not worth trusting
LIST_TRIES = 3  # a listing that keeps moving while it is read is not worth trusting either
RETRY_BASE_S = 0.5


class ReadRefused(Exception):
    """401: the token was refused; nothing more is read."""


@dataclass
class Listing:
    items: list[Item] = field(default_factory=list)
    failure: str | None = None
    pages: int = 0  # how many pages were read
    ids: set[str] = field(default_factory=set)
    moved: bool = False  # an object was seen on two pages other than 0 and 1


class ObjectReader:
    """CommBox's read endpoints, as reconcile reads them; `clock` is this machine's."""

    def __init__(self, api: ApiSettings, reader: Reader, clock: Callable[[], float]) -> None:
        self.api = api
        self.reader = reader
        self.clock = clock

    def list_window(self, path: str, window: Window) -> Listing:
        """Every object in the window; a listing that moved while it was read is read again."""
        listing = Listing()
        for _ in range(LIST_TRIES):
            listing = self.list_once(path, window)
            if not listing.moved:
                return listing
        return Listing(
            failure=f"objects moved between pages while listing ({LIST_TRIES} tries); run it again",
            pages=listing.pages,
        )

    def list_once(self, path: str, window: Window) -> Listing:
        """Pages 0 and 1 (where pages start is not documented), then on until an empty page.

        A short page proves nothing (a server may cap `pageSize` below what was asked), so
        only an empty page after page 1 ends the read. Pages 0 and 1 may hold the same objects
        (a server counting from 1 may answer page 0 as page 1): their union is taken by object
        id. An object on any other two pages means the listing moved while it was read."""
        listing = Listing()
        first_page: dict[str, int] = {}  # object id -> the page it was first seen on
        query: dict[str, Any] = {
            "unixStartTime": int(window.start),
            "unixEndTime": int(window.end) + 1,
            "pageSize": PAGE_SIZE,
            "order": "createdtime",  # CommBox: `order` names the field, `sort` the direction
            "sort": "asc",  # oldest first: new objects land on the last page, earlier ones stay
        }
        for page in range(MAX_PAGES + 1):
            reply = self.get(path, {**query, "pageNumber": page})
            listing.pages = page + 1
            problem = reply_problem(reply, f"listing page {page}")
            data = reply.payload.get("data") if isinstance(reply.payload, dict) else None
            if problem is None and not isinstance(data, list):
                problem = f"listing page {page} gave no list of objects"
            if problem is None and page == 0:
                problem = self._clock_problem(reply.payload.get("response_time"))
            if problem is not None:
                return Listing(failure=problem, pages=page + 1)
            assert isinstance(data, list)
            if not _take_page(listing, data, page, first_page) or (not data and page >= 2):
                return listing
        return Listing(failure=f"more than {MAX_PAGES} pages in the window", pages=MAX_PAGES)

    def confirm(self, path: str, object_id: str, case: Case) -> str | None:
        """Read the matched object by id; why it does not confirm the match, or None."""
        reply = self.get(f"{path}/{quote(object_id, safe='')}")
        problem = reply_problem(reply, f"reading object {object_id}")
        if problem is not None:
            return problem
        data = reply.payload.get("data") if isinstance(reply.payload, dict) else None
        items = [Item.of(raw) for raw in (data if isinstance(data, list) else [data])]
        if not any(i.object_id == object_id and case.concerns(i) for i in items):
            return f"object {object_id} was listed but reading it back does not confirm it"
        return None

    def get(self, path: str, query: Mapping[str, Any] | None = None) -> Reply:
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


def _take_page(listing: Listing, data: list[Any], page: int, first_page: dict[str, int]) -> bool:
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
