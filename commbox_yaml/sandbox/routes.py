"""How the sandbox answers one request: Create Object, the two reads, and everything else."""

from __future__ import annotations

import dataclasses
import hmac
import threading
from email.message import Message
from typing import cast
from urllib.parse import parse_qs, unquote, urlsplit

from commbox_yaml.sandbox.children import CHILD_PATH, check_child
from commbox_yaml.sandbox.faults import FaultSchedule
from commbox_yaml.sandbox.reads import OBJECT_PATH, Paging, list_answer, one_answer
from commbox_yaml.sandbox.records import Records
from commbox_yaml.sandbox.shapes import ReadStyle
from commbox_yaml.sandbox.whatsapp_v2 import V2_PATH, digits, serve_v2
from commbox_yaml.sandbox.wire import (
    OBJECTS_PATH,
    Answer,
    Fault,
    ObjectIds,
    Parsed,
    error_answer,
    parse_body,
    success_answer,
)


class Routes:
    """Each request in, one `Answer` out, every request recorded in `records`.

    A Create Object request meets the next fault of `faults`, waits `latency_ms` (and the
    fault's delay), then is checked: token, body shape, a new object id from `ids`. Reads are
    answered from the objects recorded so far, unless `refuse_reads`. Waits end early once
    `stopping` is set.
    """

    def __init__(
        self,
        *,
        token: str | None,
        latency_ms: int,
        refuse_reads: bool,
        paging: Paging,
        read_style: ReadStyle,
        ids: ObjectIds,
        faults: FaultSchedule,
        records: Records,
        whatsapp_invalid: tuple[str, ...] = (),
    ) -> None:
        self.token = token
        self.latency_ms = latency_ms
        self.refuse_reads = refuse_reads
        self.paging = paging
        self.read_style = read_style
        self.ids = ids
        self.faults = faults
        self.records = records
        # Recipients the v2 WhatsApp endpoint answers as not on WhatsApp (206), as digits.
        self.whatsapp_invalid = frozenset(digits(p) for p in whatsapp_invalid)
        self.stopping = threading.Event()

    def handle(self, method: str, target: str, headers: Message, body: bytes) -> Answer:
        path = urlsplit(target).path
        child = CHILD_PATH.fullmatch(path)
        if child is not None:
            return self._child(method, target, headers, body, child.group(1), child.group(2))
        match = OBJECTS_PATH.fullmatch(path)
        found = match or OBJECT_PATH.fullmatch(path)
        if method == "GET" and found:
            return self._read(target, headers)
        record = self.records.record
        v2 = V2_PATH.fullmatch(path) if found is None else None
        if v2 is not None:
            fault = self.faults.next()
            self._sleep(self.latency_ms / 1000 + fault.delay_s)
            return serve_v2(
                method=method, target=target, stream_id=unquote(v2.group(1)), headers=headers,
                body=body, fault=fault, authorized=self._authorized, ids=self.ids,
                invalid=self.whatsapp_invalid, records=self.records,
            )  # fmt: skip
        if found is None:
            return record(method, target, None, headers, Parsed(), error_answer(404))
        stream_id = unquote(found.group(1))
        if match is None or method != "POST":
            # CommBox documents 501 "the requested operation is not supported" for these.
            allowed = "GET" if match is None else "GET, POST"
            answer = error_answer(501, f"{method} is not supported here; use {allowed}")
            return record(method, target, stream_id, headers, Parsed(), answer)
        fault = self.faults.next()
        parsed = parse_body(headers.get("Content-Type"), body)
        self._sleep(self.latency_ms / 1000 + fault.delay_s)
        answer = self._decide(fault, headers, parsed)
        return record(method, target, stream_id, headers, parsed, answer)

    def _child(
        self, method: str, target: str, headers: Message, body: bytes, stream: str, object_id: str
    ) -> Answer:
        """Create Child Object: a message added to an object's conversation (children.py)."""
        stream_id, object_id = unquote(stream), unquote(object_id)
        if method != "POST":
            answer = error_answer(501, f"{method} is not supported here; use POST")
            return self.records.record(method, target, stream_id, headers, Parsed(), answer)
        fault = self.faults.next()
        parsed = parse_body(headers.get("Content-Type"), body)
        if parsed.data is not None:  # the child's own rules, not Create Object's
            parsed = Parsed(parsed.data, parsed.files, tuple(check_child(parsed.data)))
        self._sleep(self.latency_ms / 1000 + fault.delay_s)
        parent = self.records.has_object(stream_id, object_id)
        quiet = not (fault.drop or fault.answers_error)
        if parent is None and quiet and self._authorized(headers.get("Authorization")):
            answer = error_answer(404, f"object {object_id} not found in stream {stream_id}")
        else:
            answer = self._decide(fault, headers, parsed)
        return self.records.record(method, target, stream_id, headers, parsed, answer, parent)

    def unreadable(self, method: str, target: str, headers: Message) -> Answer:
        """A request whose body could not be read: 400, and the connection closes."""
        answer = error_answer(400, "the request body could not be read (check Content-Length)")
        return self.records.record(method, target, None, headers, Parsed(), answer)

    def _read(self, target: str, headers: Message) -> Answer:
        """The two read endpoints, over the objects created so far."""
        parts = urlsplit(target)
        one = OBJECT_PATH.fullmatch(parts.path)
        listing = OBJECTS_PATH.fullmatch(parts.path)
        match = one or listing
        assert match is not None  # handle routes only these two paths here
        stream_id = unquote(match.group(1))
        self._sleep(self.latency_ms / 1000)
        query = parse_qs(parts.query)
        if self.refuse_reads:
            answer = error_answer(401, "this API key has no right to read objects")
        elif not self._authorized(headers.get("Authorization")):
            answer = error_answer(401)
        elif one is not None:
            object_id = unquote(one.group(2))
            objects, children = self.records.objects, self.records.children_of
            answer = one_answer(objects, stream_id, object_id, query, self.read_style, children)
        else:
            objects = self.records.objects
            answer = list_answer(objects, stream_id, query, self.paging, self.read_style)
        return self.records.record("GET", target, stream_id, headers, Parsed(), answer)

    def _decide(self, fault: Fault, headers: Message, parsed: Parsed) -> Answer:
        if fault.drop and not fault.store:
            return Answer(None, description="dropped")
        if fault.answers_error and not fault.store:
            return error_answer(cast(int, fault.status), fault=fault)
        if not self._authorized(headers.get("Authorization")):
            return error_answer(401)
        if parsed.problems and not fault.forces_success:
            return error_answer(400, "; ".join(parsed.problems))
        object_id = fault.id if fault.id is not None else self.ids.next()
        if fault.drop:  # stored, then the connection closes: the client never learns the id
            return Answer(None, description="dropped after storing", object_id=object_id)
        if fault.answers_error:
            answer = error_answer(cast(int, fault.status), fault=fault)
            return dataclasses.replace(answer, object_id=object_id)
        return success_answer(fault.status or 200, object_id, fault)

    def _authorized(self, header: str | None) -> bool:
        scheme, _, token = (header or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        if self.token is None:
            return True
        return hmac.compare_digest(token.encode("utf-8"), self.token.encode("utf-8"))

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.stopping.wait(seconds)  # stop() cuts it short
