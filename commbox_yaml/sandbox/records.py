"""What the sandbox keeps: the requests it received, the objects it created, its log lines."""

from __future__ import annotations

import threading
from email.message import Message
from typing import Any, TextIO

from commbox_yaml.sandbox.children import StoredChild
from commbox_yaml.sandbox.shapes import StoredObject
from commbox_yaml.sandbox.wire import (
    Answer,
    Parsed,
    Received,
    log_line,
    redacted_headers,
    utc_now,
)


class Records:
    """Every request in `received` and every object created in `objects`, a few KB each.

    `record_requests=False` keeps no requests and `store_objects=False` no objects, for a
    sandbox that runs a whole fan-out and that nothing reads back. One line per request goes
    to `output` if given.
    """

    def __init__(
        self,
        *,
        output: TextIO | None = None,
        record_requests: bool = True,
        store_objects: bool = True,
    ) -> None:
        self._output = output
        self._record_requests = record_requests
        self._store_objects = store_objects
        self._lock = threading.Condition()
        self._print_lock = threading.Lock()
        self._received: list[Received] = []
        self._objects: list[StoredObject] = []
        self._children: dict[int, list[StoredChild]] = {}  # by their object's id, oldest first
        self._made: set[tuple[str, int]] = set()  # (stream, object id) of every object made

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    @property
    def objects(self) -> list[StoredObject]:
        with self._lock:
            return list(self._objects)

    def has_object(self, stream_id: str, object_id: str) -> int | None:
        """The object's id when this sandbox made it in that stream (stored or not)."""
        number = int(object_id) if object_id.isdigit() else None
        with self._lock:
            return number if number is not None and (stream_id, number) in self._made else None

    def children_of(self, object_id: int) -> list[StoredChild]:
        with self._lock:
            return list(self._children.get(object_id, ()))

    def count(self, **criteria: Any) -> int:
        return sum(
            all(getattr(r, name) == value for name, value in criteria.items())
            for r in self.received
        )

    def clear(self) -> None:
        with self._lock:
            self._received.clear()

    def wait_for(self, count: int, timeout: float) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: len(self._received) >= count, timeout)

    def record(
        self,
        method: str,
        target: str,
        stream_id: str | None,
        headers: Message,
        parsed: Parsed,
        answer: Answer,
        parent: int | None = None,
        *,
        body: Any = None,
        objects: list[tuple[int, dict[str, Any]]] | None = None,
        whatsapp_ids: tuple[str, ...] = (),
    ) -> Answer:
        """Keep the request (and the object it created, or with `parent`, the child it added
        to that object), print its line; returns `answer`."""
        # Recorded before the answer is written: a client that has its answer finds it here.
        received = Received(
            method=method,
            path=target,
            stream_id=stream_id,
            headers=redacted_headers(headers),
            data=parsed.data,
            files=parsed.files,
            status=answer.status,
            object_id=answer.object_id,
            description=answer.description,
            time=utc_now(),
            body=body,
            whatsapp_ids=whatsapp_ids,
        )
        if objects is None:  # Create Object: the one object its answer names
            objects = []
            if answer.object_id is not None and parsed.data is not None:
                objects = [(answer.object_id, parsed.data)]
        with self._lock:
            if self._record_requests:
                self._received.append(received)
            made, data = answer.object_id, parsed.data
            if parent is None and stream_id:
                self._made.update((stream_id, object_id) for object_id, _ in objects)
                if made is not None:
                    self._made.add((stream_id, made))
            if not self._store_objects:
                pass
            elif parent is not None:
                if made is not None and data is not None:
                    child = StoredChild(made, parent, data, received.time)
                    self._children.setdefault(parent, []).append(child)
            elif stream_id:
                for object_id, stored_data in objects:
                    serial = len(self._objects)
                    stored = StoredObject(object_id, stream_id, stored_data, received.time, serial)
                    self._objects.append(stored)
            self._lock.notify_all()
        self._print(log_line(received))
        return answer

    def _print(self, line: str) -> None:
        if self._output is None:
            return
        with self._print_lock:
            self._output.write(line + "\n")
            self._output.flush()
