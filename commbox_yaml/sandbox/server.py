"""The sandbox's HTTP server: a threaded HTTP/1.1 server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import socket
import socketserver
import sys
import threading
import traceback
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TextIO, cast
from urllib.parse import parse_qs, unquote, urlsplit

from commbox_yaml import __version__
from commbox_yaml.sandbox.reads import OBJECT_PATH, PAGE_SIZE_MAX, Paging, list_answer, one_answer
from commbox_yaml.sandbox.shapes import ReadStyle, StoredObject
from commbox_yaml.sandbox.wire import (
    MAX_BODY_BYTES,
    NO_FAULT,
    OBJECTS_PATH,
    Answer,
    Fault,
    ObjectIds,
    Parsed,
    Received,
    error_answer,
    log_line,
    parse_body,
    redacted_headers,
    success_answer,
    utc_now,
)

HOST = "127.0.0.1"


# --- the HTTP layer --------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Never wait for handlers on close: one may be sleeping in a scripted delay.
    block_on_close = False
    # socketserver's default backlog of 5 resets connections when an apply opens 32 at once.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sandbox: SandboxServer) -> None:
        self.sandbox = sandbox
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which can stall on a slow resolver.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            return  # the client went away (a read timeout, a reset): nothing to tell anyone
        self.sandbox._internal_error(traceback.format_exc())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects
    # Headers and body go out in two writes; with Nagle on, the body waits for the client's
    # delayed ACK (about 40 ms a request on Linux).
    disable_nagle_algorithm = True
    server_version = f"commbox-sandbox/{__version__}"

    def version_string(self) -> str:
        return self.server_version  # without the Python version http.server appends

    @property
    def _sandbox(self) -> SandboxServer:
        return cast(_Server, self.server).sandbox

    def setup(self) -> None:
        super().setup()
        self._sandbox._track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._sandbox._untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the sandbox prints its own line per request."""

    def _dispatch(self) -> None:
        body = self._read_body()
        if body is None:
            self.close_connection = True
            answer = self._sandbox._unreadable(self.command, self.path, self.headers)
        else:
            answer = self._sandbox._handle(self.command, self.path, self.headers, body)
        self._write(answer)

    do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def _read_body(self) -> bytes | None:
        """The whole request body (so keep-alive stays in step), or None when unreadable."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            return None
        if not 0 <= length <= MAX_BODY_BYTES:
            return None
        body = self.rfile.read(length)
        return body if len(body) == length else None

    def _read_chunked(self) -> bytes | None:
        chunks: list[bytes] = []
        total = 0
        while True:
            try:
                size = int(self.rfile.readline(1024).split(b";", 1)[0], 16)
            except ValueError:
                return None
            total += size
            if size < 0 or total > MAX_BODY_BYTES:
                return None
            if size == 0:
                while self.rfile.readline(1024).strip():
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)  # the CRLF after each chunk

    def _write(self, answer: Answer) -> None:
        if answer.status is None:
            self._drop()
            return
        self.send_response(answer.status)
        content_types = {name.lower() for name, _ in answer.headers}
        if "content-type" not in content_types:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        for name, value in answer.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    def _drop(self) -> None:
        # The request was read in full; closing now is "dropped after the request went out".
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


# --- the sandbox -----------------------------------------------------------------------------


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
        self._token = token or None
        self.latency_ms = latency_ms
        self.throttle_every = throttle_every
        self.throttle_retry_after = throttle_retry_after
        self.fail_every = fail_every
        self.fail_status = fail_status
        self.drop_every = drop_every
        self.store_then_fail_every = store_then_fail_every
        self.refuse_reads = refuse_reads
        self.paging = Paging(first_page, page_cap, page_zero)
        self.read_style = ReadStyle(list_shapes, stored_text)
        self._output = output
        self._record_requests = record_requests
        self._store_objects = store_objects
        self._lock = threading.Condition()
        self._print_lock = threading.Lock()
        self._stopping = threading.Event()
        self._received: list[Received] = []
        self._objects: list[StoredObject] = []
        self._script: list[Fault] = []
        self._requests = 0
        self._ids = ObjectIds(first_id)
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    def start(self) -> SandboxServer:
        if self._server is not None:
            raise RuntimeError("the sandbox is already started")
        self._stopping.clear()
        self._server = _Server((HOST, self._port), self)
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
        self._stopping.set()
        server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            # Wakes handler threads blocked on an idle keep-alive connection.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
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
        return self._token is not None

    # what tests use

    def script(self, *faults: Fault) -> None:
        """Queue faults for the next requests to the endpoint, before the periodic rules."""
        with self._lock:
            self._script.extend(faults)

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._script)

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    @property
    def accepted(self) -> list[Received]:
        """The requests that created an object: the deliveries."""
        return [r for r in self.received if r.object_id is not None]

    @property
    def requests(self) -> int:
        """How many requests reached the endpoint (what the periodic faults count)."""
        with self._lock:
            return self._requests

    @property
    def objects(self) -> list[StoredObject]:
        """Every object created, in order: what the read endpoints serve."""
        with self._lock:
            return list(self._objects)

    def count(self, **criteria: Any) -> int:
        """How many received requests match, e.g. `count(outcome="accepted", stream_id="s")`."""
        return sum(
            all(getattr(r, name) == value for name, value in criteria.items())
            for r in self.received
        )

    def clear(self) -> None:
        """Forget what was received and what was scripted (counters and ids continue)."""
        with self._lock:
            self._received.clear()
            self._script.clear()

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until `count` requests were recorded (e.g. one answered after a client gave up)."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self._received) >= count, timeout)

    # the handler's side

    def _handle(self, method: str, target: str, headers: Message, body: bytes) -> Answer:
        path = urlsplit(target).path
        match = OBJECTS_PATH.fullmatch(path)
        found = match or OBJECT_PATH.fullmatch(path)
        if method == "GET" and found:
            return self._read(target, headers)
        if found is None:
            return self._record(method, target, None, headers, Parsed(), error_answer(404))
        stream_id = unquote(found.group(1))
        if match is None or method != "POST":
            # CommBox documents 501 "the requested operation is not supported" for these.
            allowed = "GET" if match is None else "GET, POST"
            answer = error_answer(501, f"{method} is not supported here; use {allowed}")
            return self._record(method, target, stream_id, headers, Parsed(), answer)
        fault = self._next_fault()
        parsed = parse_body(headers.get("Content-Type"), body)
        self._sleep(self.latency_ms / 1000 + fault.delay_s)
        answer = self._decide(fault, headers, parsed)
        return self._record(method, target, stream_id, headers, parsed, answer)

    def _read(self, target: str, headers: Message) -> Answer:
        """The two read endpoints, over the objects created so far."""
        parts = urlsplit(target)
        one = OBJECT_PATH.fullmatch(parts.path)
        listing = OBJECTS_PATH.fullmatch(parts.path)
        match = one or listing
        assert match is not None  # _handle routes only these two paths here
        stream_id = unquote(match.group(1))
        self._sleep(self.latency_ms / 1000)
        query = parse_qs(parts.query)
        if self.refuse_reads:
            answer = error_answer(401, "this API key has no right to read objects")
        elif not self._authorized(headers.get("Authorization")):
            answer = error_answer(401)
        elif one is not None:
            object_id = unquote(one.group(2))
            answer = one_answer(self.objects, stream_id, object_id, query, self.read_style)
        else:
            answer = list_answer(self.objects, stream_id, query, self.paging, self.read_style)
        return self._record("GET", target, stream_id, headers, Parsed(), answer)

    def _unreadable(self, method: str, target: str, headers: Message) -> Answer:
        answer = error_answer(400, "the request body could not be read (check Content-Length)")
        return self._record(method, target, None, headers, Parsed(), answer)

    def _next_fault(self) -> Fault:
        with self._lock:
            self._requests += 1
            if self._script:
                return self._script.pop(0)
            number = self._requests
        if _every(self.drop_every, number):
            return Fault(drop=True)
        if _every(self.store_then_fail_every, number):
            return Fault(status=500, store=True)
        if _every(self.fail_every, number):
            return Fault(status=self.fail_status)
        if _every(self.throttle_every, number):
            return Fault(status=429, retry_after=self.throttle_retry_after)
        return NO_FAULT

    def _decide(self, fault: Fault, headers: Message, parsed: Parsed) -> Answer:
        if fault.drop and not fault.store:
            return Answer(None, description="dropped")
        if fault.answers_error and not fault.store:
            return error_answer(cast(int, fault.status), fault=fault)
        if not self._authorized(headers.get("Authorization")):
            return error_answer(401)
        if parsed.problems and not fault.forces_success:
            return error_answer(400, "; ".join(parsed.problems))
        object_id = self._object_id(fault)
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
        if self._token is None:
            return True
        return hmac.compare_digest(token.encode("utf-8"), self._token.encode("utf-8"))

    def _object_id(self, fault: Fault) -> int:
        if fault.id is not None:
            return fault.id
        return self._ids.next()

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)  # stop() cuts it short

    def _record(
        self,
        method: str,
        target: str,
        stream_id: str | None,
        headers: Message,
        parsed: Parsed,
        answer: Answer,
    ) -> Answer:
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
        )
        with self._lock:
            if self._record_requests:
                self._received.append(received)
            if (
                self._store_objects
                and answer.object_id is not None
                and parsed.data is not None
                and stream_id
            ):
                serial = len(self._objects)
                stored = StoredObject(
                    answer.object_id, stream_id, parsed.data, received.time, serial
                )
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

    def _internal_error(self, text: str) -> None:
        (self._output or sys.stderr).write(f"commbox sandbox: internal error\n{text}")

    def _track(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    def _untrack(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)


def _every(period: int, number: int) -> bool:
    return period > 0 and number % period == 0
