"""The sandbox as one object: its settings, its lifecycle, and what tests look at.

Its parts: `FaultSchedule` (sandbox/faults.py) picks each request's fault, `Records`
(sandbox/records.py) keeps what was received and created, `Routes` (sandbox/routes.py)
answers each request, and `Listener` (sandbox/listener.py) is the HTTP server.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any, Generic, TextIO, TypeVar, cast, overload

from commbox_yaml.sandbox.children import StoredChild
from commbox_yaml.sandbox.faults import FaultSchedule
from commbox_yaml.sandbox.listener import Listener
from commbox_yaml.sandbox.reads import PAGE_SIZE_MAX, Paging
from commbox_yaml.sandbox.records import Records
from commbox_yaml.sandbox.routes import Routes
from commbox_yaml.sandbox.shapes import ReadStyle, StoredObject
from commbox_yaml.sandbox.wire import Fault, ObjectIds, Received

HOST = "127.0.0.1"

_T = TypeVar("_T")


class _Kept(Generic[_T]):
    """A setting one of the server's parts keeps: read and set on the server, used by the part
    (tests change e.g. `server.latency_ms` between runs)."""

    def __init__(self, part: str) -> None:
        self._part = part
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, obj: None, owner: type) -> _Kept[_T]: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> _T: ...
    def __get__(self, obj: object | None, owner: type | None = None) -> _Kept[_T] | _T:
        if obj is None:
            return self
        return cast(_T, getattr(getattr(obj, self._part), self._name))

    def __set__(self, obj: object, value: _T) -> None:
        setattr(getattr(obj, self._part), self._name, value)


class SandboxServer:
    """The CommBox stand-in: `with SandboxServer() as server: ... server.url ...`.

    Periodic faults count the requests to the Create Object endpoint (1-based): when several
    apply to one request, drop wins over store-then-fail, that over fail, fail over throttle.
    Scripted faults are used first, one per request, in order. Output (one line per request)
    goes to `output` if given. The objects it created are served back by the read endpoints
    (`GET /streams/{id}/objects[/{oid}]`), unless `refuse_reads` (then every read is 401, as
    CommBox answers a key without the right to read). `list_shapes` and `stored_text` pick the
    documented spellings of the replies (sandbox/shapes.py).
    Object ids never repeat across runs (`ObjectIds`); `first_id` gives fixed ones, for tests.
    The listing's pages start at `first_page` (0 or 1; with 1, page 0 is answered as page 1,
    or empty with `page_zero="empty"`) and hold at most `page_cap` objects, whatever
    `pageSize` asks for: CommBox documents neither.

    Every request is kept in `received` and every object it created in `objects`, a few KB
    each: what tests look at. A server that runs for a whole fan-out keeps only what it must:
    `record_requests=False` keeps no requests (`received`, `count` and `wait_for` see none),
    and `store_objects=False` no objects either (the read endpoints then find none), for a
    sandbox that nothing reads back.
    """

    latency_ms = _Kept[int]("_routes")
    refuse_reads = _Kept[bool]("_routes")
    paging = _Kept[Paging]("_routes")
    read_style = _Kept[ReadStyle]("_routes")
    throttle_every = _Kept[int]("_faults")
    throttle_retry_after = _Kept["int | str | None"]("_faults")
    fail_every = _Kept[int]("_faults")
    fail_status = _Kept[int]("_faults")
    drop_every = _Kept[int]("_faults")
    store_then_fail_every = _Kept[int]("_faults")

    def __init__(
        self,
        *,
        port: int = 0,
        token: str | None = None,
        latency_ms: int = 0,
        throttle_every: int = 0,
        throttle_retry_after: int | str | None = 1,
        fail_every: int = 0,
        fail_status: int = 500,
        drop_every: int = 0,
        store_then_fail_every: int = 0,
        refuse_reads: bool = False,
        first_page: int = 1,
        page_cap: int = PAGE_SIZE_MAX,
        page_zero: str = "first",
        list_shapes: str = "both",
        stored_text: str = "as-sent",
        first_id: int | None = None,
        output: TextIO | None = None,
        record_requests: bool = True,
        store_objects: bool = True,
        whatsapp_invalid: tuple[str, ...] = (),
    ) -> None:
        for name, value in (
            ("port", port),
            ("latency_ms", latency_ms),
            ("throttle_every", throttle_every),
            ("fail_every", fail_every),
            ("drop_every", drop_every),
            ("store_then_fail_every", store_then_fail_every),
        ):
            if value < 0:
                raise ValueError(f"{name} must not be negative")
        if not 500 <= fail_status <= 599:
            raise ValueError("fail_status must be a 5xx status")
        self._port = port
        self._output = output
        self._faults = FaultSchedule(
            throttle_every=throttle_every,
            throttle_retry_after=throttle_retry_after,
            fail_every=fail_every,
            fail_status=fail_status,
            drop_every=drop_every,
            store_then_fail_every=store_then_fail_every,
        )
        paging = Paging(first_page, page_cap, page_zero)
        read_style = ReadStyle(list_shapes, stored_text)
        self._records = Records(
            output=output, record_requests=record_requests, store_objects=store_objects
        )
        self._routes = Routes(
            token=token or None,
            latency_ms=latency_ms,
            refuse_reads=refuse_reads,
            paging=paging,
            read_style=read_style,
            ids=ObjectIds(first_id),
            faults=self._faults,
            records=self._records,
            whatsapp_invalid=whatsapp_invalid,
        )
        self._server: Listener | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    def start(self) -> SandboxServer:
        if self._server is not None:
            raise RuntimeError("the sandbox is already started")
        self._routes.stopping.clear()
        self._server = Listener((HOST, self._port), self._routes, self._output)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},  # stop() waits at most this long for the loop
            name=f"commbox-sandbox:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake any delayed handler, and close every connection. Idempotent."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._routes.stopping.set()
        server.shutdown()
        server.shut_connections()
        server.server_close()
        thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the sandbox is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def token_required(self) -> bool:
        """True when only the token given at construction is accepted."""
        return self._routes.token is not None

    # what tests use

    def script(self, *faults: Fault) -> None:
        """Queue faults for the next requests to the endpoint, before the periodic rules."""
        self._faults.script(faults)

    @property
    def pending_faults(self) -> int:
        return self._faults.pending

    @property
    def received(self) -> list[Received]:
        return self._records.received

    @property
    def accepted(self) -> list[Received]:
        """The requests that created an object: the deliveries."""
        return [r for r in self.received if r.object_id is not None]

    @property
    def requests(self) -> int:
        """How many requests reached the endpoint (what the periodic faults count)."""
        return self._faults.requests

    @property
    def objects(self) -> list[StoredObject]:
        """Every object created, in order: what the read endpoints serve."""
        return self._records.objects

    def children_of(self, object_id: int) -> list[StoredChild]:
        """The messages added to an object's conversation (Create Child Object), oldest first."""
        return self._records.children_of(object_id)

    def count(self, **criteria: Any) -> int:
        """How many received requests match, e.g. `count(outcome="accepted", stream_id="s")`."""
        return self._records.count(**criteria)

    def clear(self) -> None:
        """Forget what was received and what was scripted (counters and ids continue)."""
        self._records.clear()
        self._faults.clear_script()

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until `count` requests were recorded (e.g. one answered after a client gave up)."""
        return self._records.wait_for(count, timeout)
